//! Message ids, handed out before the insert. A message goes out to the
//! room's members as soon as it has its seq, and its `message` event names
//! the id its row will have; the row is written afterwards, in a batch.

use std::collections::VecDeque;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, FromQueryResult};
use tokio::sync::Mutex;

use crate::db::stmt;

/// Ids taken from PostgreSQL's sequence at a time: one round trip per
/// thousand messages, and at most a thousand ids unused when a node stops.
const POSTGRES_BLOCK: i64 = 1000;

pub struct MessageIds {
    db: DatabaseConnection,
    free: Mutex<Free>,
}

enum Free {
    /// SQLite: one process owns the database, so ids simply count on from
    /// the highest ever stored (read on first use).
    Counter(Option<i64>),
    /// PostgreSQL: nodes share the table, so ids come from its sequence, a
    /// block at a time, and no two nodes ever hold the same one.
    Sequence(VecDeque<i64>),
}

#[derive(FromQueryResult)]
struct Id {
    id: i64,
}

impl MessageIds {
    pub fn new(db: DatabaseConnection) -> MessageIds {
        let free = match db.get_database_backend() {
            DatabaseBackend::Postgres => Free::Sequence(VecDeque::new()),
            _ => Free::Counter(None),
        };
        MessageIds {
            db,
            free: Mutex::new(free),
        }
    }

    /// `count` ids no other message has or will get. Without a database
    /// round trip except on first use (SQLite) or once per block (PostgreSQL).
    pub async fn take(&self, count: usize) -> Result<Vec<i64>, DbErr> {
        let mut free = self.free.lock().await;
        match &mut *free {
            Free::Counter(next) => {
                let first = match *next {
                    Some(first) => first,
                    None => highest_stored(&self.db).await? + 1,
                };
                let end = first + count as i64;
                *next = Some(end);
                Ok((first..end).collect())
            }
            Free::Sequence(pool) => {
                if pool.len() < count {
                    let want = POSTGRES_BLOCK.max((count - pool.len()) as i64);
                    pool.extend(from_sequence(&self.db, want).await?);
                }
                Ok(pool.drain(..count).collect())
            }
        }
    }
}

/// The highest id a message ever had. Not `MAX(id)` alone: retention may
/// have removed the newest rows (`chat_days`), and their ids must not come
/// back. `messages.id` is AUTOINCREMENT, so `sqlite_sequence` keeps the
/// highest id ever inserted, ours included.
async fn highest_stored(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let row = Id::find_by_statement(stmt(
        db.get_database_backend(),
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM messages), 0), \
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)) AS id",
        vec![],
    ))
    .one(db)
    .await?;
    Ok(row.map_or(0, |r| r.id))
}

async fn from_sequence(db: &DatabaseConnection, count: i64) -> Result<Vec<i64>, DbErr> {
    let rows = Id::find_by_statement(stmt(
        db.get_database_backend(),
        "SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id \
         FROM generate_series(1, $1)",
        vec![count.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn insert(db: &DatabaseConnection, id: i64, seq: i64) {
        db.execute(stmt(
            db.get_database_backend(),
            "INSERT INTO messages (id, topic, seq, user_name, text, at) \
             VALUES ($1, 'chat:lobby', $2, 'ana', 'hi', '2026-01-01T00:00:00.000Z')",
            vec![id.into(), seq.into()],
        ))
        .await
        .unwrap();
    }

    #[actix_web::test]
    async fn ids_removed_by_retention_are_not_handed_out_again_after_a_restart() {
        // Arrange: three messages stored, then all of them pruned.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("ids.db").display());
        let db = crate::db::connect(&url).await.unwrap();
        for (seq, id) in MessageIds::new(db.clone())
            .take(3)
            .await
            .unwrap()
            .into_iter()
            .enumerate()
        {
            insert(&db, id, seq as i64 + 1).await;
        }
        db.execute_unprepared("DELETE FROM messages").await.unwrap();

        // Act: a restarted node's first id.
        let next = MessageIds::new(db.clone()).take(1).await.unwrap();

        // Assert
        assert_eq!(next, vec![4]);
    }
}
