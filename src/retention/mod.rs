//! Retention: what grows forever is pruned to what `[retention]` keeps.
//!
//! A pass works through rules, one per table. Each rule is a condition on
//! the table's rows; the pass reads up to `retention.batch` matching keys
//! (a read, no lock), then deletes those rows in one short transaction
//! whose statement checks the condition again, pauses, and goes on from
//! the last key it read. So SQLite's write lock is held for one batch at a
//! time, writers in between take their turn, and a pass cut short (a crash,
//! the role moving) has committed whole batches only: the next pass goes on
//! from where the rows stand.
//!
//! Passes run on the node holding the scheduler role, once per cluster
//! (`spawn`), or from `bazaar admin prune`; a pass beside another one only
//! finds fewer rows to delete.

pub(crate) mod report;
pub(crate) mod storage;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::outbox::MailStatus;
use entity::subscriptions::SubscriptionStatus;
use entity::tasks::TaskState;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Value};

use crate::clock::{self, delta};
use crate::config::RetentionSettings;
use crate::crawl::store::{turn, Writer};
use crate::db::{begin_write, stmt};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::roles::Leadership;

/// What a pass removes, as `/metrics` labels it: the tables, and the
/// confirmation links cleared from subscriptions that stay.
pub const TABLES: [&str; 9] = [
    "messages",
    "price_points",
    "tasks",
    "task_attempts",
    "outbox",
    "sessions",
    "subscriptions",
    "confirmation_tokens",
    "audit_log",
];

/// How long a confirmation link is kept after it expired: meanwhile the
/// link still says "expired" and offers a new one, rather than "invalid".
pub const TOKEN_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The pause between two batches: writers waiting for the lock (chat, a
/// bid, the crawl) get it before the next batch does.
const PAUSE: Duration = Duration::from_millis(10);

/// What one rule removes or would remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    pub table: &'static str,
    pub rows: u64,
}

/// What a pass removed, table by table in `TABLES` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub removed: Vec<Removal>,
    pub took: Duration,
    /// Whether the pass ran through every rule (not stopped halfway).
    pub complete: bool,
}

impl PassReport {
    pub fn rows(&self, table: &str) -> u64 {
        self.removed
            .iter()
            .filter(|r| r.table == table)
            .map(|r| r.rows)
            .sum()
    }

    /// `messages=3 price_points=0 ...`, for the log.
    pub fn summary(&self) -> String {
        summary(&self.removed)
    }
}

/// `table=rows` pairs, in `TABLES` order.
pub fn summary(removed: &[Removal]) -> String {
    let mut out = String::new();
    for table in TABLES {
        let rows: u64 = removed
            .iter()
            .filter(|r| r.table == table)
            .map(|r| r.rows)
            .sum();
        let _ = write!(
            out,
            "{}{table}={rows}",
            if out.is_empty() { "" } else { " " }
        );
    }
    out
}

/// The instants the settings turn into, from `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Messages before it go; `None` keeps them by age.
    pub chat: Option<DateTime<Utc>>,
    /// Price points before it thin out.
    pub prices: DateTime<Utc>,
    /// Sent and cancelled mail before it goes.
    pub outbox: DateTime<Utc>,
    /// Confirmation links that expired before it go.
    pub tokens: DateTime<Utc>,
    /// Audit rows before it go.
    pub audit: DateTime<Utc>,
    /// Sessions that end at or before it go.
    pub now: DateTime<Utc>,
}

impl Cutoffs {
    /// Each limit counted back from `now`: a row exactly at a limit is
    /// within it, and kept.
    pub fn at(settings: &RetentionSettings, now: DateTime<Utc>) -> Cutoffs {
        let days = |n: u32| now - chrono::Duration::days(i64::from(n));
        Cutoffs {
            chat: settings.chat_days.map(days),
            prices: days(settings.prices_full_days),
            outbox: days(settings.outbox_days),
            tokens: now - delta(TOKEN_GRACE),
            audit: days(settings.audit_days),
            now,
        }
    }
}

/// How a rule's rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Delete,
    /// Tasks: their attempts go first, and the crawl counts them.
    DeleteTasks,
    /// Subscriptions that stay lose their used or expired link.
    ClearToken,
}

/// The key a rule pages through its rows by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// `id`, an integer.
    Int,
    /// `id`, text.
    Text,
    /// `seq`, within one room's messages.
    Seq,
}

impl Key {
    fn column(self) -> &'static str {
        match self {
            Key::Int | Key::Text => "id",
            Key::Seq => "seq",
        }
    }
}

/// Rows of `table` (as `t`) matching `condition`, with `values` bound to
/// its `$1`, `$2`...
#[derive(Debug, Clone)]
struct Rule {
    label: &'static str,
    table: &'static str,
    key: Key,
    condition: String,
    values: Vec<Value>,
    action: Action,
}

/// The day of a timestamp column, in UTC, as each backend writes it.
fn day(backend: DatabaseBackend, column: &str) -> String {
    match backend {
        // SQLite stores UTC times as text starting `YYYY-MM-DD`.
        DatabaseBackend::Sqlite => format!("substr({column}, 1, 10)"),
        _ => format!("(({column}) AT TIME ZONE 'UTC')::date"),
    }
}

/// The rules for `settings` at `now`, from what the database holds: the
/// rooms over their count and where each is cut, the oldest crawl kept.
async fn rules(
    db: &impl ConnectionTrait,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
) -> Result<Vec<Rule>, DbErr> {
    let backend = db.get_database_backend();
    let cut = Cutoffs::at(settings, now);
    let mut rules = Vec::new();

    // Messages: each room's last `chat_messages`, and (if set) none older
    // than `chat_days`. A room over its count is paged through by seq, in
    // its own stretch of the (topic, seq) index: paged by id, every batch
    // would read and sort all of the room's old messages again, and a pass
    // over a million of them would take a core for minutes.
    let over = rooms_over(db, settings.chat_messages).await?;
    let mut counted = Vec::new();
    let mut counted_values: Vec<Value> = Vec::new();
    for (topic, seq) in over {
        let n = counted_values.len();
        counted.push(format!("(t.topic = ${} AND t.seq <= ${})", n + 2, n + 3));
        counted_values.push(topic.clone().into());
        counted_values.push(seq.into());
        rules.push(Rule {
            label: "messages",
            table: "messages",
            key: Key::Seq,
            condition: "t.topic = $1 AND t.seq <= $2".to_owned(),
            values: vec![topic.into(), seq.into()],
            action: Action::Delete,
        });
    }
    if let Some(chat) = cut.chat {
        // What the rooms' counts already remove is not counted twice.
        let condition = if counted.is_empty() {
            "t.at < $1".to_owned()
        } else {
            format!("t.at < $1 AND NOT ({})", counted.join(" OR "))
        };
        let mut values: Vec<Value> = vec![chat.into()];
        values.extend(counted_values);
        rules.push(Rule {
            label: "messages",
            table: "messages",
            key: Key::Int,
            condition,
            values,
            action: Action::Delete,
        });
    }

    // Price points: older than `prices_full_days`, all but the lowest of
    // its offer's day (the latest of equal ones), and never an offer's
    // latest point: the chart draws it up to now.
    rules.push(Rule {
        label: "price_points",
        table: "price_points",
        key: Key::Int,
        condition: format!(
            "t.at < $1 \
             AND EXISTS (SELECT 1 FROM price_points q \
                 WHERE q.game_id = t.game_id AND q.store = t.store \
                 AND q.currency = t.currency AND q.at < $1 AND {} = {} \
                 AND (q.price_cents < t.price_cents \
                      OR (q.price_cents = t.price_cents AND q.id > t.id))) \
             AND t.id <> (SELECT MAX(r.id) FROM price_points r \
                 WHERE r.game_id = t.game_id AND r.store = t.store)",
            day(backend, "q.at"),
            day(backend, "t.at"),
        ),
        values: vec![cut.prices.into()],
        action: Action::Delete,
    });

    // Tasks of crawls older than the last `crawls_kept`, once final, but
    // dead ones: they wait for an admin.
    if let Some(oldest) = oldest_crawl_kept(db, settings.crawls_kept).await? {
        rules.push(Rule {
            label: "tasks",
            table: "tasks",
            key: Key::Int,
            condition: "t.crawl_id < $1 AND t.state IN ($2, $3)".to_owned(),
            values: vec![
                oldest.into(),
                TaskState::Done.into(),
                TaskState::Cancelled.into(),
            ],
            action: Action::DeleteTasks,
        });
    }

    rules.push(Rule {
        label: "outbox",
        table: "outbox",
        key: Key::Int,
        condition: "t.status IN ($2, $3) \
                    AND COALESCE(t.sent_at, t.created_at) < $1"
            .to_owned(),
        values: vec![
            cut.outbox.into(),
            MailStatus::Sent.into(),
            MailStatus::Cancelled.into(),
        ],
        action: Action::Delete,
    });
    rules.push(Rule {
        label: "sessions",
        table: "sessions",
        key: Key::Text,
        condition: "t.expires_at <= $1".to_owned(),
        values: vec![cut.now.into()],
        action: Action::Delete,
    });
    // A subscription never confirmed, whose link expired: nobody wanted it.
    rules.push(Rule {
        label: "subscriptions",
        table: "subscriptions",
        key: Key::Int,
        condition: "t.status = $2 AND t.token_expires_at < $1".to_owned(),
        values: vec![cut.tokens.into(), SubscriptionStatus::Pending.into()],
        action: Action::Delete,
    });
    // A confirmed or ended subscription's link, used or expired.
    rules.push(Rule {
        label: "confirmation_tokens",
        table: "subscriptions",
        key: Key::Int,
        condition: "t.status <> $2 AND t.token_hash IS NOT NULL \
                    AND t.token_expires_at < $1"
            .to_owned(),
        values: vec![cut.tokens.into(), SubscriptionStatus::Pending.into()],
        action: Action::ClearToken,
    });
    rules.push(Rule {
        label: "audit_log",
        table: "audit_log",
        key: Key::Int,
        condition: "t.at < $1".to_owned(),
        values: vec![cut.audit.into()],
        action: Action::Delete,
    });
    Ok(rules)
}

/// Rooms with more than `keep` messages, each with the highest seq that
/// goes: the one just below its last `keep`.
async fn rooms_over(db: &impl ConnectionTrait, keep: u64) -> Result<Vec<(String, i64)>, DbErr> {
    let backend = db.get_database_backend();
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let rows = db
        .query_all(stmt(
            backend,
            "SELECT topic FROM messages GROUP BY topic HAVING COUNT(*) > $1 ORDER BY topic",
            vec![keep.into()],
        ))
        .await?;
    let mut rooms = Vec::with_capacity(rows.len());
    for row in rows {
        let topic: String = row.try_get("", "topic")?;
        let cut = db
            .query_one(stmt(
                backend,
                "SELECT seq FROM messages WHERE topic = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2",
                vec![topic.clone().into(), keep.into()],
            ))
            .await?;
        if let Some(cut) = cut {
            rooms.push((topic, cut.try_get("", "seq")?));
        }
    }
    Ok(rooms)
}

/// The id of the oldest of the last `kept` crawls; `None` while there
/// are no more than that.
async fn oldest_crawl_kept(db: &impl ConnectionTrait, kept: u32) -> Result<Option<i64>, DbErr> {
    let row = db
        .query_one(stmt(
            db.get_database_backend(),
            "SELECT id FROM crawls ORDER BY id DESC LIMIT 1 OFFSET $1",
            vec![i64::from(kept).into()],
        ))
        .await?;
    // Fewer crawls than `kept` + 1: none is old enough.
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get("", "id")?;
    Ok(Some(id + 1))
}

/// What a pass would remove now, table by table in `TABLES` order.
pub async fn plan(
    db: &impl ConnectionTrait,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
) -> Result<Vec<Removal>, DbErr> {
    let backend = db.get_database_backend();
    let mut removed: Vec<Removal> = TABLES
        .iter()
        .map(|&table| Removal { table, rows: 0 })
        .collect();
    for rule in rules(db, settings, now).await? {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} t WHERE {}",
            rule.table, rule.condition
        );
        let rows = count(db, stmt(backend, &sql, rule.values.clone())).await?;
        add(&mut removed, rule.label, rows);
        if rule.action == Action::DeleteTasks {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM task_attempts a WHERE a.task_id IN \
                 (SELECT t.id FROM tasks t WHERE {})",
                rule.condition
            );
            let rows = count(db, stmt(backend, &sql, rule.values)).await?;
            add(&mut removed, "task_attempts", rows);
        }
    }
    Ok(removed)
}

async fn count(db: &impl ConnectionTrait, statement: sea_orm::Statement) -> Result<u64, DbErr> {
    let n: i64 = match db.query_one(statement).await? {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

fn add(removed: &mut [Removal], table: &str, rows: u64) {
    if let Some(slot) = removed.iter_mut().find(|r| r.table == table) {
        slot.rows += rows;
    }
}

/// Runs one pass: every rule, batch by batch, while `go_on` says so (it is
/// asked before each batch). Returns what went.
pub async fn pass(
    db: &DatabaseConnection,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
    go_on: impl Fn() -> bool,
) -> Result<PassReport, DbErr> {
    pass_telling(db, settings, now, go_on, |_, _| {}).await
}

/// [`pass`], telling `went` what each batch removed as it commits: a pass
/// over millions of rows takes minutes, and shows its progress meanwhile.
pub async fn pass_telling(
    db: &DatabaseConnection,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
    go_on: impl Fn() -> bool,
    mut went: impl FnMut(&'static str, u64),
) -> Result<PassReport, DbErr> {
    let started = Instant::now();
    let mut removed: Vec<Removal> = TABLES
        .iter()
        .map(|&table| Removal { table, rows: 0 })
        .collect();
    let mut complete = true;
    'rules: for rule in rules(db, settings, now).await? {
        let mut after: Option<Value> = None;
        loop {
            if !go_on() {
                complete = false;
                break 'rules;
            }
            let keys = next_keys(db, &rule, after.clone(), settings.batch).await?;
            let Some(last) = keys.last().cloned() else {
                break;
            };
            let full = keys.len() as u64 == settings.batch;
            for (table, rows) in remove(db, &rule, keys).await? {
                add(&mut removed, table, rows);
                went(table, rows);
            }
            after = Some(last);
            if !full {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    Ok(PassReport {
        removed,
        took: started.elapsed(),
        complete,
    })
}

/// Up to `batch` keys of rows matching `rule`, after `after`, in order.
async fn next_keys(
    db: &impl ConnectionTrait,
    rule: &Rule,
    after: Option<Value>,
    batch: u64,
) -> Result<Vec<Value>, DbErr> {
    let mut values = rule.values.clone();
    let key = rule.key.column();
    let mut sql = format!(
        "SELECT t.{key} AS id FROM {} t WHERE ({})",
        rule.table, rule.condition
    );
    if let Some(after) = after {
        values.push(after);
        let _ = write!(sql, " AND t.{key} > ${}", values.len());
    }
    values.push(i64::try_from(batch).unwrap_or(i64::MAX).into());
    let _ = write!(sql, " ORDER BY t.{key} LIMIT ${}", values.len());
    let rows = db
        .query_all(stmt(db.get_database_backend(), &sql, values))
        .await?;
    rows.iter()
        .map(|row| match rule.key {
            Key::Int | Key::Seq => row.try_get::<i64>("", "id").map(Value::from),
            Key::Text => row.try_get::<String>("", "id").map(Value::from),
        })
        .collect()
}

/// Removes the rows of `rule` from the first of `keys` to the last (the
/// rows that matched when they were read, in key order) that still match
/// it, in one transaction that also adds them to `retention_totals`; what
/// went, by label. A row between them that matches now goes by the same
/// rule. As a range, a batch reads only its own stretch of an index: a
/// list of keys beside the room's `seq <= cut` would have SQLite read the
/// whole of the room's old messages for every batch.
async fn remove(
    db: &DatabaseConnection,
    rule: &Rule,
    keys: Vec<Value>,
) -> Result<Vec<(&'static str, u64)>, DbErr> {
    let backend = db.get_database_backend();
    let (Some(first), Some(last)) = (keys.first().cloned(), keys.last().cloned()) else {
        return Ok(Vec::new());
    };
    let mut values = rule.values.clone();
    let n = values.len();
    values.push(first);
    values.push(last);
    let key = rule.key.column();
    let matching = format!(
        "t.{key} >= ${} AND t.{key} <= ${} AND ({})",
        n + 1,
        n + 2,
        rule.condition
    );
    // On SQLite, in line with the crawl's writers rather than racing them
    // for the lock.
    let _turn = turn(db, Writer::Merger).await;
    let txn = begin_write(db).await?;
    let mut went = Vec::new();
    match rule.action {
        Action::Delete => {
            let sql = format!("DELETE FROM {} AS t WHERE {matching}", rule.table);
            let done = txn.execute(stmt(backend, &sql, values)).await?;
            went.push((rule.label, done.rows_affected()));
        }
        Action::ClearToken => {
            let sql = format!(
                "UPDATE {} AS t SET token_hash = NULL, token_expires_at = NULL, \
                 pending_target_cents = NULL WHERE {matching}",
                rule.table
            );
            let done = txn.execute(stmt(backend, &sql, values)).await?;
            went.push((rule.label, done.rows_affected()));
        }
        Action::DeleteTasks => {
            // What goes, counted on each crawl's row first, so that its
            // summary still adds up.
            let counted = txn
                .query_all(stmt(
                    backend,
                    &format!(
                        "SELECT t.crawl_id, t.state, COUNT(*) AS n FROM tasks t \
                         WHERE {matching} GROUP BY t.crawl_id, t.state"
                    ),
                    values.clone(),
                ))
                .await?;
            for row in counted {
                let crawl: i64 = row.try_get("", "crawl_id")?;
                let state: TaskState = row.try_get("", "state")?;
                let n: i64 = row.try_get("", "n")?;
                let column = match state {
                    TaskState::Done => "pruned_done",
                    _ => "pruned_cancelled",
                };
                txn.execute(stmt(
                    backend,
                    &format!("UPDATE crawls SET {column} = {column} + $1 WHERE id = $2"),
                    vec![n.into(), crawl.into()],
                ))
                .await?;
            }
            let attempts = txn
                .execute(stmt(
                    backend,
                    &format!(
                        "DELETE FROM task_attempts WHERE task_id IN \
                         (SELECT t.id FROM tasks t WHERE {matching})"
                    ),
                    values.clone(),
                ))
                .await?;
            let tasks = txn
                .execute(stmt(
                    backend,
                    &format!("DELETE FROM tasks AS t WHERE {matching}"),
                    values,
                ))
                .await?;
            went.push(("task_attempts", attempts.rows_affected()));
            went.push((rule.label, tasks.rows_affected()));
        }
    }
    for (label, rows) in &went {
        if *rows > 0 {
            txn.execute(stmt(
                backend,
                "INSERT INTO retention_totals (name, removed) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE \
                 SET removed = retention_totals.removed + excluded.removed",
                vec![
                    (*label).into(),
                    i64::try_from(*rows).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await?;
        }
    }
    txn.commit().await?;
    Ok(went)
}

/// Rows retention ever removed as `label` (a table), over every node.
pub async fn removed_ever(db: &impl ConnectionTrait, label: &str) -> Result<u64, DbErr> {
    count(
        db,
        stmt(
            db.get_database_backend(),
            "SELECT removed AS n FROM retention_totals WHERE name = $1",
            vec![label.into()],
        ),
    )
    .await
}

/// `bazaar admin prune`: with `dry_run`, the overview of what a pass would
/// remove; otherwise a pass now, and what it removed. Safe beside a
/// running server: a pass is short transactions, as the server's own.
pub async fn prune_command(
    db: &DatabaseConnection,
    settings: &RetentionSettings,
    dry_run: bool,
) -> Result<String, DbErr> {
    let now = Utc::now();
    if dry_run {
        return Ok(report::overview(db, settings, now).await?.text());
    }
    let report = pass(db, settings, now, || true).await?;
    log_pass(&report, settings);
    let mut out = String::new();
    for removal in &report.removed {
        let _ = writeln!(out, "{:<20} {:>12} removed", removal.table, removal.rows);
    }
    let _ = writeln!(out, "pass took {} ms", report.took.as_millis());
    Ok(out)
}

/// How often a long pass says in the log how far it has got.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Runs a pass every `retention.every` while this node holds the
/// scheduler role. What each batch removes is counted in `/metrics` as it commits; a pass
/// is logged when it ends, and every `PROGRESS_EVERY` while it runs.
pub fn spawn(
    db: DatabaseConnection,
    settings: RetentionSettings,
    leadership: Leadership,
    metrics: std::sync::Arc<Metrics>,
    lifecycle: &Lifecycle,
) {
    if settings.every.is_zero() {
        tracing::info!("retention passes are off (retention.every = 0s)");
        return;
    }
    // A pass cut short by the stop has committed whole batches only.
    lifecycle.spawn(async move {
        let mut tick = tokio::time::interval(settings.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !leadership.held() {
                continue;
            }
            let held = || leadership.held();
            let mut so_far: Vec<Removal> = TABLES
                .iter()
                .map(|&table| Removal { table, rows: 0 })
                .collect();
            let mut told = Instant::now();
            let went = |table: &'static str, rows: u64| {
                metrics.retention_removed(table, rows);
                add(&mut so_far, table, rows);
                if told.elapsed() >= PROGRESS_EVERY {
                    told = Instant::now();
                    tracing::info!(
                        "retention pass going on: removed {} so far",
                        summary(&so_far)
                    );
                }
            };
            match pass_telling(&db, &settings, clock::now(), held, went).await {
                Ok(report) => {
                    metrics.retention_pass_took(report.took);
                    log_pass(&report, &settings);
                }
                Err(err) => tracing::error!(error = %err, "retention pass failed"),
            }
        }
    });
}

/// One line per pass with what went from each table; the audit log's
/// removals get a line of their own, so that they are never silent.
pub fn log_pass(report: &PassReport, settings: &RetentionSettings) {
    tracing::info!(
        took_ms = report.took.as_millis() as u64,
        complete = report.complete,
        "retention pass removed {}",
        report.summary()
    );
    let audit = report.rows("audit_log");
    if audit > 0 {
        tracing::info!(
            rows = audit,
            days = settings.audit_days,
            "removed {audit} audit rows older than {} days",
            settings.audit_days
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_exactly_at_a_limit_is_within_it() {
        let settings = RetentionSettings {
            chat_days: Some(30),
            ..RetentionSettings::default()
        };
        let now = "2026-12-07T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let cut = Cutoffs::at(&settings, now);
        let day = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // Rules delete strictly before the cutoff.
        assert_eq!(cut.chat, Some(day("2026-11-07T12:00:00Z")));
        assert_eq!(cut.prices, day("2026-09-08T12:00:00Z"));
        assert_eq!(cut.outbox, day("2026-11-07T12:00:00Z"));
        assert_eq!(cut.audit, day("2025-12-07T12:00:00Z"));
        assert_eq!(cut.tokens, day("2026-11-30T12:00:00Z"));
        assert_eq!(Cutoffs::at(&RetentionSettings::default(), now).chat, None);
    }

    #[test]
    fn the_summary_names_every_table_in_order() {
        let removed = [
            Removal {
                table: "audit_log",
                rows: 2,
            },
            Removal {
                table: "messages",
                rows: 7,
            },
        ];
        assert_eq!(
            summary(&removed),
            "messages=7 price_points=0 tasks=0 task_attempts=0 outbox=0 sessions=0 \
             subscriptions=0 confirmation_tokens=0 audit_log=2"
        );
    }
}
