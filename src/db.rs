//! Connecting to the database (SQLite in WAL mode, or PostgreSQL),
//! migrating it, and the helpers every module's hand-written SQL shares.

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, Statement, TransactionTrait, Value,
};

/// Opens the database at `url` and brings its schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let db = open(url).await?;
    Migrator::up(&db, None)
        .await
        .context("could not migrate the database")?;
    Ok(db)
}

/// Opens the database without migrating it (for `bazaar migrate`).
pub async fn open(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // One writer at a time is all SQLite allows; a small pool avoids
        // connections queueing on the write lock instead of in the pool.
        // Each SQLite connection answers from a thread of its own, so a
        // liveness query before each use would cost a round trip to it for
        // nothing: an embedded database does not drop connections.
        options
            .max_connections(4)
            .min_connections(1)
            .test_before_acquire(false);
        // Per-connection pragmas must be set on every pooled connection.
        options.map_sqlx_sqlite_opts(|opts| {
            // Every commit writes each page it touched whole into the log:
            // a chat batch or a bid changes a few rows on several pages, so
            // small pages quarter what is written (40 MB/s of log for busy
            // chat at 4 KiB, the default) and with it the checkpoints' and
            // the kernel's work. Applies to new databases only.
            opts.page_size(1024)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // A commit that crosses the checkpoint threshold would copy
                // the log into the database and fsync it before returning:
                // a stall of milliseconds to seconds for whoever commits then
                // (a chat message, a bid). `checkpoint_in_background` does
                // that work off every request's path.
                .pragma("wal_autocheckpoint", "0")
        });
    } else {
        options.max_connections(16).min_connections(1);
    }
    Database::connect(options)
        .await
        .with_context(|| format!("could not open the database at {}", redact(url)))
}

/// How often the SQLite log is copied into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Log pages past which the log is emptied even if writers must wait a
/// moment (64 MiB at the 1 KiB pages `open_pool` creates databases with).
const LOG_PAGES_MAX: i64 = 65_536;

/// On SQLite, copies the write-ahead log into the database every second,
/// on a task of its own. A passive checkpoint waits for no one and makes
/// no writer wait, so commits only ever append to the log.
///
/// Under steady writes a passive checkpoint never catches up with the last
/// commit, and SQLite starts the log over only once it has: the log would
/// grow for as long as the writes go on (200 MB in five seconds of busy
/// chat). Past `LOG_PAGES_MAX` the task truncates it, right after a passive
/// pass has copied nearly all of it, so writers wait only for the rest.
pub fn checkpoint_in_background(db: &DatabaseConnection) {
    if db.get_database_backend() != DatabaseBackend::Sqlite {
        return;
    }
    let db = db.clone();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let outcome = match checkpoint(&db, "PASSIVE").await {
                Ok(log_pages) if log_pages > LOG_PAGES_MAX => {
                    checkpoint(&db, "TRUNCATE").await.map(|_| ())
                }
                other => other.map(|_| ()),
            };
            if let Err(err) = outcome {
                tracing::warn!(error = %err, "could not checkpoint the database log");
            }
        }
    });
}

/// Runs a checkpoint; the pages in the log, as SQLite reports them.
async fn checkpoint(db: &DatabaseConnection, mode: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one(Statement::from_string(
            DatabaseBackend::Sqlite,
            format!("PRAGMA wal_checkpoint({mode})"),
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get("", "log")?,
        None => 0,
    })
}

/// Begins a transaction that reads and then writes. On SQLite it takes the
/// write lock at once, as `BEGIN IMMEDIATE` would (sea-orm only issues a plain
/// `BEGIN`): a transaction that reads first and writes later fails with
/// "database is locked" whenever another connection wrote in between, and
/// no busy timeout can save it. An update that matches no row takes the lock
/// and changes nothing. PostgreSQL needs none of this.
pub async fn begin_write(
    db: &(impl ConnectionTrait + TransactionTrait),
) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        txn.execute_unprepared("UPDATE seaql_migrations SET version = version WHERE 0")
            .await?;
    }
    Ok(txn)
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

/// Cuts `s` to at most `max` bytes on a character boundary, to fit a
/// bounded column.
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

/// The URL with any password replaced, for error messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://bazaar:hunter2@db:5432/bazaar"),
            "postgres://bazaar:***@db:5432/bazaar"
        );
        assert_eq!(redact("sqlite://data/bazaar.db"), "sqlite://data/bazaar.db");
    }
}
