//! The worker process (`bazaar worker`): a Link to the server and a supervised
//! Scraper per slot.

pub mod link;
pub mod scraper;

use std::time::Duration;

use actix::prelude::*;
use url::Url;

use link::{Drain, Link};

/// How a worker connects.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// `ws://host:port` or `wss://host:port`: the server's address.
    pub server: Url,
    pub token: String,
    pub slots: u32,
    pub name: String,
}

impl WorkerOptions {
    /// The worker endpoint on the server.
    pub fn endpoint(&self) -> Url {
        let mut url = self.server.clone();
        if !url.path().ends_with("/ws/worker") {
            url.set_path("/ws/worker");
        }
        url
    }
}

/// Runs a worker until it is drained (SIGTERM, SIGINT or a `drain` frame).
/// Must be called inside an actix `System`.
pub async fn run(options: WorkerOptions) -> anyhow::Result<()> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let link = Link::new(options, done_tx).start();
    actix::spawn(watch_signals(link));
    let code = done_rx.await.unwrap_or(1);
    // Let the close frame reach the server before the process ends.
    tokio::time::sleep(Duration::from_millis(50)).await;
    if code != 0 {
        anyhow::bail!("the worker stopped with an error (see the log above)");
    }
    Ok(())
}

/// SIGTERM or SIGINT drains: finish what is held, take nothing new, leave.
/// A second signal leaves at once.
async fn watch_signals(link: Addr<Link>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("could not install signal handlers");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!("draining: finishing held tasks (signal again to stop at once)");
    link.do_send(Drain);
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::warn!("stopping at once");
    std::process::exit(130);
}
