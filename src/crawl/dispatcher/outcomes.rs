//! Task outcome messages: how each lease the Dispatcher handed out ends
//! (fetched, merged, failed or expired), and what other nodes say of the
//! queue and of this node's workers. Each frees
//! what the lease held and lets the dispatch loop run again.

use actix::prelude::*;

use super::{Dispatcher, WorkerId, DISCONNECTED_BY_ADMIN};
use crate::bus::{Control, WorkerAction};
use crate::clock;
use crate::crawl::lease::{LeaseToken, Setback};
use crate::crawl::store::{self, Released};
use crate::supervision::{self, Name};

/// A worker sent a task's result: the fetch is over, so its host slot is
/// free, while the lease stays until the result is merged.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fetched {
    pub lease: LeaseToken,
}

impl Handler<Fetched> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Fetched, ctx: &mut Context<Self>) {
        supervision::drill(Name::Dispatcher);
        let Some(entry) = self.leases.get_mut(&msg.lease) else {
            return;
        };
        if std::mem::take(&mut entry.fetching) {
            let host = entry.host.clone();
            self.release_slots(&host, 1);
            self.dispatch(ctx);
        }
    }
}

/// A task's result was merged (or found stale): its lease is over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskFinished {
    pub worker: WorkerId,
    pub lease: LeaseToken,
}

impl Handler<TaskFinished> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: TaskFinished, ctx: &mut Context<Self>) {
        supervision::drill(Name::Dispatcher);
        if let Some(entry) = self.forget(&msg.lease) {
            if let Some(worker) = self.workers.get_mut(&msg.worker.0) {
                worker.done += 1;
            }
            // A merged listing queued the pages it found.
            if entry.listing {
                self.tell_others();
            }
        }
        self.dispatch(ctx);
    }
}

/// A worker could not do a task.
#[derive(Message)]
#[rtype(result = "Result<bool, String>")]
pub struct TaskFailed {
    pub worker: WorkerId,
    pub lease: LeaseToken,
    pub error: String,
    pub retryable: bool,
}

impl Handler<TaskFailed> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<bool, String>>;

    /// Resolves to whether the lease was current (`false`: stale, ignored).
    fn handle(&mut self, msg: TaskFailed, _: &mut Context<Self>) -> Self::Result {
        supervision::drill(Name::Dispatcher);
        if self.forget(&msg.lease).is_some() {
            if let Some(worker) = self.workers.get_mut(&msg.worker.0) {
                worker.failed += 1;
            }
        }
        let db = self.db.clone();
        let policy = self.policy.retry;
        let now = clock::now();
        let setback = Setback::Failed {
            retryable: msg.retryable,
        };
        Box::pin(
            async move { store::release(&db, &msg.lease, &setback, &msg.error, &policy, now).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.dispatch(ctx);
                    match res {
                        Ok(released) => Ok(released.is_some()),
                        Err(err) => Err(err.to_string()),
                    }
                }),
        )
    }
}

/// Leases ran out (found by the Scheduler's sweep).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeasesExpired {
    pub released: Vec<Released>,
}

impl Handler<LeasesExpired> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: LeasesExpired, ctx: &mut Context<Self>) {
        self.metrics.leases_expired(msg.released.len());
        for released in &msg.released {
            tracing::warn!(task = released.task, host = %released.host, state = %released.state, "lease expired");
            // Leased by an earlier process or another node, it held no
            // slot here; the database counted it, and no longer does.
            self.forget(&released.token);
        }
        self.tell_others();
        self.dispatch(ctx);
    }
}

/// Something every node's Dispatcher must hear (a crawl started, tasks were
/// requeued, the queue paused): this one at once, the others over the bus.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Announce(pub Control);

impl Handler<Announce> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Announce, _: &mut Context<Self>) {
        self.bus.control(msg.0);
    }
}

/// What the cluster's nodes tell each other about the queue and workers.
impl Handler<Control> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        match msg {
            Control::QueueChanged => self.dispatch(ctx),
            Control::QueuePaused => {
                // A pass leasing now read the queue before the pause.
                self.pause_heard = self.dispatching;
                self.give_back_undelivered("the queue was paused", ctx);
            }
            Control::Worker {
                node,
                worker,
                action,
            } if node == self.bus.node().as_str() => {
                let worker = WorkerId(worker);
                match action {
                    WorkerAction::Drain => self.stop_assigning(worker, false),
                    WorkerAction::Disconnect => self.close_worker(worker, DISCONNECTED_BY_ADMIN),
                };
            }
            Control::Worker { .. } | Control::DrainNode { .. } => {}
        }
    }
}
