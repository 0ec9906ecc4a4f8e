//! The worker: a Link to the server and a supervised Scraper per slot, and
//! what it reads store pages with. A crate of its own, so that a machine
//! that only crawls runs `bazaar-worker`, which links no database, mail or
//! template code; `bazaar worker` runs the same code from the server's
//! binary. The server uses its `scrape` (robots.txt, fetching, the rule of
//! allowed hosts), `backoff` and `net` too: they are the lower layer of
//! both.

pub mod backoff;
pub mod link;
pub mod net;
pub mod scrape;
pub mod scrapers;
pub mod title;

use std::time::Duration;

use actix::prelude::*;
// The protocol under the name the modules here and the server's share.
use bazaar_protocol as protocol;
use url::Url;

use link::{Drain, Link};

/// The command line of a worker, for `bazaar worker` and `bazaar-worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The server, e.g. ws://127.0.0.1:8080.
    #[arg(long)]
    pub server: Url,
    /// The server's worker token (see data/worker_token on the server).
    #[arg(long, env = "BAZAAR_WORKER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Pages fetched at once.
    #[arg(long, default_value_t = 4)]
    pub slots: u32,
    /// The name shown in the server's worker list.
    #[arg(long)]
    pub name: Option<String>,
}

impl WorkerArgs {
    /// Checks the arguments clap cannot, and names the worker
    /// `hostname-pid` unless told otherwise.
    pub fn options(self) -> anyhow::Result<WorkerOptions> {
        if !matches!(self.server.scheme(), "ws" | "wss") {
            anyhow::bail!(
                "--server must be a ws:// or wss:// URL, not {}",
                self.server
            );
        }
        if !(1..=256).contains(&self.slots) {
            anyhow::bail!("--slots must be between 1 and 256");
        }
        Ok(WorkerOptions {
            server: self.server,
            token: self.token,
            slots: self.slots,
            name: self.name.unwrap_or_else(default_name),
        })
    }
}

/// `hostname-pid`, so that several workers on one machine are told apart.
fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

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
