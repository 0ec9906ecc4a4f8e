//! How a node hands over what it holds before it goes (SIGTERM), or when an
//! admin drains it (`Control::DrainNode`, the node then stays up, idle):
//! - new WebSockets are refused with 503 (`ws::accept`), so that nginx
//!   tries another node;
//! - workers get `drain` with `reconnect`: they finish and deliver what
//!   they hold, then connect again through the load balancer;
//! - clients are closed with 1001 in waves, and resume elsewhere with
//!   `since`;
//! - the scheduler role is given up, for another node to take at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sea_orm::DatabaseConnection;

use crate::bus::Control;
use crate::crawl::dispatcher::{Dispatcher, HandOver, ListWorkers};
use crate::metrics::{Connection, Metrics};
use crate::roles::Leadership;
use crate::ws::Leaving;

/// How long clients get to say goodbye.
pub const CLIENT_GRACE: Duration = Duration::from_secs(5);
/// How long workers get to finish the fetches they hold: a slow store may
/// take a while, and a fetch given up is one done again elsewhere.
pub const WORKER_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Handover {
    pub node: String,
    pub db: DatabaseConnection,
    pub leaving: Leaving,
    pub dispatcher: Addr<Dispatcher>,
    pub leadership: Leadership,
    pub metrics: Arc<Metrics>,
    /// Other nodes share the rooms: clients are closed in waves, so that
    /// they do not all land on the others in the same instant.
    pub spread: bool,
}

impl Handover {
    /// Hands everything over; resolves once clients and workers are gone,
    /// or their grace ran out.
    pub async fn run(&self) {
        let workers = self.dispatcher.send(HandOver).await.unwrap_or(0);
        tracing::info!(
            workers,
            "handing over: workers drain and reconnect elsewhere"
        );
        self.leadership.resign(&self.db, &self.node).await;
        let clients = async {
            self.leaving.drain(self.spread).await;
            // WebSockets left the HTTP server at their upgrade, so its
            // graceful stop does not wait for them: they get this grace.
            within(CLIENT_GRACE, || async {
                self.metrics.open_now(Connection::Client) == 0
            })
            .await;
        };
        let workers = async {
            // Until every worker's session has ended, not just its socket:
            // a session outlives its socket while it merges the last
            // results, and those must be settled before the node goes.
            within(WORKER_GRACE, || async {
                let left = self.dispatcher.send(ListWorkers).await;
                left.map_or(true, |workers| workers.is_empty())
            })
            .await;
            // Whoever is still fetching has had its time: the leases go
            // back to the queue as the sockets close.
            self.leaving.release_workers();
        };
        tokio::join!(clients, workers);
        tracing::info!("handed over");
    }
}

impl Actor for Handover {
    type Context = Context<Self>;
}

/// Holds nothing but handles: a restart keeps them, and a drain it
/// panicked on can be asked for again.
impl Supervised for Handover {}

/// An admin drains a node from any node's admin pages.
impl Handler<Control> for Handover {
    type Result = ();

    fn handle(&mut self, msg: Control, _: &mut Context<Self>) {
        let Control::DrainNode { node } = msg else {
            return;
        };
        if node != self.node || self.leaving.is_cancelled() {
            return;
        }
        tracing::warn!("an admin drained this node: it takes no new clients or workers");
        let handover = self.clone();
        actix::spawn(async move { handover.run().await });
    }
}

/// Waits until `done` says so, for at most `grace`.
pub async fn within<F, Fut>(grace: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + grace;
    while !done().await && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
