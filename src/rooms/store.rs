//! Chat persistence: rooms, and messages by topic and seq.

use chrono::{DateTime, Utc};
use entity::{messages, rooms};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::db::stmt;
use crate::domain::topic::RoomName;
use crate::protocol::client::{time, MessageView};

/// A message not stored yet.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub user: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

pub fn view(m: &messages::Model) -> MessageView {
    MessageView {
        id: m.id,
        seq: u64::try_from(m.seq).unwrap_or(0),
        user: m.user_name.clone(),
        text: m.text.clone(),
        at: time(m.at),
    }
}

fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records that a room exists (it is listed from then on).
pub async fn ensure_room(
    db: &impl ConnectionTrait,
    name: &RoomName,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    rooms::Entity::insert(rooms::ActiveModel {
        name: Set(name.as_str().to_owned()),
        created_at: Set(now),
        seq_reserved: Set(0),
    })
    .on_conflict(
        OnConflict::column(rooms::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// How far `name` may number its messages (see `Room::reserve_ahead`).
pub async fn seq_reserved(db: &impl ConnectionTrait, name: &RoomName) -> Result<u64, DbErr> {
    let room = rooms::Entity::find_by_id(name.as_str()).one(db).await?;
    Ok(room.map_or(0, |r| u64::try_from(r.seq_reserved).unwrap_or(0)))
}

/// Raises (never lowers) how far `name` may number its messages.
pub async fn raise_seq_reserved(
    db: &impl ConnectionTrait,
    name: &RoomName,
    upto: u64,
) -> Result<(), DbErr> {
    db.execute(stmt(
        db.get_database_backend(),
        "UPDATE rooms SET seq_reserved = $1 WHERE name = $2 AND seq_reserved < $1",
        vec![seq(upto).into(), name.as_str().into()],
    ))
    .await?;
    Ok(())
}

/// Sets how far `name` may number its messages to its last stored seq,
/// once every message it numbered is stored: a later start carries on from
/// there without a gap.
pub async fn settle_seq_reserved(
    db: &impl ConnectionTrait,
    name: &RoomName,
    last: u64,
) -> Result<(), DbErr> {
    db.execute(stmt(
        db.get_database_backend(),
        "UPDATE rooms SET seq_reserved = $1 WHERE name = $2",
        vec![seq(last).into(), name.as_str().into()],
    ))
    .await?;
    Ok(())
}

/// Rows per INSERT: six parameters each stays far below SQLite's limit.
const ROWS_PER_INSERT: usize = 500;

/// Stores messages that already have their ids and seqs, all or nothing,
/// with one statement per `ROWS_PER_INSERT` rows whatever the number of
/// topics. One statement is its own transaction: one trip to the database
/// instead of three, and SQLite's write lock held only while it runs.
#[tracing::instrument(level = "debug", skip_all, fields(rows = rows.len()))]
pub async fn insert(
    db: &(impl ConnectionTrait + TransactionTrait),
    rows: &[&messages::Model],
) -> Result<(), DbErr> {
    if rows.len() <= ROWS_PER_INSERT {
        return insert_chunks(db, rows).await;
    }
    let txn = db.begin().await?;
    insert_chunks(&txn, rows).await?;
    txn.commit().await
}

async fn insert_chunks(db: &impl ConnectionTrait, rows: &[&messages::Model]) -> Result<(), DbErr> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = Query::insert();
        insert.into_table(messages::Entity).columns([
            messages::Column::Id,
            messages::Column::Topic,
            messages::Column::Seq,
            messages::Column::UserName,
            messages::Column::Text,
            messages::Column::At,
        ]);
        for m in chunk {
            insert
                .values([
                    m.id.into(),
                    m.topic.clone().into(),
                    m.seq.into(),
                    m.user_name.clone().into(),
                    m.text.clone().into(),
                    m.at.into(),
                ])
                .map_err(|e| DbErr::Custom(e.to_string()))?;
        }
        db.execute(db.get_database_backend().build(&insert)).await?;
    }
    Ok(())
}

/// The highest seq stored for `topic` (0 when it has none).
pub async fn last_seq(db: &impl ConnectionTrait, topic: &str) -> Result<u64, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        seq: Option<i64>,
    }
    let row = Row::find_by_statement(stmt(
        db.get_database_backend(),
        "SELECT MAX(seq) AS seq FROM messages WHERE topic = $1",
        vec![topic.into()],
    ))
    .one(db)
    .await?;
    Ok(row
        .and_then(|r| r.seq)
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(0))
}

/// The last `limit` messages of `topic`, oldest first.
pub async fn recent(
    db: &impl ConnectionTrait,
    topic: &str,
    limit: usize,
) -> Result<Vec<messages::Model>, DbErr> {
    let mut rows = messages::Entity::find()
        .filter(messages::Column::Topic.eq(topic))
        .order_by_desc(messages::Column::Seq)
        .limit(limit as u64)
        .all(db)
        .await?;
    rows.reverse();
    Ok(rows)
}

/// Messages after `since`, oldest first, at most `cap`; `true` when more exist.
#[tracing::instrument(level = "debug", skip_all, fields(topic = topic, since = since))]
pub async fn after(
    db: &impl ConnectionTrait,
    topic: &str,
    since: u64,
    cap: usize,
) -> Result<(Vec<messages::Model>, bool), DbErr> {
    let mut rows = messages::Entity::find()
        .filter(messages::Column::Topic.eq(topic))
        .filter(messages::Column::Seq.gt(seq(since)))
        .order_by_asc(messages::Column::Seq)
        .limit(cap as u64 + 1)
        .all(db)
        .await?;
    let truncated = rows.len() > cap;
    rows.truncate(cap);
    Ok((rows, truncated))
}

/// Whether `topic` still stores a message at or below `seq`. A resume
/// whose first stored message is not `since + 1`, in a room that stores
/// nothing at or below `since`, lost messages to retention: the room keeps
/// its newest, so what goes is always its oldest.
pub async fn holds_at_or_below(
    db: &impl ConnectionTrait,
    topic: &str,
    seq_at_most: u64,
) -> Result<bool, DbErr> {
    let found = messages::Entity::find()
        .filter(messages::Column::Topic.eq(topic))
        .filter(messages::Column::Seq.lte(seq(seq_at_most)))
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// Up to `limit` messages before `before`, oldest first; `true` when older
/// ones exist.
#[tracing::instrument(level = "debug", skip_all, fields(topic = topic, before = before))]
pub async fn before(
    db: &impl ConnectionTrait,
    topic: &str,
    before: u64,
    limit: usize,
) -> Result<(Vec<messages::Model>, bool), DbErr> {
    let mut rows = messages::Entity::find()
        .filter(messages::Column::Topic.eq(topic))
        .filter(messages::Column::Seq.lt(seq(before)))
        .order_by_desc(messages::Column::Seq)
        .limit(limit as u64 + 1)
        .all(db)
        .await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    rows.reverse();
    Ok((rows, has_more))
}

/// A room and how many messages it holds.
#[derive(Debug, Clone, FromQueryResult)]
pub struct RoomStats {
    pub name: String,
    pub messages: i64,
}

/// Which rooms the rooms list shows: any joining creates a room, and most
/// are never used again, so only rooms in use are listed.
#[derive(Debug, Clone)]
pub struct Listed<'a> {
    /// Rooms with members now.
    pub live: &'a [String],
    /// Rooms created or last spoken in at or after this.
    pub since: DateTime<Utc>,
}

impl Listed<'_> {
    /// The condition on `rooms r`, with `$1` for `since` and `$2` for
    /// `live` (a JSON array of names, one parameter however many).
    fn filter(backend: DatabaseBackend) -> String {
        let live = match backend {
            DatabaseBackend::Postgres => "SELECT json_array_elements_text($2::json)",
            _ => "SELECT value FROM json_each($2)",
        };
        // The last message by seq is one step down the (topic, seq) index.
        format!(
            "r.created_at >= $1 \
             OR (SELECT m.at FROM messages m WHERE m.topic = 'chat:' || r.name \
                 ORDER BY m.seq DESC LIMIT 1) >= $1 \
             OR r.name IN ({live})"
        )
    }

    fn values(&self) -> Result<Vec<sea_orm::Value>, DbErr> {
        let live = serde_json::to_string(self.live).map_err(|e| DbErr::Custom(e.to_string()))?;
        Ok(vec![self.since.into(), live.into()])
    }
}

/// How many rooms `listed` takes in.
pub async fn count_listed(db: &impl ConnectionTrait, listed: &Listed<'_>) -> Result<u64, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        n: i64,
    }
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT COUNT(*) AS n FROM rooms r WHERE {}",
        Listed::filter(backend)
    );
    let row = Row::find_by_statement(stmt(backend, &sql, listed.values()?))
        .one(db)
        .await?;
    Ok(row.map_or(0, |r| u64::try_from(r.n).unwrap_or(0)))
}

/// Rooms `listed` takes in, by name, `limit` of them from `offset`, each
/// with its message count (seqs are gap-free, so the highest is the count;
/// a crash that lost messages members had seen leaves a gap, and those
/// count too).
pub async fn list_rooms(
    db: &impl ConnectionTrait,
    listed: &Listed<'_>,
    offset: u64,
    limit: u64,
) -> Result<Vec<RoomStats>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT r.name AS name, \
         COALESCE((SELECT MAX(m.seq) FROM messages m WHERE m.topic = 'chat:' || r.name), 0) \
         AS messages \
         FROM rooms r WHERE {} ORDER BY r.name LIMIT $3 OFFSET $4",
        Listed::filter(backend)
    );
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut values = listed.values()?;
    values.extend([int(limit).into(), int(offset).into()]);
    RoomStats::find_by_statement(stmt(backend, &sql, values))
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{DatabaseBackend, Statement};

    fn row(id: i64, seq: i64) -> messages::Model {
        messages::Model {
            id,
            topic: "chat:t".into(),
            seq,
            user_name: "ana".into(),
            text: format!("message {seq}"),
            at: Utc::now(),
        }
    }

    async fn stored(db: &sea_orm::DatabaseConnection) -> i64 {
        let row = db
            .query_one(Statement::from_string(
                DatabaseBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM messages",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }

    #[actix_web::test]
    async fn a_write_stores_all_its_rows_or_none_whatever_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
        let db = crate::db::connect(&url).await.unwrap();
        insert(&db, &[&row(1, 1)]).await.unwrap();

        // One statement, and several: the last row's id is taken.
        for count in [3, ROWS_PER_INSERT * 2 + 1] {
            let mut rows: Vec<messages::Model> =
                (0..count as i64 - 1).map(|i| row(100 + i, 2 + i)).collect();
            rows.push(row(1, 10_000));
            let refs: Vec<&messages::Model> = rows.iter().collect();
            assert!(insert(&db, &refs).await.is_err(), "{count} rows");
            assert_eq!(stored(&db).await, 1, "{count} rows");
        }

        let rows: Vec<messages::Model> = (0..ROWS_PER_INSERT as i64 + 1)
            .map(|i| row(100 + i, 2 + i))
            .collect();
        let refs: Vec<&messages::Model> = rows.iter().collect();
        insert(&db, &refs).await.unwrap();
        assert_eq!(stored(&db).await, ROWS_PER_INSERT as i64 + 2);
    }
}
