//! Every admin action in one place: do it, then write its audit row. The
//! pages and the JSON API both come through here, so neither can forget the
//! audit.

use actix::Addr;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};

use super::audit::{self, Actor, Entry};
use super::outbox;
use super::tasks;
use crate::auction::store::{cancel_lot, StoreError};
use crate::auction::LotStatus;
use crate::bus::{Bus, BusError, Control, NodeId, WorkerAction};
use crate::crawl::dispatcher::{
    Announce, CloseWorker, Dispatcher, StopAssigning, WorkerId, DISCONNECTED_BY_ADMIN,
};
use crate::crawl::lease::TaskState;
use crate::crawl::scheduler::{Scheduler, StartCrawl};
use crate::crawl::store::StartOutcome;
use crate::rooms::registry::{LotChanged, RoomRegistry};

/// What an admin acts on: the database, which every node shares, this
/// node's actors, and the bus to the others. Workers live in their node's
/// Dispatcher, so an action on a worker connected to another node goes to
/// that node over the bus.
pub struct Levers<'a> {
    pub db: &'a DatabaseConnection,
    pub bus: &'a dyn Bus,
    pub dispatcher: &'a Addr<Dispatcher>,
    pub scheduler: &'a Addr<Scheduler>,
    /// Tells a lot's watchers that an admin changed it.
    pub registry: &'a Addr<RoomRegistry>,
}

/// What an admin asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    RetryTask(i64),
    CancelTask(i64),
    RequeueDead,
    PauseQueue,
    ResumeQueue,
    RetryMail(i64),
    /// The worker finishes what it holds and is assigned nothing more.
    DrainWorker(u64),
    /// The worker's socket is closed; its tasks go back to the queue.
    DisconnectWorker(u64),
    /// A drain or a disconnect for a worker connected to another node:
    /// that node is told over the bus, and does it.
    WorkerElsewhere {
        node: String,
        worker: u64,
        action: WorkerAction,
    },
    /// The node takes no new clients or workers and hands over what it
    /// has.
    DrainNode(String),
    StartCrawl,
    /// The lot takes no more bids and has no winner.
    CancelLot(i64),
}

impl Action {
    /// `action` on worker `worker` of node `node` (this node's when none
    /// is named), as seen from node `this`.
    pub fn on_worker(
        this: &NodeId,
        node: Option<&str>,
        worker: u64,
        action: WorkerAction,
    ) -> Action {
        match (node, action) {
            (Some(node), action) if node != this.as_str() => Action::WorkerElsewhere {
                node: node.to_owned(),
                worker,
                action,
            },
            (_, WorkerAction::Drain) => Action::DrainWorker(worker),
            (_, WorkerAction::Disconnect) => Action::DisconnectWorker(worker),
        }
    }

    /// The node that was asked to act, when it is not this one.
    pub fn sent_to(&self) -> Option<&str> {
        match self {
            Action::WorkerElsewhere { node, .. } | Action::DrainNode(node) => Some(node),
            _ => None,
        }
    }

    fn audit_name(&self) -> &'static str {
        match self {
            Action::RetryTask(_) => "task.retry",
            Action::CancelTask(_) => "task.cancel",
            Action::RequeueDead => "tasks.requeue_dead",
            Action::PauseQueue => "queue.pause",
            Action::ResumeQueue => "queue.resume",
            Action::RetryMail(_) => "mail.retry",
            Action::DrainWorker(_)
            | Action::WorkerElsewhere {
                action: WorkerAction::Drain,
                ..
            } => "worker.drain",
            Action::DisconnectWorker(_)
            | Action::WorkerElsewhere {
                action: WorkerAction::Disconnect,
                ..
            } => "worker.disconnect",
            Action::DrainNode(_) => "node.drain",
            Action::StartCrawl => "crawl.start",
            Action::CancelLot(_) => "lot.cancel",
        }
    }

    /// The object's kind and, when the action names it, its id.
    fn object(&self) -> (&'static str, Option<String>) {
        match self {
            Action::RetryTask(id) | Action::CancelTask(id) => ("task", Some(id.to_string())),
            Action::RequeueDead | Action::PauseQueue | Action::ResumeQueue => ("queue", None),
            Action::RetryMail(id) => ("mail", Some(id.to_string())),
            Action::DrainWorker(id)
            | Action::DisconnectWorker(id)
            | Action::WorkerElsewhere { worker: id, .. } => ("worker", Some(id.to_string())),
            Action::DrainNode(node) => ("node", Some(node.clone())),
            Action::StartCrawl => ("crawl", None),
            Action::CancelLot(id) => ("lot", Some(id.to_string())),
        }
    }

    /// Whether the queue may have new work for the Dispatcher afterwards.
    fn wakes_the_queue(&self) -> bool {
        matches!(
            self,
            Action::RetryTask(_) | Action::RequeueDead | Action::ResumeQueue
        )
    }
}

/// What an action did: the object it made or acted on, and what it did in
/// words.
#[derive(Debug, Clone)]
pub struct Done {
    pub object_id: Option<String>,
    pub detail: Option<String>,
}

/// Why an action did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("there is no task {0}")]
    NoSuchTask(i64),
    #[error("task {id} is {state}: only queued and dead tasks can be retried now")]
    NotRetriable { id: i64, state: TaskState },
    #[error("task {id} is {state}: only queued and leased tasks can be cancelled")]
    NotCancellable { id: i64, state: TaskState },
    #[error("mail {0} is not failed: only failed mail can be retried")]
    MailNotFailed(i64),
    #[error("there is no worker {0} connected to this server")]
    NoSuchWorker(u64),
    #[error("there is no worker {worker} connected to node {node}")]
    NoSuchWorkerOn { node: String, worker: u64 },
    #[error("there is no live node {0}")]
    NoSuchNode(String),
    /// The bus, which reaches the other nodes, is down.
    #[error("the other nodes cannot be reached now: {0}")]
    Unreachable(#[from] BusError),
    #[error("crawl {0} is still running; one crawl runs at a time")]
    CrawlRunning(i64),
    #[error("there is no lot {0}")]
    NoSuchLot(i64),
    #[error("lot {id} is {}: only a scheduled or running lot can be cancelled", .status.as_str())]
    LotNotCancellable { id: i64, status: LotStatus },
    #[error(transparent)]
    Db(#[from] DbErr),
    /// An actor that should have done it did not answer.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Performs `action` as `actor`, then records it.
pub async fn perform(
    levers: &Levers<'_>,
    actor: &Actor,
    action: Action,
    now: DateTime<Utc>,
) -> Result<Done, ActionError> {
    let db = levers.db;
    let (object_kind, mut object_id) = action.object();
    let audit_name = action.audit_name();
    let wakes = action.wakes_the_queue();
    let detail = match action {
        Action::RetryTask(id) => {
            tasks::retry_now(db, id, now).await?;
            None
        }
        Action::CancelTask(id) => {
            tasks::cancel(db, id, &format!("cancelled by {}", actor.name), now).await?;
            None
        }
        Action::RequeueDead => {
            let n = tasks::requeue_dead(db, now).await?;
            Some(format!("{n} tasks"))
        }
        Action::PauseQueue => {
            tasks::pause(db, &actor.name, now).await?;
            levers.dispatcher.do_send(Announce(Control::QueuePaused));
            None
        }
        Action::ResumeQueue => {
            tasks::resume(db).await?;
            None
        }
        Action::RetryMail(id) => {
            if !outbox::retry(db, id, now).await? {
                return Err(ActionError::MailNotFailed(id));
            }
            None
        }
        Action::DrainWorker(id) => {
            let name = levers
                .dispatcher
                .send(StopAssigning {
                    worker: WorkerId(id),
                })
                .await
                .context("the dispatcher did not answer")?
                .ok_or(ActionError::NoSuchWorker(id))?;
            Some(name)
        }
        Action::DisconnectWorker(id) => {
            let close = CloseWorker {
                worker: WorkerId(id),
                reason: DISCONNECTED_BY_ADMIN,
            };
            let name = levers
                .dispatcher
                .send(close)
                .await
                .context("the dispatcher did not answer")?
                .ok_or(ActionError::NoSuchWorker(id))?;
            Some(name)
        }
        Action::WorkerElsewhere {
            node,
            worker,
            action,
        } => {
            // The node's last heartbeat says whether the worker is there:
            // a node sent a worker it does not have would do nothing.
            let nodes = levers.bus.nodes().await?;
            let name = nodes
                .iter()
                .find(|n| n.id == node)
                .and_then(|n| n.workers.iter().find(|w| w.id == worker))
                .map(|w| w.name.clone())
                .ok_or_else(|| ActionError::NoSuchWorkerOn {
                    node: node.clone(),
                    worker,
                })?;
            levers.bus.control(Control::Worker {
                node: node.clone(),
                worker,
                action,
            });
            Some(format!("{name} (sent to node {node})"))
        }
        Action::DrainNode(node) => {
            let nodes = levers.bus.nodes().await?;
            let address = nodes
                .iter()
                .find(|n| n.id == node)
                .map(|n| n.address.clone())
                .ok_or_else(|| ActionError::NoSuchNode(node.clone()))?;
            tracing::warn!(node = %node, admin = %actor.name, "an admin drains a node");
            levers.bus.control(Control::DrainNode { node });
            Some(address)
        }
        Action::StartCrawl => {
            let outcome = levers
                .scheduler
                .send(StartCrawl { trigger: "admin" })
                .await
                .context("the scheduler did not answer")?
                .map_err(|err| anyhow::anyhow!("could not start a crawl: {err}"))?;
            match outcome {
                StartOutcome::Started(id) => object_id = Some(id.to_string()),
                StartOutcome::AlreadyRunning(id) => return Err(ActionError::CrawlRunning(id)),
            }
            None
        }
        Action::CancelLot(id) => {
            cancel_lot(db, id, now).await.map_err(lot_refusal)?;
            tracing::info!(lot = id, admin = %actor.name, "lot cancelled");
            // Before the audit row: the watchers must hear of the change
            // even if the row cannot be written.
            levers.registry.do_send(LotChanged { lot_id: id });
            None
        }
    };
    let entry = Entry {
        action: audit_name,
        object_kind,
        object_id: object_id.clone(),
        detail: detail.clone(),
    };
    audit::record(db, actor, entry, now).await?;
    // Every node's Dispatcher acts on it now, not at its next look.
    if wakes {
        levers.dispatcher.do_send(Announce(Control::QueueChanged));
    }
    Ok(Done { object_id, detail })
}

/// Why a lot action was refused, or the store's failure as an internal one.
fn lot_refusal(err: StoreError) -> ActionError {
    match err {
        StoreError::NotFound(id) => ActionError::NoSuchLot(id),
        StoreError::NotCancellable { id, status } => ActionError::LotNotCancellable { id, status },
        err => ActionError::Internal(anyhow::Error::new(err).context("cancelling a lot")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_action_goes_over_the_bus_only_for_another_node() {
        let this = NodeId::generate();
        let here = Action::on_worker(&this, Some(this.as_str()), 3, WorkerAction::Drain);
        let unnamed = Action::on_worker(&this, None, 3, WorkerAction::Disconnect);
        let there = Action::on_worker(&this, Some("other"), 3, WorkerAction::Drain);

        assert_eq!(here, Action::DrainWorker(3));
        assert_eq!(unnamed, Action::DisconnectWorker(3));
        assert_eq!(
            there,
            Action::WorkerElsewhere {
                node: "other".to_owned(),
                worker: 3,
                action: WorkerAction::Drain
            }
        );
        assert_eq!((here.sent_to(), there.sent_to()), (None, Some("other")));
        // Audited like the same action on this node.
        assert_eq!(there.audit_name(), here.audit_name());
        assert_eq!(there.object(), ("worker", Some("3".to_owned())));
        let drain = Action::DrainNode("other".to_owned());
        assert_eq!(
            (drain.audit_name(), drain.object()),
            ("node.drain", ("node", Some("other".to_owned())))
        );
    }
}
