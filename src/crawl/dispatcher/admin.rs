//! Admin messages: what the API and the admin pages ask of the Dispatcher
//! about the workers connected to this node (list them, close one).

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Dispatcher, WorkerId};
use crate::crawl::worker_session::CloseConnection;

/// What the API and logs show about a connected worker.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub id: u64,
    pub name: String,
    pub version: String,
    pub address: String,
    pub slots: u32,
    pub credits: u32,
    pub in_flight: usize,
    /// The tasks it holds, by id.
    pub tasks: Vec<i64>,
    pub done: u64,
    pub failed: u64,
    pub scraper_restarts: u64,
    pub connected_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// It finishes what it holds and is assigned nothing more.
    pub draining: bool,
}

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
#[rtype(result = "Vec<WorkerStatus>")]
pub struct ListWorkers;

impl Handler<ListWorkers> for Dispatcher {
    type Result = MessageResult<ListWorkers>;

    fn handle(&mut self, _: ListWorkers, _: &mut Context<Self>) -> Self::Result {
        let mut list: Vec<WorkerStatus> = self
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
                WorkerStatus {
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
