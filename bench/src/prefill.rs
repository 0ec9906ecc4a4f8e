//! A database that has been busy for a long time, made before the server
//! starts: one room with many old messages, so that a benchmark can measure
//! chat while the server's retention pass works through them.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, Utc};
use entity::messages;
use sea_orm::ConnectionTrait;

use bazaar::config::sqlite_url;
use bazaar::db;
use bazaar::domain::topic::RoomName;
use bazaar::rooms::store;

/// The room the old messages are in: no benchmark member joins it.
pub(crate) const ROOM: &str = "bench-old";

/// Rows per transaction while filling.
const CHUNK: usize = 20_000;

/// Writes `count` messages, a year old and a millisecond apart, into the
/// database a server started on `data_dir` will use, migrating it first.
pub(crate) async fn old_messages(data_dir: &Path, count: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let db = db::connect(&sqlite_url(data_dir)).await?;
    let name = RoomName::parse(ROOM).map_err(anyhow::Error::msg)?;
    let first_at = Utc::now() - Duration::days(365);
    store::ensure_room(&db, &name, first_at).await?;
    let topic = format!("chat:{ROOM}");
    let mut rows = Vec::with_capacity(CHUNK);
    let mut seq = 0u64;
    while seq < count {
        rows.clear();
        let end = count.min(seq + CHUNK as u64);
        for n in seq + 1..=end {
            let n = i64::try_from(n)?;
            rows.push(messages::Model {
                id: n,
                topic: topic.clone(),
                seq: n,
                user_name: "someone".to_owned(),
                text: format!("an old message, number {n}"),
                at: first_at + Duration::milliseconds(n),
            });
        }
        let refs: Vec<&messages::Model> = rows.iter().collect();
        store::insert(&db, &refs)
            .await
            .context("could not write the old messages")?;
        seq = end;
    }
    // The room numbers on from here when someone speaks in it.
    store::raise_seq_reserved(&db, &name, count).await?;
    db.close().await?;
    println!(
        "{count} old messages written to chat:{ROOM} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The old messages still in the database of a server running on
/// `data_dir`, read beside it (SQLite lets a reader in while it writes).
/// Opened as the server opens it: a read-only connection could not apply
/// its settings.
pub(crate) async fn old_messages_left(data_dir: &Path) -> anyhow::Result<u64> {
    let db = db::open(&sqlite_url(data_dir)).await?;
    let row = db
        .query_one(db::stmt(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM messages WHERE topic = $1",
            vec![format!("chat:{ROOM}").into()],
        ))
        .await?
        .context("no count")?;
    let n: i64 = row.try_get("", "n")?;
    db.close().await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
