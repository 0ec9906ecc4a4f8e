//! Every admin action in one place: do it, then write its audit row. The
//! pages and the JSON API both come through here, so neither can forget the
//! audit.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::audit::{self, Actor, Entry};
use super::outbox;
use super::tasks::{self, ActionError};

/// What an admin asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RetryTask(i64),
    CancelTask(i64),
    RequeueDead,
    PauseQueue,
    ResumeQueue,
    RetryMail(i64),
}

impl Action {
    fn audit_name(self) -> &'static str {
        match self {
            Action::RetryTask(_) => "task.retry",
            Action::CancelTask(_) => "task.cancel",
            Action::RequeueDead => "tasks.requeue_dead",
            Action::PauseQueue => "queue.pause",
            Action::ResumeQueue => "queue.resume",
            Action::RetryMail(_) => "mail.retry",
        }
    }

    fn object(self) -> (&'static str, Option<String>) {
        match self {
            Action::RetryTask(id) | Action::CancelTask(id) => ("task", Some(id.to_string())),
            Action::RequeueDead | Action::PauseQueue | Action::ResumeQueue => ("queue", None),
            Action::RetryMail(id) => ("mail", Some(id.to_string())),
        }
    }

    /// Whether the queue may have new work for the Dispatcher afterwards.
    pub fn wakes_the_queue(self) -> bool {
        matches!(
            self,
            Action::RetryTask(_) | Action::RequeueDead | Action::ResumeQueue
        )
    }
}

/// Performs `action` as `actor`; returns what it did, in words.
pub async fn perform(
    db: &impl ConnectionTrait,
    actor: &Actor,
    action: Action,
    now: DateTime<Utc>,
) -> Result<Option<String>, ActionError> {
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
    };
    let (object_kind, object_id) = action.object();
    let entry = Entry {
        action: action.audit_name(),
        object_kind,
        object_id,
        detail: detail.clone(),
    };
    audit::record(db, actor, entry, now).await?;
    Ok(detail)
}
