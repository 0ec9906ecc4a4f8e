//! The outbox table's operations (docs/architecture.md §4): queue a mail once
//! by its key, lease due mail to one sender, and record how each send ended.
//!
//! A mail is `pending` until a Mailer leases it (`sending`, with
//! `leased_until`), then `sent` or `failed`, or `pending` again for a retry.
//! A lease that runs out (the node died between lease and send) makes the
//! mail due again, so after a crash a mail is sent again at most once.

use chrono::{DateTime, Utc};
use entity::outbox;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder,
};
use serde_json::{Map, Value};

use super::address::EmailAddress;
use super::header::{ExtraHeader, HeaderText};
use crate::clock::delta;
use crate::db::stmt;

pub use entity::outbox::{MailKind, MailStatus};

/// A mail to queue. Every field is already parsed, so queueing cannot fail
/// on content, only on the database.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub kind: MailKind,
    /// Unique per (kind, subject, recipient), e.g.
    /// `digest:crawl-12:ana@example.com`: a second mail with this key is
    /// never queued.
    pub key: String,
    pub to: EmailAddress,
    pub subject: HeaderText,
    pub text: String,
    pub html: Option<String>,
    pub headers: Vec<ExtraHeader>,
}

/// What `enqueue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// A mail with this key was queued before (and may be sent already).
    AlreadyQueued,
}

/// A mail leased for sending. `attempts` (this send included) fences the
/// marks: once the lease ran out and another sender took the mail, the
/// marks of the first one change nothing.
#[derive(Debug, Clone)]
pub struct Leased {
    pub mail: outbox::Model,
}

impl Leased {
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.mail.attempts).unwrap_or(0)
    }
}

/// Queues `mail` unless a mail with its key exists. Due at once.
pub async fn enqueue(
    db: &impl ConnectionTrait,
    mail: NewMail,
    now: DateTime<Utc>,
) -> Result<Enqueued, DbErr> {
    Ok(if enqueue_many(db, vec![mail], now).await? == 0 {
        Enqueued::AlreadyQueued
    } else {
        Enqueued::Queued
    })
}

/// Rows per INSERT: 14 columns each stays far below SQLite's limit on
/// bound parameters.
const INSERT_CHUNK: usize = 500;

/// Queues every mail whose key is new, a few statements for many mails;
/// returns how many were queued.
pub async fn enqueue_many(
    db: &impl ConnectionTrait,
    mails: Vec<NewMail>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut queued = 0;
    let mut rows = mails.into_iter().map(|mail| row(mail, now)).peekable();
    while rows.peek().is_some() {
        let chunk: Vec<outbox::ActiveModel> = rows.by_ref().take(INSERT_CHUNK).collect();
        // The unique key decides, not a prior SELECT: two nodes queueing the
        // same digest at once still make one row.
        queued += outbox::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::column(outbox::Column::Key)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(queued)
}

fn row(mail: NewMail, now: DateTime<Utc>) -> outbox::ActiveModel {
    let headers: Map<String, Value> = mail
        .headers
        .iter()
        .map(|h| (h.name().to_owned(), Value::from(h.value().as_str())))
        .collect();
    outbox::ActiveModel {
        key: Set(mail.key),
        kind: Set(mail.kind),
        recipient: Set(mail.to.to_string()),
        subject: Set(mail.subject.to_string()),
        text_body: Set(mail.text),
        html_body: Set(mail.html),
        headers: Set(Value::Object(headers)),
        status: Set(MailStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        leased_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        ..Default::default()
    }
}

#[derive(Debug, FromQueryResult)]
struct LeasedId {
    id: i64,
}

/// Leases up to `limit` due mails (pending and due, or sending with a lease
/// that ran out) for `lease`, oldest due first, in one statement.
pub async fn lease_due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u32,
    lease: std::time::Duration,
) -> Result<Vec<Leased>, DbErr> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    // Several nodes may send from one outbox: on PostgreSQL, rows another
    // transaction is leasing are skipped instead of waited for; the outer
    // WHERE repeats the condition so a row leased meanwhile is left alone.
    // SQLite has one writer at a time, so the statement alone is atomic.
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let due = "((status = $4 AND next_attempt_at <= $2) \
               OR (status = $5 AND leased_until <= $2))";
    let sql = format!(
        "UPDATE outbox SET status = $5, attempts = attempts + 1, leased_until = $1 \
         WHERE {due} AND id IN (SELECT id FROM outbox WHERE {due} \
           ORDER BY next_attempt_at, id LIMIT $3{lock}) \
         RETURNING id"
    );
    let ids: Vec<i64> = LeasedId::find_by_statement(stmt(
        backend,
        &sql,
        vec![
            (now + delta(lease)).into(),
            now.into(),
            i64::from(limit).into(),
            MailStatus::Pending.into(),
            MailStatus::Sending.into(),
        ],
    ))
    .all(db)
    .await?
    .into_iter()
    .map(|row| row.id)
    .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = outbox::Entity::find()
        .filter(outbox::Column::Id.is_in(ids))
        .order_by_asc(outbox::Column::NextAttemptAt)
        .order_by_asc(outbox::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|mail| Leased { mail }).collect())
}

/// The mail went out. False if the lease was no longer this sender's.
pub async fn mark_sent(
    db: &impl ConnectionTrait,
    leased: &Leased,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = fenced(leased)
        .col_expr(outbox::Column::Status, MailStatus::Sent.into())
        .col_expr(outbox::Column::SentAt, Some(now).into())
        .col_expr(outbox::Column::LeasedUntil, None::<DateTime<Utc>>.into())
        .col_expr(outbox::Column::LastError, None::<String>.into())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// The send failed for now: try again at `next_at`.
pub async fn mark_retry(
    db: &impl ConnectionTrait,
    leased: &Leased,
    error: &str,
    next_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = fenced(leased)
        .col_expr(outbox::Column::Status, MailStatus::Pending.into())
        .col_expr(outbox::Column::NextAttemptAt, next_at.into())
        .col_expr(outbox::Column::LeasedUntil, None::<DateTime<Utc>>.into())
        .col_expr(outbox::Column::LastError, Some(error.to_owned()).into())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// The mail will never go out; `error` says why.
pub async fn mark_failed(
    db: &impl ConnectionTrait,
    leased: &Leased,
    error: &str,
) -> Result<bool, DbErr> {
    let res = fenced(leased)
        .col_expr(outbox::Column::Status, MailStatus::Failed.into())
        .col_expr(outbox::Column::LeasedUntil, None::<DateTime<Utc>>.into())
        .col_expr(outbox::Column::LastError, Some(error.to_owned()).into())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// An update of `leased`'s row that applies only while this lease holds.
fn fenced(leased: &Leased) -> sea_orm::UpdateMany<outbox::Entity> {
    outbox::Entity::update_many()
        .filter(outbox::Column::Id.eq(leased.mail.id))
        .filter(outbox::Column::Status.eq(MailStatus::Sending))
        .filter(outbox::Column::Attempts.eq(leased.mail.attempts))
}
