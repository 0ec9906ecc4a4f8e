//! Rooms as admins see them: each topic's members on this node and its
//! messages per second over the last minute.
//!
//! Messages are counted in the messages table rather than in the rooms:
//! every node stores its rooms' messages there, so the count is the room's
//! whole rate and not one node's share, it survives a restart, and the chat
//! path gains no counter to keep (an index on `at` makes the count a short
//! range scan). Members are connections, so only this node knows its own.

use std::collections::HashMap;
use std::time::Duration;

use actix::Addr;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use entity::messages;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde::Serialize;

use crate::clock::delta;
use crate::rooms::registry::{ListRooms, RoomRegistry};

/// The window the rate is taken over: long enough to smooth bursts, short
/// enough to show a room going quiet.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// One topic, live on this node or with messages in the window.
#[derive(Debug, Clone, Serialize)]
pub struct RoomActivity {
    pub topic: String,
    /// Members connected to this node.
    pub members: usize,
    /// Messages stored in the window, from every node.
    pub messages: u64,
    pub per_second: f64,
}

/// The busiest topics first.
pub async fn activity(
    db: &impl ConnectionTrait,
    registry: &Addr<RoomRegistry>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<RoomActivity>> {
    let live = registry
        .send(ListRooms)
        .await
        .context("the room registry did not answer")?;
    let mut recent = recent_messages(db, now)
        .await
        .context("could not count recent messages")?;
    let live: Vec<(String, usize, u64)> = live
        .into_iter()
        .map(|(topic, members)| {
            let topic = topic.to_string();
            let messages = recent.remove(&topic).unwrap_or(0);
            (topic, members, messages)
        })
        .collect();
    // Topics with recent messages and no members on this node.
    let elsewhere = recent.into_iter().map(|(topic, n)| (topic, 0, n));
    let mut rooms: Vec<RoomActivity> = live
        .into_iter()
        .chain(elsewhere)
        .map(|(topic, members, messages)| RoomActivity {
            topic,
            members,
            messages,
            per_second: messages as f64 / RATE_WINDOW.as_secs_f64(),
        })
        .collect();
    rooms.sort_by(|a, b| {
        (b.messages, b.members)
            .cmp(&(a.messages, a.members))
            .then_with(|| a.topic.cmp(&b.topic))
    });
    Ok(rooms)
}

/// Messages stored per topic since `now - RATE_WINDOW`.
async fn recent_messages(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<HashMap<String, u64>, DbErr> {
    let rows: Vec<(String, i64)> = messages::Entity::find()
        .select_only()
        .column(messages::Column::Topic)
        .column_as(messages::Column::Id.count(), "n")
        .filter(messages::Column::At.gte(now - delta(RATE_WINDOW)))
        .group_by(messages::Column::Topic)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(topic, n)| (topic, u64::try_from(n).unwrap_or(0)))
        .collect())
}
