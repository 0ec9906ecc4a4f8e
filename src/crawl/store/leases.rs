//! Leases: taking ready tasks for a worker, extending them on heartbeats, and
//! ending them (done, released for a retry, cancelled or expired). Each end
//! is fenced by the lease's token, so a stale worker changes nothing.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::tasks::{self, TaskKind};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QuerySelect, UpdateMany, Value,
};

use super::attempts::{end_attempts, record_attempts};
use super::crawls::finish_if_done;
use super::turns::{turn, Turn, Writer};
use crate::clock::delta;
use crate::crawl::lease::{LeaseToken, RetryPolicy, Setback, TaskState};
use crate::db::{begin_write, placeholders, stmt, truncate};

/// A task just leased to a worker.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Leased {
    pub id: i64,
    pub crawl_id: i64,
    pub kind: TaskKind,
    pub site: String,
    pub url: String,
    pub host: String,
    pub attempts: i32,
    pub lease_token: String,
}

/// A task whose lease ended without a result.
#[derive(Debug, Clone)]
pub struct Released {
    pub task: i64,
    pub crawl_id: i64,
    pub host: String,
    pub token: LeaseToken,
    pub state: TaskState,
}

/// A host's politeness, as leasing applies it for the whole cluster.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Fetches to the host in flight at once, on every node together.
    pub concurrency: u32,
    /// The least time between the starts of two fetches to the host.
    pub delay: Duration,
    /// How long before its start a fetch may be leased (see `Dispatcher`).
    pub lead: Duration,
    /// The tokens of the caller's leases of the host whose result has
    /// arrived: still leased until merged, but no longer fetching. Tokens,
    /// not a count: one merged meanwhile is no longer leased, and must not
    /// be taken off twice.
    pub fetched: Vec<String>,
    /// Other nodes lease from the same table: `fetched` is recorded in it,
    /// so that they too stop counting those tasks as in flight.
    pub shared: bool,
}

/// How many fetches one `delay` apart may be leased at once, the first
/// starting after `wait`: those that start within `lead`, and at least one,
/// as a host is only asked for once its next start is that close.
pub fn starts_in_lead(wait: Duration, lead: Duration, delay: Duration) -> u32 {
    if delay.is_zero() {
        return u32::MAX;
    }
    let more = lead.saturating_sub(wait).as_nanos() / delay.as_nanos();
    u32::try_from(more).unwrap_or(u32::MAX).saturating_add(1)
}

/// `n` delays: how long after the first of `n` fetches the next may start.
pub fn spaced(delay: Duration, n: usize) -> Duration {
    delay.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}

/// A worker's share of what is leased of a host: up to `count` tasks, leased
/// in its name.
#[derive(Debug, Clone)]
pub struct Share {
    pub worker: String,
    pub count: u32,
}

/// What leasing found for a host.
#[derive(Debug, Clone, Default)]
pub struct HostLease {
    /// The tasks leased, share by share, in the order of the shares.
    pub rows: Vec<Leased>,
    /// How many of `rows` each share got.
    pub taken: Vec<usize>,
    /// When the first of the leased tasks may be handed out, the start the
    /// host's delay gave it; each of the others starts one delay after the
    /// one before, in the order of `rows`. `None` for a host without a delay
    /// (all at once).
    pub start_at: Option<DateTime<Utc>>,
    /// Nothing was leased because the host's delay runs until then.
    pub due: Option<DateTime<Utc>>,
}

/// Leases ready tasks of `host` for each of `shares`, within its politeness
/// across every node, in one transaction in the caller's `turn`.
///
/// The host's row in `crawl_hosts` is locked first, so every node leasing
/// for the host waits its turn: the count of its leased tasks and the start
/// of its next fetch hold until the commit. A host with a delay gets a task
/// for each start that falls within the lead: the first when the delay after
/// the last planned start has passed, the others one delay apart; the caller
/// hands each out at its start.
#[tracing::instrument(level = "debug", skip_all, fields(host = host))]
pub async fn lease(
    db: &DatabaseConnection,
    turn: &Turn,
    host: &str,
    shares: &[Share],
    pace: Pace,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<HostLease, DbErr> {
    let backend = db.get_database_backend();
    // Every node counts a host's fetches in flight from the table, so in a
    // cluster the ones whose pages have reached this node are recorded
    // first, before the host's row is locked. Subtracted by this node
    // alone, the results waiting for its Merger (a hundred of them in a
    // fast crawl) held the host's concurrency against every other node,
    // whose workers sat idle. A node on its own spares the writes.
    if pace.shared {
        mark_fetched(db, &pace.fetched, now).await?;
    }
    let txn = turn.begin(db).await?;
    let db = &txn;
    db.execute(stmt(
        backend,
        "INSERT INTO crawl_hosts (host, next_start_at) VALUES ($1, $2) \
         ON CONFLICT (host) DO NOTHING",
        vec![host.into(), now.into()],
    ))
    .await?;
    // Several nodes may lease from one table: on PostgreSQL, the host's row
    // is what they queue on, and task rows another transaction is leasing
    // are skipped instead of waited for. SQLite has one writer at a time.
    let (lock_host, lock_tasks) = if backend == DatabaseBackend::Postgres {
        (" FOR UPDATE", " FOR UPDATE SKIP LOCKED")
    } else {
        ("", "")
    };
    let next_start: DateTime<Utc> = db
        .query_one(stmt(
            backend,
            &format!("SELECT next_start_at FROM crawl_hosts WHERE host = $1{lock_host}"),
            vec![host.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("crawl host {host}")))?
        .try_get("", "next_start_at")?;
    let mut room = shares.iter().fold(0u32, |n, s| n.saturating_add(s.count));
    let mut start_at = None;
    if !pace.delay.is_zero() {
        if next_start > now + delta(pace.lead) {
            txn.commit().await?;
            return Ok(HostLease {
                taken: vec![0; shares.len()],
                due: Some(next_start),
                ..HostLease::default()
            });
        }
        let first = next_start.max(now);
        let wait = (first - now).to_std().unwrap_or_default();
        room = room.min(starts_in_lead(wait, pace.lead, pace.delay));
        start_at = Some(first);
    }
    // Each share is leased in one statement: the host's fetches in flight
    // are counted in its LIMIT (a statement begun after the lock sees every
    // lease committed before it), and on PostgreSQL the attempts are
    // recorded in it too. Every statement here is a round trip made while
    // the host is locked, and on a cluster's hot host the nodes queue for
    // that lock. `CASE`, not LEAST and GREATEST, which SQLite lacks; never
    // negative, which SQLite would read as no limit.
    //
    // Listings first: each one found feeds the queue, so discovery stays
    // ahead of the workers instead of waiting behind the pages it found.
    // `listing` sorts before `page`, so `kind, id` is that order, and the
    // index `tasks_lease_order` walks it without sorting the queue.
    let mut in_flight = "state = $6 AND host = $4 AND fetched_at IS NULL".to_owned();
    if !pace.fetched.is_empty() {
        let marks = placeholders(9, pace.fetched.len());
        in_flight += &format!(" AND lease_token NOT IN ({marks})");
    }
    let claim = format!(
        "UPDATE tasks SET state = $6, attempts = attempts + 1, \
           lease_token = 't' || id || '-a' || (attempts + 1), \
           lease_until = $1, fetched_at = NULL, worker = $2, updated_at = $3 \
         WHERE id IN (SELECT id FROM tasks \
           WHERE state = $7 AND host = $4 AND not_before <= $3 \
           ORDER BY kind, id LIMIT (SELECT CASE \
               WHEN COUNT(*) >= $8 THEN 0 \
               WHEN $8 - COUNT(*) < $5 THEN $8 - COUNT(*) \
               ELSE $5 END \
             FROM tasks WHERE {in_flight}){lock_tasks}) \
         RETURNING id, crawl_id, kind, site, url, host, attempts, lease_token"
    );
    let records_attempts = backend == DatabaseBackend::Postgres;
    let sql = if records_attempts {
        format!(
            "WITH leased AS ({claim}), recorded AS ( \
               INSERT INTO task_attempts (task_id, attempt, lease_token, worker, started_at) \
               SELECT id, attempts, lease_token, $2, $3 FROM leased \
               ON CONFLICT (lease_token) DO NOTHING) \
             SELECT * FROM leased"
        )
    } else {
        claim
    };
    let mut rows = Vec::new();
    let mut taken = Vec::with_capacity(shares.len());
    for share in shares {
        let limit = share.count.min(room);
        if limit == 0 {
            taken.push(0);
            continue;
        }
        let mut values: Vec<Value> = vec![
            lease_until.into(),
            share.worker.as_str().into(),
            now.into(),
            host.into(),
            i64::from(limit).into(),
            TaskState::Leased.into(),
            TaskState::Queued.into(),
            i64::from(pace.concurrency).into(),
        ];
        values.extend(pace.fetched.iter().map(|t| Value::from(t.as_str())));
        let got = Leased::find_by_statement(stmt(backend, &sql, values))
            .all(db)
            .await?;
        if !records_attempts {
            record_attempts(db, &got, &share.worker, now).await?;
        }
        room = room.saturating_sub(u32::try_from(got.len()).unwrap_or(u32::MAX));
        taken.push(got.len());
        rows.extend(got);
    }
    if let (Some(start), false) = (start_at, rows.is_empty()) {
        db.execute(stmt(
            backend,
            "UPDATE crawl_hosts SET next_start_at = $1 WHERE host = $2",
            vec![
                (start + delta(spaced(pace.delay, rows.len()))).into(),
                host.into(),
            ],
        ))
        .await?;
    }
    txn.commit().await?;
    Ok(HostLease {
        start_at: start_at.filter(|_| !rows.is_empty()),
        rows,
        taken,
        due: None,
    })
}

/// Records the leases named by `tokens` as fetched at `now`: those still
/// current and not recorded yet, outside any lease's transaction.
///
/// On PostgreSQL a task another transaction holds is skipped rather than
/// waited for: that is the Merger marking it done, or a release, after
/// which it is no longer leased at all. Waited for, each pass queued
/// behind a merge.
async fn mark_fetched(
    db: &impl ConnectionTrait,
    tokens: &[String],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let skip_locked = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    for chunk in tokens.chunks(200) {
        let marks = placeholders(3, chunk.len());
        let mut values: Vec<Value> = vec![now.into(), TaskState::Leased.into()];
        values.extend(chunk.iter().map(|t| Value::from(t.as_str())));
        db.execute(stmt(
            backend,
            &format!(
                "UPDATE tasks SET fetched_at = $1 WHERE id IN (SELECT id FROM tasks \
                 WHERE state = $2 AND fetched_at IS NULL AND lease_token IN ({marks}){skip_locked})"
            ),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// When a fetch its node is sending late may go, a node that stalled past
/// the start `lease` planned for it: a delay after the start planned last
/// for `host` on any node, or now if that has passed, and planned in its
/// place under the host's row lock. Sent at once instead, it could fall
/// right behind a start another node planned from the one it missed.
pub async fn replan_late_start(
    db: &DatabaseConnection,
    host: &str,
    delay: Duration,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, DbErr> {
    let backend = db.get_database_backend();
    let txn = begin_write(db).await?;
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let planned: Option<DateTime<Utc>> = txn
        .query_one(stmt(
            backend,
            &format!("SELECT next_start_at FROM crawl_hosts WHERE host = $1{lock}"),
            vec![host.into()],
        ))
        .await?
        .map(|row| row.try_get("", "next_start_at"))
        .transpose()?;
    let at = planned.map_or(now, |planned| planned.max(now));
    txn.execute(stmt(
        backend,
        "UPDATE crawl_hosts SET next_start_at = $1 WHERE host = $2",
        vec![(at + delta(delay)).into(), host.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(at)
}

/// Extends the listed leases that are still current. Returns how many were.
#[tracing::instrument(level = "debug", skip_all, fields(leases = tokens.len()))]
pub async fn extend_leases(
    db: &impl ConnectionTrait,
    tokens: &[LeaseToken],
    until: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if tokens.is_empty() {
        return Ok(0);
    }
    let res = tasks::Entity::update_many()
        .col_expr(tasks::Column::LeaseUntil, until.into())
        .filter(tasks::Column::State.eq(TaskState::Leased))
        .filter(tasks::Column::LeaseToken.is_in(tokens.iter().map(|t| t.as_str())))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Which of `tokens` name a lease still current. A read: it locks nothing.
pub async fn current_leases(
    db: &impl ConnectionTrait,
    tokens: &[&LeaseToken],
) -> Result<HashSet<String>, DbErr> {
    let mut current = HashSet::new();
    for chunk in tokens.chunks(200) {
        let rows = tasks::Entity::find()
            .select_only()
            .column(tasks::Column::LeaseToken)
            .filter(tasks::Column::State.eq(TaskState::Leased))
            .filter(tasks::Column::LeaseToken.is_in(chunk.iter().map(|t| t.as_str())))
            .into_tuple::<Option<String>>()
            .all(db)
            .await?;
        current.extend(rows.into_iter().flatten());
    }
    Ok(current)
}

/// Marks leased tasks done, fenced by their tokens, in one statement per
/// chunk. Returns the tokens that were current; the others were stale and
/// changed nothing. The token stays on a done task: it names the attempt
/// that finished it.
#[tracing::instrument(level = "debug", skip_all, fields(leases = tokens.len()))]
pub async fn mark_done(
    db: &impl ConnectionTrait,
    tokens: &[&LeaseToken],
    now: DateTime<Utc>,
) -> Result<HashSet<String>, DbErr> {
    let backend = db.get_database_backend();
    let mut current = HashSet::new();
    for chunk in tokens.chunks(200) {
        let marks = placeholders(4, chunk.len());
        let sql = format!(
            "UPDATE tasks SET state = $2, lease_until = NULL, updated_at = $1 \
             WHERE state = $3 AND lease_token IN ({marks}) RETURNING lease_token"
        );
        let mut values: Vec<Value> =
            vec![now.into(), TaskState::Done.into(), TaskState::Leased.into()];
        values.extend(chunk.iter().map(|t| Value::from(t.as_str())));
        for row in db.query_all(stmt(backend, &sql, values)).await? {
            current.insert(row.try_get::<String>("", "lease_token")?);
        }
    }
    end_attempts(db, current.iter().cloned(), "done", None, now).await?;
    Ok(current)
}

/// Ends a lease without a result: back to the queue with backoff, or `dead`.
/// `None` means the lease was stale and nothing changed.
///
/// The task and its attempt change together: nobody sees the task queued
/// again while its attempt still looks open, and a crash loses neither.
#[tracing::instrument(level = "debug", skip_all, fields(task = token.task(), lease = %token))]
pub async fn release(
    db: &DatabaseConnection,
    token: &LeaseToken,
    setback: &Setback,
    error: &str,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Result<Option<Released>, DbErr> {
    let turn = turn(db, Writer::Dispatcher).await;
    let txn = turn.begin(db).await?;
    let db = &txn;
    let Some(task) = tasks::Entity::find_by_id(token.task())
        .filter(tasks::Column::LeaseToken.eq(token.as_str()))
        .filter(tasks::Column::State.eq(TaskState::Leased))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let next = policy.after(u32::try_from(task.attempts).unwrap_or(0), setback, now);
    let res = tasks::Entity::update_many()
        .col_expr(tasks::Column::State, next.state.into())
        .col_expr(tasks::Column::NotBefore, next.not_before.into())
        .col_expr(tasks::Column::LeaseToken, Option::<String>::None.into())
        .col_expr(
            tasks::Column::LeaseUntil,
            Option::<DateTime<Utc>>::None.into(),
        )
        .col_expr(tasks::Column::LastError, Some(truncate(error, 2000)).into())
        .col_expr(tasks::Column::UpdatedAt, now.into())
        .filter(tasks::Column::Id.eq(task.id))
        .filter(tasks::Column::LeaseToken.eq(token.as_str()))
        .filter(tasks::Column::State.eq(TaskState::Leased))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(None);
    }
    let outcome = if next.state.is_final() {
        "dead"
    } else {
        "retry"
    };
    end_attempts(db, [token.as_str().to_owned()], outcome, Some(error), now).await?;
    if next.state.is_final() {
        finish_if_done(db, task.crawl_id, now).await?;
    }
    txn.commit().await?;
    Ok(Some(Released {
        task: task.id,
        crawl_id: task.crawl_id,
        host: task.host,
        token: token.clone(),
        state: next.state,
    }))
}

/// The update that cancels tasks for good with `reason`, whatever their
/// lease; callers add which tasks, and from which states.
pub(crate) fn cancelling(reason: &str, now: DateTime<Utc>) -> UpdateMany<tasks::Entity> {
    tasks::Entity::update_many()
        .col_expr(tasks::Column::State, TaskState::Cancelled.into())
        .col_expr(tasks::Column::LeaseToken, Option::<String>::None.into())
        .col_expr(
            tasks::Column::LeaseUntil,
            Option::<DateTime<Utc>>::None.into(),
        )
        .col_expr(tasks::Column::LastError, Some(reason.to_owned()).into())
        .col_expr(tasks::Column::UpdatedAt, now.into())
}

/// Cancels a leased task for good (robots.txt forbids it, say). The task may
/// be its crawl's last, so the crawl is finished here if it is. The task,
/// its attempt and its crawl change together.
#[tracing::instrument(level = "debug", skip_all, fields(task = token.task(), lease = %token, crawl = crawl_id))]
pub async fn cancel(
    db: &DatabaseConnection,
    token: &LeaseToken,
    crawl_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let turn = turn(db, Writer::Dispatcher).await;
    let txn = turn.begin(db).await?;
    let db = &txn;
    let res = cancelling(reason, now)
        .filter(tasks::Column::Id.eq(token.task()))
        .filter(tasks::Column::LeaseToken.eq(token.as_str()))
        .filter(tasks::Column::State.eq(TaskState::Leased))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(false);
    }
    end_attempts(
        db,
        [token.as_str().to_owned()],
        "cancelled",
        Some(reason),
        now,
    )
    .await?;
    finish_if_done(db, crawl_id, now).await?;
    txn.commit().await?;
    Ok(true)
}

/// Returns every lease that ran out to the queue (or makes it `dead`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn expire_leases(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Released>, DbErr> {
    let expired = tasks::Entity::find()
        .filter(tasks::Column::State.eq(TaskState::Leased))
        .filter(tasks::Column::LeaseUntil.lt(now))
        .all(db)
        .await?;
    let mut released = Vec::new();
    for task in expired {
        let Some(token) = task.lease_token.as_deref().and_then(LeaseToken::parse) else {
            continue;
        };
        let error = "lease expired without a heartbeat";
        if let Some(r) = release(db, &token, &Setback::Expired, error, policy, now).await? {
            released.push(r);
        }
    }
    Ok(released)
}
