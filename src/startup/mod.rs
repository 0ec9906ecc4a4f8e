//! Building and running the server: `Application::build` starts the
//! supervision tree and binds the HTTP server, one step per subsystem
//! (`steps.rs`); `run_until_stopped` serves until a signal or its
//! `StopHandle`, hands over, and then stops every background task and
//! actor through the node's one `Lifecycle`.

mod heartbeat;
mod http;
mod steps;

use std::fs::File;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use actix::Addr;
use actix_server::ServerHandle;
use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

pub use http::raise_nofile_limit;

use crate::config::Settings;
use crate::crawl::local_workers::LocalWorkers;
use crate::handover::{within, Handover, CLIENT_GRACE};
use crate::lifecycle::Lifecycle;
use crate::mail::notifier::Notifier;
use crate::mail::Mailer;
use crate::rooms::registry::{OpenChatRooms, RoomRegistry};

/// How long background tasks and actors get to end once told to; the
/// Mailer's round under way is the longest of them.
const TASKS_GRACE: Duration = Duration::from_secs(5);

/// After a second signal: the actors stop at their next poll, and what
/// does not is left behind.
const HURRIED_GRACE: Duration = Duration::from_secs(1);

/// A node, built and bound, not yet serving.
pub struct Application {
    address: SocketAddr,
    server: actix_server::Server,
    handover: Handover,
    registry: Addr<RoomRegistry>,
    lifecycle: Lifecycle,
    stops: mpsc::UnboundedReceiver<()>,
    stop_handle: StopHandle,
    // Held until the node stops: `bazaar admin restore` refuses to run
    // while it is.
    _serving: File,
    // Actors nothing else addresses, held for as long as the node runs.
    _mailer: Addr<Mailer>,
    _notifier: Addr<Notifier>,
    _local_workers: Option<Addr<LocalWorkers>>,
}

/// Asks a running `Application` to stop, as a signal does: the first time
/// it hands over, a second time it stops at once.
#[derive(Clone)]
pub struct StopHandle(mpsc::UnboundedSender<()>);

impl StopHandle {
    pub fn stop(&self) {
        // Only fails once the application has stopped.
        let _ = self.0.send(());
    }
}

impl Application {
    /// Everything up to serving: the data dir, the database, the
    /// supervision tree, and the HTTP server bound to `server.bind`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let node = steps::build(settings).await?;
        let (tx, stops) = mpsc::unbounded_channel();
        Ok(Application {
            address: node.listening.address,
            server: node.listening.server,
            handover: node.handover,
            registry: node.registry,
            lifecycle: node.lifecycle,
            stops,
            stop_handle: StopHandle(tx),
            _serving: node.serving,
            _mailer: node.mailer,
            _notifier: node.notifier,
            _local_workers: node.local_workers,
        })
    }

    /// The address the HTTP server is bound to (the first one, when
    /// `server.bind` names several).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop_handle.clone()
    }

    /// Serves until SIGTERM, SIGINT or the stop handle. The node then hands
    /// over its workers and clients (`handover.rs`), the server stops once
    /// requests in flight finish and the rooms have stored what they
    /// published, and every background task and actor is stopped and
    /// waited for. A second request stops it at once.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        // The fields not taken here (the data dir's lock, the actors held)
        // are dropped when this returns, after everything has stopped.
        let Application {
            server,
            handover,
            registry,
            lifecycle,
            stops,
            ..
        } = self;
        let mut asked = Asked::listen(stops).context("could not install signal handlers")?;
        let handle = server.handle();
        let mut server = pin!(server);
        let (served, hurried) = tokio::select! {
            served = &mut server => (served, false),
            () = asked.next() => {
                tracing::info!("shutting down: handing over (signal again to stop at once)");
                let leaving = async {
                    tokio::select! {
                        () = leave(&handle, &handover, &registry) => false,
                        () = asked.next() => {
                            handle.stop(false).await;
                            true
                        }
                    }
                };
                // The server goes on serving, and is stopped, meanwhile.
                tokio::join!(&mut server, leaving)
            }
        };
        // Nothing is asked of the node any more: its rooms, the Mailer, the
        // Notifier and every loop can go.
        let grace = if hurried { HURRIED_GRACE } else { TASKS_GRACE };
        if lifecycle.stop(grace).await {
            tracing::info!("every background task has stopped");
        } else {
            tracing::warn!(
                running = lifecycle.running(),
                "background tasks still running after {grace:?}; leaving them"
            );
        }
        served.context("the HTTP server failed")
    }
}

/// Hands over, then stops the HTTP server gracefully while the rooms store
/// what they published.
async fn leave(server: &ServerHandle, handover: &Handover, registry: &Addr<RoomRegistry>) {
    // The HTTP server keeps accepting meanwhile: pages are still served,
    // and new sockets are refused with 503, which sends them elsewhere.
    handover.run().await;
    // Members see a message before it is stored; the rooms store the rest
    // before the process ends.
    let stored = within(CLIENT_GRACE, || async {
        registry.send(OpenChatRooms).await.unwrap_or(0) == 0
    });
    tokio::join!(stored, server.stop(true));
}

/// Requests to stop: SIGTERM, SIGINT and the stop handle alike.
struct Asked {
    term: Signal,
    int: Signal,
    handle: mpsc::UnboundedReceiver<()>,
}

impl Asked {
    fn listen(handle: mpsc::UnboundedReceiver<()>) -> std::io::Result<Asked> {
        Ok(Asked {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            handle,
        })
    }

    /// The next request. The application holds a sender, so the handle's
    /// channel never closes under it.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = self.handle.recv() => {}
        }
    }
}
