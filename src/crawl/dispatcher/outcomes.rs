//! Task outcome messages: how each lease the Dispatcher handed out ends
//! (fetched, merged, failed or expired), and `Wake` for new work. Each frees
//! what the lease held and lets the dispatch loop run again.

use actix::prelude::*;

use super::{Dispatcher, WorkerId};
use crate::crawl::lease::{LeaseToken, Setback};
use crate::crawl::store::{self, Released};

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
        if self.forget(&msg.lease).is_some() {
            if let Some(worker) = self.workers.get_mut(&msg.worker.0) {
                worker.done += 1;
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
        if self.forget(&msg.lease).is_some() {
            if let Some(worker) = self.workers.get_mut(&msg.worker.0) {
                worker.failed += 1;
            }
        }
        let db = self.db.clone();
        let policy = self.policy.retry;
        let now = self.clock.now();
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
            if self.forget(&released.token).is_none() {
                // Leased by an earlier process or another node: the counters
                // rebuilt from the database still hold its slot.
                self.release_slots(&released.host, 1);
            }
        }
        self.dispatch(ctx);
    }
}

/// New work may be ready (a crawl started, say).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.dispatch(ctx);
    }
}
