//! Connecting to the database (SQLite in WAL mode, or PostgreSQL),
//! migrating it, and the helpers every module's hand-written SQL shares.

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteAutoVacuum, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, Statement, TransactionTrait, Value,
};

use crate::lifecycle::Lifecycle;

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
    open_with(url, None, BUSY_TIMEOUT).await
}

/// The name of the thread the chat store's SQLite connection answers from
/// (Linux keeps 15 bytes of a thread's name).
const STORE_THREAD: &str = "bazaar-store";

/// The connection chat messages are stored through: work nobody waits on
/// as it happens, since members have the messages already. On SQLite it
/// answers from a thread of its own at the lowest normal priority (nice
/// 19), so that on a busy core the threads delivering messages and
/// answering requests take the CPU the moment they wake instead of
/// queueing behind a commit; what waits for it is bounded (a room holds
/// `UNSTORED_MAX` messages).
///
/// Not idle priority (SCHED_IDLE), which it had: each insert holds the
/// write lock, and a thread that runs only when a core would otherwise
/// idle held it for seconds whenever the machine was busy (a build beside
/// the server), while the rooms' seq marks, the Mailer and the scheduler
/// role's renewal waited until "database is locked". At nice 19 it still
/// gets its turn.
///
/// Inserts through it also copy the log into the database in small steps,
/// at the same priority. `checkpoint_in_background`'s connection runs at
/// normal priority: it bounds the log even on a machine never idle. On
/// PostgreSQL the work runs in the server's processes: this is `db` itself.
pub async fn open_store(db: &DatabaseConnection, url: &str) -> anyhow::Result<DatabaseConnection> {
    if db.get_database_backend() != DatabaseBackend::Sqlite {
        return Ok(db.clone());
    }
    let store = open_with(url, Some(STORE_THREAD), BUSY_TIMEOUT).await?;
    lower_priority_of_threads(STORE_THREAD);
    Ok(store)
}

/// The name of the thread retention's passes answer from.
const PRUNE_THREAD: &str = "bazaar-prune";

/// The connection retention's passes go through. On SQLite it answers from
/// a thread of its own at nice 19, as the chat store's: a pass over a
/// million old messages is minutes of work, and on a busy core it takes
/// only what the delivering threads leave, while each batch, which holds
/// the write lock, still gets its turn. On PostgreSQL the work runs in the
/// server's processes: this is `db` itself.
pub async fn open_pruner(db: &DatabaseConnection, url: &str) -> anyhow::Result<DatabaseConnection> {
    if db.get_database_backend() != DatabaseBackend::Sqlite {
        return Ok(db.clone());
    }
    let pruner = open_with(url, Some(PRUNE_THREAD), BUSY_TIMEOUT).await?;
    lower_priority_of_threads(PRUNE_THREAD);
    Ok(pruner)
}

/// The nice value of the background writers' threads: the lowest normal
/// priority, which CFS still gives a share of a busy core.
const BACKGROUND_NICE: libc::c_int = 19;

/// Puts this process's threads named `name` at `BACKGROUND_NICE`.
/// Lowering needs no privilege; where it fails, the threads keep their
/// priority and only latency suffers.
fn lower_priority_of_threads(name: &str) {
    for tid in threads_named(name) {
        // SAFETY: setpriority reads its plain integer arguments only; on
        // Linux, PRIO_PROCESS with a thread id sets that thread's nice.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE) } != 0
        {
            tracing::warn!(
                thread = name,
                error = %std::io::Error::last_os_error(),
                "could not lower a thread's priority"
            );
        }
    }
}

/// The ids of this process's threads named `name`.
fn threads_named(name: &str) -> Vec<libc::pid_t> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .filter_map(|task| task.file_name().to_str()?.parse().ok())
        .collect()
}

/// How long a SQLite connection waits for a lock before it gives up with
/// "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a pool; on SQLite, with `one_thread`, a pool of one connection
/// answering from a thread of that name, and each connection waiting up to
/// `busy_timeout` for a lock.
async fn open_with(
    url: &str,
    one_thread: Option<&'static str>,
    busy_timeout: Duration,
) -> anyhow::Result<DatabaseConnection> {
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
        options.test_before_acquire(false);
        match one_thread {
            None => options.max_connections(4).min_connections(1),
            // The connection exists once the pool is open, and is never
            // replaced: a new one would answer from a new thread.
            Some(_) => {
                let forever = Duration::from_secs(100 * 365 * 24 * 3600);
                options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(forever)
                    .max_lifetime(forever)
            }
        };
        // Per-connection pragmas must be set on every pooled connection.
        // (Only one mapping is kept: everything goes in this one.)
        options.map_sqlx_sqlite_opts(move |opts| {
            let opts = match one_thread {
                Some(name) => opts.thread_name(move |_| name.to_owned()),
                None => opts,
            };
            // Every commit writes each page it touched whole into the log:
            // a chat batch or a bid changes a few rows on several pages, so
            // small pages quarter what is written (40 MB/s of log for busy
            // chat at 4 KiB, the default) and with it the checkpoints' and
            // the kernel's work. Applies to new databases only.
            // With `auto_vacuum = FULL` a commit that frees pages (a
            // retention batch) gives them back to the file system at once,
            // for about the cost of the pages it moves, and the free list
            // stays empty. `INCREMENTAL`'s steps looked each page up in
            // the free list: with the half million free pages of a big
            // pass that took hours, and a step held the write lock for
            // seconds. Switching from INCREMENTAL (an older Bazaar's) gives
            // the free pages back as the database opens, about 2 s per
            // 300 MiB. A database made without auto vacuum keeps it off.
            let opts = opts
                .auto_vacuum(SqliteAutoVacuum::Full)
                .page_size(1024)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy_timeout)
                .foreign_keys(true);
            match one_thread {
                // The chat store copies the log into the database in small
                // steps as it goes (SQLite's own threshold, 1,000 pages),
                // at its low priority, so that busy chat leaves little for
                // `checkpoint_in_background` to do at normal priority.
                Some(_) => opts,
                // A commit that crosses the checkpoint threshold would copy
                // the log into the database and fsync it before returning:
                // a stall of milliseconds to seconds for whoever commits then
                // (a bid, a page's form). `checkpoint_in_background` does
                // that work off every request's path.
                None => opts.pragma("wal_autocheckpoint", "0"),
            }
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
/// moment (64 MiB at the 1 KiB pages `open` creates databases with).
const LOG_PAGES_MAX: i64 = 65_536;

/// The name of the thread the checkpoints' connection answers from.
const CHECKPOINT_THREAD: &str = "bazaar-ckpt";

/// How long an emptying checkpoint waits for the write lock, and then,
/// holding it, for readers to finish. Every writer waits as long as it
/// holds the lock, so this bounds the stall; one that runs out leaves the
/// log for the next second.
const TRUNCATE_PATIENCE: Duration = Duration::from_millis(20);

/// On SQLite, copies the write-ahead log into the database every second,
/// on a task and a connection of its own. A passive checkpoint waits for
/// no one and makes no writer wait, so commits only ever append to the log.
///
/// Under steady writes a passive checkpoint never catches up with the last
/// commit, and SQLite starts the log over only once it has: the log would
/// grow for as long as the writes go on (200 MB in five seconds of busy
/// chat). Past `LOG_PAGES_MAX` the task truncates it, right after a passive
/// pass has copied nearly all of it, so writers wait only for the rest.
///
/// A truncating checkpoint takes the write lock and then waits for every
/// reader to finish, as long as its connection's busy timeout allows. With
/// the pool's 10 s, a long read (a retention pass counting a room's
/// millions of messages) had every writer wait behind it until their own
/// timeouts ran out ("database is locked"); hence a connection whose
/// patience is `TRUNCATE_PATIENCE`.
pub async fn checkpoint_in_background(url: &str, lifecycle: &Lifecycle) -> anyhow::Result<()> {
    if !url.starts_with("sqlite:") {
        return Ok(());
    }
    let db = open_with(url, Some(CHECKPOINT_THREAD), TRUNCATE_PATIENCE).await?;
    lifecycle.spawn(async move {
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
    Ok(())
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
pub fn stmt(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        // SQLite numbers its parameters `?1`, PostgreSQL `$1`.
        DatabaseBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `n` numbered parameters from `$first` on, comma-separated, for `stmt`:
/// an `IN (...)` list or a row of `VALUES`.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
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

    /// The scheduling policy and nice value of this process's threads
    /// named `name` that are still running.
    fn priorities_of(name: &str) -> Vec<(i32, i64)> {
        threads_named(name)
            .into_iter()
            .filter_map(|tid| {
                // SAFETY: reads the policy of a thread of this process; -1
                // when it (another test's) ended meanwhile.
                let policy = unsafe { libc::sched_getscheduler(tid) };
                let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
                // The 19th field; the name, the 2nd, may hold spaces.
                let (_, fields) = stat.rsplit_once(')')?;
                let nice = fields.split_whitespace().nth(16)?.parse().ok()?;
                (policy != -1).then_some((policy, nice))
            })
            .collect()
    }

    #[actix_web::test]
    async fn the_chat_store_runs_at_nice_19_and_commits_for_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::sqlite_url(dir.path());
        let db = connect(&url).await.unwrap();
        let store = open_store(&db, &url).await.unwrap();

        let stores = priorities_of(STORE_THREAD);
        assert!(!stores.is_empty());
        assert!(
            stores.iter().all(|p| *p == (libc::SCHED_OTHER, 19)),
            "{stores:?}"
        );
        // The main pool's threads keep their priority.
        let main_pool = priorities_of("sqlx-sqlite-wor");
        assert!(!main_pool.is_empty());
        assert!(
            main_pool.iter().all(|p| *p == (libc::SCHED_OTHER, 0)),
            "{main_pool:?}"
        );

        // NORMAL (1): a commit is not an fsync; the store checkpoints at
        // SQLite's threshold, and nothing else does on commit.
        assert_eq!(pragma_of(&store, "PRAGMA synchronous").await, 1);
        assert_eq!(pragma_of(&db, "PRAGMA synchronous").await, 1);
        assert_eq!(pragma_of(&store, "PRAGMA wal_autocheckpoint").await, 1000);
        assert_eq!(pragma_of(&db, "PRAGMA wal_autocheckpoint").await, 0);
        assert_eq!(pragma_of(&store, "PRAGMA busy_timeout").await, 10_000);

        store
            .execute_unprepared("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (42)")
            .await
            .unwrap();
        let row = db
            .query_one(Statement::from_string(
                DatabaseBackend::Sqlite,
                "SELECT x FROM t",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i32>("", "x").unwrap(), 42);
    }

    /// A small write every 50 ms for `total`; the longest any of them took.
    async fn write_every_50ms_for(db: &DatabaseConnection, total: Duration) -> Duration {
        let mut slowest = Duration::ZERO;
        let until = std::time::Instant::now() + total;
        while std::time::Instant::now() < until {
            let started = std::time::Instant::now();
            db.execute_unprepared("INSERT INTO t VALUES (x'00')")
                .await
                .expect("a write while a long read holds the log");
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slowest
    }

    #[actix_web::test]
    async fn emptying_the_log_never_holds_writers_behind_a_long_read() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::sqlite_url(dir.path());
        let db = connect(&url).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x BLOB)")
            .await
            .unwrap();

        // A long read (a retention pass counting a big table) keeps the
        // log from being copied past its snapshot ...
        let reader = open(&url).await.unwrap();
        let read = reader.begin().await.unwrap();
        read.query_one(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT COUNT(*) FROM t",
        ))
        .await
        .unwrap();
        // ... while more than `LOG_PAGES_MAX` pages go into it.
        db.execute_unprepared(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 70000) \
             INSERT INTO t SELECT randomblob(900) FROM n",
        )
        .await
        .unwrap();

        let lifecycle = Lifecycle::new();
        checkpoint_in_background(&url, &lifecycle).await.unwrap();
        // Every second the log is over its limit and an emptying
        // checkpoint tries, finds the reader, and lets go of the lock.
        let slowest = write_every_50ms_for(&db, Duration::from_secs(3)).await;
        assert!(
            slowest < Duration::from_secs(1),
            "a write waited {slowest:?} behind the checkpoint"
        );

        // Once the read ends, the next one empties the log.
        read.commit().await.unwrap();
        let wal = dir.path().join("bazaar.db-wal");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&wal).unwrap().len() > 1 << 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was not emptied once the read ended"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(lifecycle.stop(Duration::from_secs(5)).await);
    }
    async fn pragma_of(db: &DatabaseConnection, sql: &str) -> i64 {
        db.query_one(Statement::from_string(
            DatabaseBackend::Sqlite,
            sql.to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
    }

    /// Rows of a page each; then all but the last 1,000 deleted in one
    /// commit, which leaves live pages at the end of the file to move.
    const FILL_AND_DELETE: &str = "CREATE TABLE t (x BLOB); \
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) \
        INSERT INTO t SELECT randomblob(900) FROM n; \
        DELETE FROM t WHERE rowid <= 3000";

    #[actix_web::test]
    async fn a_commit_that_deletes_rows_gives_their_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::sqlite_url(dir.path());
        let db = connect(&url).await.unwrap();
        let pages_before = pragma_of(&db, "PRAGMA page_count").await;

        db.execute_unprepared(FILL_AND_DELETE).await.unwrap();

        assert_eq!(pragma_of(&db, "PRAGMA auto_vacuum").await, 1);
        assert_eq!(pragma_of(&db, "PRAGMA freelist_count").await, 0);
        let pages = pragma_of(&db, "PRAGMA page_count").await - pages_before;
        // The 1,000 rows left, and the b-tree and pointer-map pages above them.
        assert!(
            (1000..1100).contains(&pages),
            "{pages} pages for 1,000 rows"
        );
        assert_eq!(pragma_of(&db, "SELECT COUNT(*) FROM t").await, 1000);
    }

    #[actix_web::test]
    async fn an_incremental_database_gives_its_free_pages_back_as_it_opens() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::sqlite_url(dir.path());
        // As an older Bazaar made them: free pages wait for a step.
        let older = Database::connect(&url).await.unwrap();
        older
            .execute_unprepared(&format!(
                "PRAGMA page_size = 1024; PRAGMA auto_vacuum = INCREMENTAL; {FILL_AND_DELETE}"
            ))
            .await
            .unwrap();
        assert_eq!(pragma_of(&older, "PRAGMA auto_vacuum").await, 2);
        assert!(pragma_of(&older, "PRAGMA freelist_count").await >= 3000);
        older.close().await.unwrap();

        let db = connect(&url).await.unwrap();

        assert_eq!(pragma_of(&db, "PRAGMA auto_vacuum").await, 1);
        assert_eq!(pragma_of(&db, "PRAGMA freelist_count").await, 0);
        assert_eq!(pragma_of(&db, "SELECT COUNT(*) FROM t").await, 1000);
    }
}
