//! Rooms as admins see them: each topic's members on every node and its
//! messages per second over the last minute.
//!
//! Messages are counted in the messages table rather than in the rooms:
//! every node stores its rooms' messages there, so the count is the room's
//! whole rate and not one node's share, it survives a restart, and the chat
//! path gains no counter to keep (an index on `at` makes the count a short
//! range scan). Members are connections, so each node knows only its own
//! and tells the others with its heartbeat (`fleet`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::messages;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde::Serialize;

use crate::clock::delta;

/// The window the rate is taken over: long enough to smooth bursts, short
/// enough to show a room going quiet.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// One topic, live on some node or with messages in the window.
#[derive(Debug, Clone, Serialize)]
pub struct RoomActivity {
    pub topic: String,
    /// Members connected to any node.
    pub members: u64,
    /// Members per node, for the nodes that have any.
    pub nodes: BTreeMap<String, u64>,
    /// Messages stored in the window, from every node.
    pub messages: u64,
    pub per_second: f64,
}

/// The busiest topics first, from `live`, the members per topic and node
/// (`Fleet::members`), and the messages stored in the window.
pub async fn activity(
    db: &impl ConnectionTrait,
    live: BTreeMap<&str, BTreeMap<&str, u64>>,
    now: DateTime<Utc>,
) -> Result<Vec<RoomActivity>, DbErr> {
    let recent = recent_messages(db, now).await?;
    Ok(merge(live, recent))
}

/// The topics with members or recent messages, busiest first.
fn merge(
    live: BTreeMap<&str, BTreeMap<&str, u64>>,
    mut recent: HashMap<String, u64>,
) -> Vec<RoomActivity> {
    let live: Vec<(String, BTreeMap<String, u64>, u64)> = live
        .into_iter()
        .map(|(topic, nodes)| {
            let messages = recent.remove(topic).unwrap_or(0);
            let nodes = nodes
                .into_iter()
                .map(|(node, n)| (node.to_owned(), n))
                .collect();
            (topic.to_owned(), nodes, messages)
        })
        .collect();
    // Topics with recent messages and no members anywhere.
    let quiet = recent
        .into_iter()
        .map(|(topic, n)| (topic, BTreeMap::new(), n));
    let mut rooms: Vec<RoomActivity> = live
        .into_iter()
        .chain(quiet)
        .map(|(topic, nodes, messages)| RoomActivity {
            topic,
            members: nodes.values().sum(),
            nodes,
            messages,
            per_second: messages as f64 / RATE_WINDOW.as_secs_f64(),
        })
        .collect();
    rooms.sort_by(|a, b| {
        (b.messages, b.members)
            .cmp(&(a.messages, a.members))
            .then_with(|| a.topic.cmp(&b.topic))
    });
    rooms
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_add_up_over_nodes_and_the_busiest_topic_comes_first() {
        let live = BTreeMap::from([
            ("chat:lobby", BTreeMap::from([("aaaa", 2), ("bbbb", 1)])),
            ("chat:quiet", BTreeMap::from([("bbbb", 4)])),
        ]);
        let recent = HashMap::from([("chat:lobby".to_owned(), 6), ("chat:gone".to_owned(), 60)]);

        let rooms = merge(live, recent);

        let rows: Vec<(&str, u64, usize, u64)> = rooms
            .iter()
            .map(|r| (r.topic.as_str(), r.members, r.nodes.len(), r.messages))
            .collect();
        assert_eq!(
            rows,
            [
                ("chat:gone", 0, 0, 60),
                ("chat:lobby", 3, 2, 6),
                ("chat:quiet", 4, 1, 0)
            ]
        );
        assert!((rooms[1].per_second - 0.1).abs() < 1e-9);
    }
}
