//! Worker lifecycle messages: a worker connects, grants credits, proves it
//! is alive, is told to drain, and disconnects. Each keeps the Dispatcher's
//! view of its workers in step with their sessions.

use actix::prelude::*;

use super::{Dispatcher, WorkerEntry};
use crate::clock::{self, delta};
use crate::crawl::lease::{LeaseToken, Setback};
use crate::crawl::store;
use crate::crawl::worker_session::{DrainWorker, WorkerSession};
use crate::supervision::{self, Name};

/// The most credits a worker may hold; more would only hoard tasks.
const MAX_CREDITS: u32 = 1024;

/// A worker finished its `hello`.
#[derive(Message)]
#[rtype(result = "WorkerId")]
pub struct Connect {
    pub session: Addr<WorkerSession>,
    pub name: String,
    pub version: String,
    pub peer: String,
    pub slots: u32,
}

/// The id the Dispatcher gives a connected worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, MessageResponse)]
pub struct WorkerId(pub u64);

impl Handler<Connect> for Dispatcher {
    type Result = WorkerId;

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> WorkerId {
        self.next_worker += 1;
        let id = self.next_worker;
        let now = clock::now();
        tracing::info!(worker = id, name = %msg.name, peer = %msg.peer, slots = msg.slots, "worker connected");
        self.workers.insert(
            id,
            WorkerEntry {
                session: msg.session,
                name: msg.name,
                version: msg.version,
                peer: msg.peer,
                slots: msg.slots,
                credits: 0,
                restarts: 0,
                done: 0,
                failed: 0,
                connected_at: now,
                last_heartbeat: now,
                draining: false,
            },
        );
        WorkerId(id)
    }
}

/// A worker's connection closed: its tasks go back to the queue at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub worker: WorkerId,
}

impl Handler<Disconnect> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) {
        supervision::drill(Name::Dispatcher);
        let Some(worker) = self.workers.remove(&msg.worker.0) else {
            return;
        };
        let tokens: Vec<(LeaseToken, bool)> = self
            .leases
            .iter()
            .filter(|(_, e)| e.worker == msg.worker.0)
            .map(|(t, e)| (t.clone(), e.delivered))
            .collect();
        tracing::info!(worker = msg.worker.0, name = %worker.name, requeued = tokens.len(), "worker disconnected");
        for (token, delivered) in tokens {
            self.forget(&token);
            // A task still waiting out its host's delay never reached the
            // worker, and its last error says so.
            let error = if delivered {
                "the worker disconnected"
            } else {
                "the worker left before the task reached it"
            };
            self.give_back(token, Setback::Disconnected, error, ctx);
        }
    }
}

/// A worker grants more credits.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Credit {
    pub worker: WorkerId,
    pub credits: u32,
}

impl Handler<Credit> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Credit, ctx: &mut Context<Self>) {
        supervision::drill(Name::Dispatcher);
        if let Some(worker) = self.workers.get_mut(&msg.worker.0).filter(|w| !w.draining) {
            worker.credits = worker.credits.saturating_add(msg.credits).min(MAX_CREDITS);
            self.dispatch(ctx);
        }
    }
}

/// A worker is to drain, because it asked or an admin did: assign it
/// nothing more, and tell it with a `drain` frame. Resolves to the worker's
/// name, or `None` if no such worker is connected to this node.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct StopAssigning {
    pub worker: WorkerId,
}

impl Handler<StopAssigning> for Dispatcher {
    type Result = Option<String>;

    fn handle(&mut self, msg: StopAssigning, _: &mut Context<Self>) -> Option<String> {
        self.stop_assigning(msg.worker, false)
    }
}

/// This node is going away (SIGTERM, or an admin drained it): every worker
/// finishes and delivers what it holds, then reconnects to another node.
/// Resolves to how many were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct HandOver;

impl Handler<HandOver> for Dispatcher {
    type Result = usize;

    fn handle(&mut self, _: HandOver, ctx: &mut Context<Self>) -> usize {
        let ids: Vec<u64> = self.workers.keys().copied().collect();
        for &id in &ids {
            self.stop_assigning(WorkerId(id), true);
        }
        // Tasks waiting out a delay would reach their worker after it was
        // told to go: another node's worker takes them instead.
        self.give_back_undelivered(
            "the worker's node went away before the task reached it",
            ctx,
        );
        ids.len()
    }
}

impl Dispatcher {
    /// Assigns a worker nothing more and tells it with a `drain` frame,
    /// which asks it to come back elsewhere when `reconnect`. The worker's
    /// name, or `None` if no such worker is connected to this node.
    pub(super) fn stop_assigning(&mut self, id: WorkerId, reconnect: bool) -> Option<String> {
        let worker = self.workers.get_mut(&id.0)?;
        tracing::info!(worker = id.0, name = %worker.name, reconnect, "worker draining");
        worker.draining = true;
        worker.credits = 0;
        // Through the session's mailbox, after every assignment already sent:
        // once the worker reads this, no assignment can follow.
        worker.session.do_send(DrainWorker { reconnect });
        Some(worker.name.clone())
    }
}

/// A worker is alive and still holds these leases.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Heartbeat {
    pub worker: WorkerId,
    pub leases: Vec<LeaseToken>,
    pub restarts: u64,
}

impl Handler<Heartbeat> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Heartbeat, ctx: &mut Context<Self>) {
        supervision::drill(Name::Dispatcher);
        let now = clock::now();
        let Some(worker) = self.workers.get_mut(&msg.worker.0) else {
            return;
        };
        worker.last_heartbeat = now;
        if msg.restarts > worker.restarts {
            tracing::warn!(worker = msg.worker.0, name = %worker.name, restarts = msg.restarts, "worker's scrapers were restarted");
            worker.restarts = msg.restarts;
        }
        // Only leases this worker holds are extended: a token is not a
        // capability to keep someone else's task.
        let mine: Vec<LeaseToken> = msg
            .leases
            .into_iter()
            .filter(|t| self.leases.get(t).is_some_and(|e| e.worker == msg.worker.0))
            .collect();
        let db = self.db.clone();
        let until = now + delta(self.policy.lease);
        async move { store::extend_leases(&db, &mine, until).await }
            .into_actor(self)
            .map(|res, _, _| {
                if let Err(err) = res {
                    tracing::error!(error = %err, "could not extend leases");
                }
            })
            .spawn(ctx);
    }
}
