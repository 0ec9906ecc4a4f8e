//! The task queue's database access: crawls, leasing, fencing, expiry and
//! completion. Every transition is a conditional statement, so the database
//! stays the truth when several actors or nodes act at once.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{crawls, task_attempts, tasks};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, Statement, Value,
};
use url::Url;

use super::lease::{LeaseToken, RetryPolicy, Setback, TaskState};
use super::sites::{host_key, Sites};
use crate::protocol::worker::TaskKind;

/// Why a crawl did or did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started(i64),
    AlreadyRunning(i64),
}

impl StartOutcome {
    pub fn id(self) -> i64 {
        match self {
            StartOutcome::Started(id) | StartOutcome::AlreadyRunning(id) => id,
        }
    }
}

/// A task to add to a crawl.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: TaskKind,
    pub site: String,
    pub url: Url,
}

/// A task just leased to a worker.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Leased {
    pub id: i64,
    pub crawl_id: i64,
    pub kind: String,
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

/// A crawl with its task counts, for the API and the pages.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrawlReport {
    #[serde(flatten)]
    pub crawl: crawls::Model,
    pub tasks: BTreeMap<String, u64>,
}

impl CrawlReport {
    pub fn total(&self) -> u64 {
        self.tasks.values().sum()
    }

    pub fn finished_tasks(&self) -> u64 {
        TaskState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| self.tasks.get(s.as_str()).copied().unwrap_or(0))
            .sum()
    }
}

/// A statement written with `$1`-style placeholders, for either backend.
pub(crate) fn stmt(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        // SQLite numbers its parameters `?1`, PostgreSQL `$1`.
        DatabaseBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Starts a crawl of every site, unless one is running already.
pub async fn start_crawl(
    db: &impl ConnectionTrait,
    sites: &Sites,
    trigger: &str,
    now: DateTime<Utc>,
) -> Result<StartOutcome, DbErr> {
    if let Some(running) = running_crawl(db).await? {
        return Ok(StartOutcome::AlreadyRunning(running.id));
    }
    let inserted = crawls::Entity::insert(crawls::ActiveModel {
        status: Set("running".to_owned()),
        trigger: Set(trigger.to_owned()),
        started_at: Set(now),
        ..Default::default()
    })
    .exec(db)
    .await;
    let id = match inserted {
        Ok(res) => res.last_insert_id,
        // Another node (or request) won the race for the one running crawl.
        Err(err) => match running_crawl(db).await? {
            Some(running) => return Ok(StartOutcome::AlreadyRunning(running.id)),
            None => return Err(err),
        },
    };
    let seeds: Vec<NewTask> = sites
        .iter()
        .flat_map(|site| {
            site.start.iter().map(|url| NewTask {
                kind: TaskKind::Listing,
                site: site.name.clone(),
                url: url.clone(),
            })
        })
        .collect();
    insert_tasks(db, id, &seeds, now).await?;
    // A crawl of nothing is complete at once.
    finish_if_done(db, id, now).await?;
    Ok(StartOutcome::Started(id))
}

pub async fn running_crawl(db: &impl ConnectionTrait) -> Result<Option<crawls::Model>, DbErr> {
    crawls::Entity::find()
        .filter(crawls::Column::Status.eq("running"))
        .one(db)
        .await
}

/// The most recent crawl, running or not.
pub async fn latest_crawl(db: &impl ConnectionTrait) -> Result<Option<crawls::Model>, DbErr> {
    crawls::Entity::find()
        .order_by_desc(crawls::Column::Id)
        .one(db)
        .await
}

/// The most recent finished crawl.
pub async fn last_finished_crawl(
    db: &impl ConnectionTrait,
) -> Result<Option<crawls::Model>, DbErr> {
    crawls::Entity::find()
        .filter(crawls::Column::Status.eq("finished"))
        .order_by_desc(crawls::Column::Id)
        .one(db)
        .await
}

pub async fn crawl_report(
    db: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<CrawlReport>, DbErr> {
    let Some(crawl) = crawls::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let backend = db.get_database_backend();
    let rows = db
        .query_all(stmt(
            backend,
            "SELECT state, COUNT(*) AS n FROM tasks WHERE crawl_id = $1 GROUP BY state",
            vec![id.into()],
        ))
        .await?;
    let mut tasks: BTreeMap<String, u64> = TaskState::ALL
        .into_iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for row in rows {
        let state: String = row.try_get("", "state")?;
        let n: i64 = row.try_get("", "n")?;
        tasks.insert(state, u64::try_from(n).unwrap_or(0));
    }
    Ok(Some(CrawlReport { crawl, tasks }))
}

/// Adds tasks to a crawl; a URL already in the crawl is skipped. Returns how
/// many were new.
pub async fn insert_tasks(
    db: &impl ConnectionTrait,
    crawl_id: i64,
    new: &[NewTask],
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let models: Vec<tasks::ActiveModel> = new
        .iter()
        .filter_map(|t| {
            Some(tasks::ActiveModel {
                crawl_id: Set(crawl_id),
                kind: Set(t.kind.as_str().to_owned()),
                site: Set(t.site.clone()),
                url: Set(t.url.to_string()),
                host: Set(host_key(&t.url)?),
                state: Set(TaskState::Queued.as_str().to_owned()),
                attempts: Set(0),
                not_before: Set(now),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            })
        })
        .collect();
    if models.is_empty() {
        return Ok(0);
    }
    let mut added = 0;
    // Chunks keep each statement under SQLite's bound-parameter limit.
    for chunk in models.chunks(200) {
        let res = tasks::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([tasks::Column::CrawlId, tasks::Column::Url])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
        added += res;
    }
    Ok(added)
}

/// Leases up to `limit` ready tasks of `host` in one atomic statement.
pub async fn lease(
    db: &impl ConnectionTrait,
    host: &str,
    limit: u32,
    worker: &str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<Leased>, DbErr> {
    let backend = db.get_database_backend();
    // Several nodes may lease from one table: on PostgreSQL, rows another
    // transaction is leasing are skipped instead of waited for.
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    // Listings first: each one found feeds the queue, so discovery stays
    // ahead of the workers instead of waiting behind the pages it found.
    // 'listing' sorts before 'page', so `kind, id` is that order, and the
    // index `tasks_lease_order` walks it without sorting the queue.
    let sql = format!(
        "UPDATE tasks SET state = 'leased', attempts = attempts + 1, \
           lease_token = 't' || id || '-a' || (attempts + 1), \
           lease_until = $1, worker = $2, updated_at = $3 \
         WHERE id IN (SELECT id FROM tasks \
           WHERE state = 'queued' AND host = $4 AND not_before <= $3 \
           ORDER BY kind, id LIMIT $5{lock}) \
         RETURNING id, crawl_id, kind, site, url, host, attempts, lease_token"
    );
    let rows = Leased::find_by_statement(stmt(
        backend,
        &sql,
        vec![
            lease_until.into(),
            worker.into(),
            now.into(),
            host.into(),
            i64::from(limit).into(),
        ],
    ))
    .all(db)
    .await?;
    record_attempts(db, &rows, worker, now).await?;
    Ok(rows)
}

/// One `task_attempts` row per new lease, for the admin pages.
async fn record_attempts(
    db: &impl ConnectionTrait,
    leased: &[Leased],
    worker: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in leased.chunks(500) {
        let rows = chunk.iter().map(|task| task_attempts::ActiveModel {
            task_id: Set(task.id),
            attempt: Set(task.attempts),
            lease_token: Set(task.lease_token.clone()),
            worker: Set(worker.to_owned()),
            started_at: Set(now),
            ..Default::default()
        });
        task_attempts::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(task_attempts::Column::LeaseToken)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Records how the attempts holding `tokens` ended.
async fn end_attempts(
    db: &impl ConnectionTrait,
    tokens: impl IntoIterator<Item = String>,
    outcome: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let tokens: Vec<String> = tokens.into_iter().collect();
    for chunk in tokens.chunks(500) {
        task_attempts::Entity::update_many()
            .col_expr(task_attempts::Column::FinishedAt, Some(now).into())
            .col_expr(task_attempts::Column::Outcome, Some(outcome).into())
            .col_expr(
                task_attempts::Column::Error,
                error.map(|e| truncate(e, 2000)).into(),
            )
            .filter(task_attempts::Column::LeaseToken.is_in(chunk.iter().map(String::as_str)))
            .filter(task_attempts::Column::FinishedAt.is_null())
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Extends the listed leases that are still current. Returns how many were.
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
        .filter(tasks::Column::State.eq(TaskState::Leased.as_str()))
        .filter(tasks::Column::LeaseToken.is_in(tokens.iter().map(|t| t.as_str())))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Marks leased tasks done, fenced by their tokens, in one statement per
/// chunk. Returns the tokens that were current; the others were stale and
/// changed nothing. The token stays on a done task: it names the attempt
/// that finished it.
pub async fn mark_done(
    db: &impl ConnectionTrait,
    tokens: &[&LeaseToken],
    now: DateTime<Utc>,
) -> Result<HashSet<String>, DbErr> {
    let backend = db.get_database_backend();
    let mut current = HashSet::new();
    for chunk in tokens.chunks(200) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "UPDATE tasks SET state = 'done', lease_until = NULL, updated_at = $1 \
             WHERE state = 'leased' AND lease_token IN ({}) RETURNING lease_token",
            marks.join(", ")
        );
        let mut values: Vec<Value> = vec![now.into()];
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
pub async fn release(
    db: &impl ConnectionTrait,
    token: &LeaseToken,
    setback: &Setback,
    error: &str,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Result<Option<Released>, DbErr> {
    let Some(task) = tasks::Entity::find_by_id(token.task())
        .filter(tasks::Column::LeaseToken.eq(token.as_str()))
        .filter(tasks::Column::State.eq(TaskState::Leased.as_str()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let next = policy.after(u32::try_from(task.attempts).unwrap_or(0), setback, now);
    let res = tasks::Entity::update_many()
        .col_expr(tasks::Column::State, next.state.as_str().into())
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
        .filter(tasks::Column::State.eq(TaskState::Leased.as_str()))
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
    Ok(Some(Released {
        task: task.id,
        crawl_id: task.crawl_id,
        host: task.host,
        token: token.clone(),
        state: next.state,
    }))
}

/// Cancels a leased task for good (robots.txt forbids it, say). The task may
/// be its crawl's last, so the crawl is finished here if it is.
pub async fn cancel(
    db: &impl ConnectionTrait,
    token: &LeaseToken,
    crawl_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let res = tasks::Entity::update_many()
        .col_expr(tasks::Column::State, TaskState::Cancelled.as_str().into())
        .col_expr(tasks::Column::LeaseToken, Option::<String>::None.into())
        .col_expr(
            tasks::Column::LeaseUntil,
            Option::<DateTime<Utc>>::None.into(),
        )
        .col_expr(tasks::Column::LastError, Some(reason.to_owned()).into())
        .col_expr(tasks::Column::UpdatedAt, now.into())
        .filter(tasks::Column::Id.eq(token.task()))
        .filter(tasks::Column::LeaseToken.eq(token.as_str()))
        .filter(tasks::Column::State.eq(TaskState::Leased.as_str()))
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
    Ok(true)
}

/// Returns every lease that ran out to the queue (or makes it `dead`).
pub async fn expire_leases(
    db: &impl ConnectionTrait,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Released>, DbErr> {
    let expired = tasks::Entity::find()
        .filter(tasks::Column::State.eq(TaskState::Leased.as_str()))
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

/// Flips a crawl to `finished` once no task of it is left to do. Returns
/// `true` only for the one call that flipped it.
pub async fn complete_if_done(
    db: &impl ConnectionTrait,
    crawl_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one(stmt(
            backend,
            // EXISTS stops at the first open task; it runs after every
            // merge, so it must not count the whole queue.
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE crawl_id = $1 AND state IN ('queued', 'leased')) AS open",
            vec![crawl_id.into()],
        ))
        .await?;
    let open: bool = match row {
        Some(row) => row.try_get("", "open")?,
        None => false,
    };
    if open {
        return Ok(false);
    }
    let res = crawls::Entity::update_many()
        .col_expr(crawls::Column::Status, "finished".into())
        .col_expr(crawls::Column::FinishedAt, Some(now).into())
        .filter(crawls::Column::Id.eq(crawl_id))
        .filter(crawls::Column::Status.eq("running"))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// `complete_if_done` outside a transaction: the flip is committed when this
/// returns, so it is logged here.
async fn finish_if_done(
    db: &impl ConnectionTrait,
    crawl_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let finished = complete_if_done(db, crawl_id, now).await?;
    if finished {
        tracing::info!(crawl = crawl_id, "crawl finished");
    }
    Ok(finished)
}

/// Finishes running crawls with nothing left to do. Each transition checks
/// completion itself, but on PostgreSQL two transactions that settle a crawl's
/// last two tasks at once each still see the other's task open; the periodic
/// sweep closes what such a race leaves running.
pub async fn finish_idle_crawls(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, DbErr> {
    let running = crawls::Entity::find()
        .filter(crawls::Column::Status.eq("running"))
        .all(db)
        .await?;
    let mut finished = Vec::new();
    for crawl in running {
        if finish_if_done(db, crawl.id, now).await? {
            finished.push(crawl.id);
        }
    }
    Ok(finished)
}

/// Tasks in flight per host, to rebuild the politeness counters on start.
pub async fn leased_by_host(db: &impl ConnectionTrait) -> Result<HashMap<String, u32>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all(stmt(
            backend,
            "SELECT host, COUNT(*) AS n FROM tasks WHERE state = 'leased' GROUP BY host",
            vec![],
        ))
        .await?;
    let mut out = HashMap::new();
    for row in rows {
        let host: String = row.try_get("", "host")?;
        let n: i64 = row.try_get("", "n")?;
        out.insert(host, u32::try_from(n).unwrap_or(u32::MAX));
    }
    Ok(out)
}

/// Hosts that have tasks ready to lease now; none while an admin has paused
/// the queue (the flag is in the database, so it holds on every node).
pub async fn ready_hosts(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all(stmt(
            backend,
            // A loose index scan over `tasks_lease_order`: one probe per host
            // instead of reading every queued task on every dispatch pass.
            "WITH RECURSIVE hosts(host) AS ( \
               SELECT MIN(host) FROM tasks WHERE state = 'queued' \
               UNION ALL \
               SELECT (SELECT MIN(t.host) FROM tasks t WHERE t.state = 'queued' AND t.host > hosts.host) \
               FROM hosts WHERE hosts.host IS NOT NULL) \
             SELECT host FROM hosts WHERE host IS NOT NULL AND EXISTS ( \
               SELECT 1 FROM tasks t WHERE t.state = 'queued' AND t.host = hosts.host AND t.not_before <= $1) \
             AND NOT EXISTS (SELECT 1 FROM flags WHERE name = 'queue_paused')",
            vec![now.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "host")).collect()
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn crawl_with_tasks(
        urls: &[&str],
    ) -> (tempfile::TempDir, sea_orm::DatabaseConnection, i64) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::db::connect(&url).await.expect("db");
        let now = Utc::now();
        let id = crawls::Entity::insert(crawls::ActiveModel {
            status: Set("running".to_owned()),
            trigger: Set("test".to_owned()),
            started_at: Set(now),
            ..Default::default()
        })
        .exec(&db)
        .await
        .expect("crawl")
        .last_insert_id;
        let new: Vec<NewTask> = urls
            .iter()
            .map(|u| NewTask {
                kind: TaskKind::Page,
                site: "s".to_owned(),
                url: Url::parse(u).expect("url"),
            })
            .collect();
        insert_tasks(&db, id, &new, now).await.expect("tasks");
        (dir, db, id)
    }

    async fn status(db: &sea_orm::DatabaseConnection, id: i64) -> String {
        crawls::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .expect("crawl")
            .status
    }

    async fn lease_now(db: &sea_orm::DatabaseConnection, n: u32) -> Vec<Leased> {
        let now = Utc::now();
        lease(
            db,
            "a.test",
            n,
            "w",
            now + chrono::Duration::seconds(30),
            now,
        )
        .await
        .expect("lease")
    }

    fn token(row: &Leased) -> LeaseToken {
        LeaseToken::parse(&row.lease_token).expect("token")
    }

    #[actix_rt::test]
    async fn a_crawl_whose_last_task_is_cancelled_is_finished() {
        let (_dir, db, id) = crawl_with_tasks(&["http://a.test/1", "http://a.test/private"]).await;
        let now = Utc::now();
        let leased = lease_now(&db, 2).await;
        assert_eq!(leased.len(), 2);

        // The page is merged first, while the private one is still leased...
        let first = token(&leased[0]);
        assert!(mark_done(&db, &[&first], now)
            .await
            .expect("done")
            .contains(first.as_str()));
        assert!(!complete_if_done(&db, id, now).await.expect("check"));
        assert_eq!(status(&db, id).await, "running");

        // ...then robots.txt cancels the last one: nothing is left to do.
        assert!(cancel(&db, &token(&leased[1]), id, "disallowed", now)
            .await
            .expect("cancel"));
        assert_eq!(status(&db, id).await, "finished");
    }

    #[actix_rt::test]
    async fn the_sweep_finishes_a_crawl_that_a_race_left_running() {
        let (_dir, db, id) = crawl_with_tasks(&["http://a.test/1"]).await;
        let now = Utc::now();
        let leased = lease_now(&db, 1).await;
        // Settled without a completion check, as when two transactions each
        // saw the other's task still open.
        let only = token(&leased[0]);
        assert_eq!(mark_done(&db, &[&only], now).await.expect("done").len(), 1);
        assert_eq!(status(&db, id).await, "running");

        assert_eq!(finish_idle_crawls(&db, now).await.expect("sweep"), vec![id]);
        assert_eq!(status(&db, id).await, "finished");
        assert!(finish_idle_crawls(&db, now)
            .await
            .expect("again")
            .is_empty());
    }
}
