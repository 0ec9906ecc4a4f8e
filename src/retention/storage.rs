//! The database's size per table, and giving the space a pass freed back
//! to the file system.
//!
//! SQLite with `auto_vacuum = FULL` (every database `db::open` creates)
//! gives the pages of deleted rows back to the file system as each commit
//! frees them (see `db::open_with`). One created without auto vacuum keeps
//! them on a free list that later inserts reuse, until a `VACUUM` rewrites
//! it (README, "Retention"). PostgreSQL's autovacuum makes the space
//! reusable on its own.

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};

/// The tables the storage page lists: those retention prunes, then the
/// catalog and the rest that people make.
pub const LISTED: [&str; 12] = [
    "messages",
    "price_points",
    "tasks",
    "task_attempts",
    "crawls",
    "outbox",
    "sessions",
    "subscriptions",
    "audit_log",
    "games",
    "offers",
    "bids",
];

/// One table: its rows and the bytes it and its indexes take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    pub table: &'static str,
    pub rows: u64,
    /// `None` where the backend cannot say.
    pub bytes: Option<u64>,
}

/// The whole database: its tables, and the file (or database) in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub tables: Vec<TableSize>,
    pub total_bytes: u64,
    /// SQLite: bytes on the free list, which inserts reuse.
    pub free_bytes: Option<u64>,
    /// SQLite: whether the file shrinks as rows go (auto vacuum is on).
    pub shrinks: Option<bool>,
}

async fn number(db: &impl ConnectionTrait, sql: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await?;
    match row {
        Some(row) => row.try_get_by_index::<i64>(0),
        None => Ok(0),
    }
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Reads the sizes: rows counted exactly, bytes from SQLite's `dbstat` or
/// PostgreSQL's `pg_total_relation_size` (indexes included).
pub async fn sizes(db: &impl ConnectionTrait) -> Result<Storage, DbErr> {
    let backend = db.get_database_backend();
    // SQLite reads every page of the file for this, so once for all tables.
    let sqlite_bytes = match backend {
        DatabaseBackend::Sqlite => sqlite_table_bytes(db).await.ok(),
        _ => None,
    };
    let mut tables = Vec::with_capacity(LISTED.len());
    for table in LISTED {
        let rows = unsigned(number(db, &format!("SELECT COUNT(*) FROM {table}")).await?);
        let bytes = match &sqlite_bytes {
            Some(sizes) => Some(
                sizes
                    .iter()
                    .find(|(name, _)| name == table)
                    .map_or(0, |(_, bytes)| *bytes),
            ),
            None if backend == DatabaseBackend::Sqlite => None,
            None => number(
                db,
                &format!("SELECT pg_total_relation_size('{table}')::bigint"),
            )
            .await
            .ok()
            .map(unsigned),
        };
        tables.push(TableSize { table, rows, bytes });
    }
    Ok(match backend {
        DatabaseBackend::Sqlite => {
            let page = number(db, "PRAGMA page_size").await?;
            let pages = number(db, "PRAGMA page_count").await?;
            let free = number(db, "PRAGMA freelist_count").await?;
            let mode = number(db, "PRAGMA auto_vacuum").await?;
            Storage {
                tables,
                total_bytes: unsigned(page * pages),
                free_bytes: Some(unsigned(page * free)),
                shrinks: Some(mode != 0),
            }
        }
        _ => Storage {
            tables,
            total_bytes: unsigned(
                number(db, "SELECT pg_database_size(current_database())::bigint").await?,
            ),
            free_bytes: None,
            shrinks: None,
        },
    })
}

/// Bytes per table on SQLite, its indexes included, from `dbstat`.
async fn sqlite_table_bytes(db: &impl ConnectionTrait) -> Result<Vec<(String, u64)>, DbErr> {
    let rows = db
        .query_all(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT m.tbl_name AS name, SUM(s.pgsize) AS bytes FROM dbstat s \
             JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name",
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get("", "name")?;
            let bytes: i64 = row.try_get("", "bytes")?;
            Ok((name, unsigned(bytes)))
        })
        .collect()
}
