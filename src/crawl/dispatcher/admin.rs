//! Admin messages: what the API and the admin pages ask of the Dispatcher
//! about the workers connected to this node (list them, close one).

use actix::prelude::*;

use super::{Dispatcher, WorkerId};
use crate::bus::NodeWorker;

/// The close reason a worker sees when an admin disconnects it, from
/// whichever node.
pub const DISCONNECTED_BY_ADMIN: &str = "disconnected by an admin";
use crate::crawl::worker_session::CloseConnection;

/// An admin closes a worker's connection. Its tasks go back to the queue
/// when its session stops (`Disconnect`), as for any closed connection.
/// Resolves to the worker's name, or `None` if no such worker is connected
/// to this node.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct CloseWorker {
    pub worker: WorkerId,
    /// The close frame's reason, for the worker's log.
    pub reason: &'static str,
}

impl Handler<CloseWorker> for Dispatcher {
    type Result = Option<String>;

    fn handle(&mut self, msg: CloseWorker, _: &mut Context<Self>) -> Option<String> {
        self.close_worker(msg.worker, msg.reason)
    }
}

impl Dispatcher {
    /// Closes a worker's connection; its name, or `None` if no such worker
    /// is connected to this node.
    pub(super) fn close_worker(&mut self, id: WorkerId, reason: &'static str) -> Option<String> {
        let worker = self.workers.get_mut(&id.0)?;
        tracing::info!(worker = id.0, name = %worker.name, reason, "closing a worker's connection");
        // Nothing more is assigned in the moment before the session stops.
        worker.draining = true;
        worker.credits = 0;
        worker.session.do_send(CloseConnection { reason });
        Some(worker.name.clone())
    }
}

/// The workers connected to this node, for the API and the admin pages.
/// Each node's Dispatcher knows only its own workers.
#[derive(Message)]
#[rtype(result = "Vec<NodeWorker>")]
pub struct ListWorkers;

impl Handler<ListWorkers> for Dispatcher {
    type Result = MessageResult<ListWorkers>;

    fn handle(&mut self, _: ListWorkers, _: &mut Context<Self>) -> Self::Result {
        let mut list: Vec<NodeWorker> = self
            .workers
            .iter()
            .map(|(&id, w)| {
                let mut tasks: Vec<i64> = self
                    .leases
                    .iter()
                    .filter(|(_, e)| e.worker == id)
                    .map(|(token, _)| token.task())
                    .collect();
                tasks.sort_unstable();
                NodeWorker {
                    id,
                    name: w.name.clone(),
                    version: w.version.clone(),
                    address: w.peer.clone(),
                    slots: w.slots,
                    credits: w.credits,
                    in_flight: tasks.len(),
                    tasks,
                    done: w.done,
                    failed: w.failed,
                    scraper_restarts: w.restarts,
                    connected_at: w.connected_at,
                    last_heartbeat: w.last_heartbeat,
                    draining: w.draining,
                }
            })
            .collect();
        list.sort_by_key(|w| w.id);
        MessageResult(list)
    }
}
