//! The node registry: each node says every `HEARTBEAT` that it is alive and
//! what it holds, and any node that sees another silent for `NODE_TTL`
//! takes its members out of every presence list (and its typing with them).
//! Which node does it is settled by a claim in Redis, so it happens once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::redis::{keys, listed_members, presence_cmd, Link};
use super::{scripts, wire, BusError};
use crate::domain::topic::Topic;
use crate::protocol::client::{self, MemberView};

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a node may be silent before the others count it dead; its
/// members leave within this and one heartbeat of the node that notices.
pub const NODE_TTL: Duration = Duration::from_secs(10);
/// How long one node's claim on cleaning up after a dead one holds.
const REAP_CLAIM_SECS: u64 = 60;

/// A node as `/api/nodes` lists it, and as the admin pages of every node
/// show it: what it holds travels with its heartbeat, so a node that dies
/// drops off every page when its description expires.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// Where the node listens.
    pub address: String,
    pub started_at: String,
    /// The node's program version.
    #[serde(default)]
    pub version: String,
    /// Whether the node runs the cluster's scheduled work now.
    #[serde(default)]
    pub scheduler: bool,
    /// Whether the node is draining: it takes no new clients or workers.
    #[serde(default)]
    pub draining: bool,
    /// Client WebSockets open on the node.
    pub clients: u64,
    /// Chat rooms and lots with members on the node.
    pub rooms: u64,
    /// Members on the node per topic, for the topics that have any.
    #[serde(default)]
    pub topics: BTreeMap<String, u64>,
    /// The workers connected to the node.
    #[serde(default)]
    pub workers: Vec<NodeWorker>,
}

/// A worker as its node's Dispatcher describes it, to the API, the admin
/// pages and the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeWorker {
    /// The Dispatcher's id, unique on its node only.
    pub id: u64,
    pub name: String,
    pub version: String,
    pub address: String,
    pub slots: u32,
    pub credits: u32,
    pub in_flight: usize,
    /// The tasks it holds, by id.
    pub tasks: Vec<i64>,
    pub done: u64,
    pub failed: u64,
    pub scraper_restarts: u64,
    pub connected_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// It finishes what it holds and is assigned nothing more.
    pub draining: bool,
}

/// What a heartbeat learned.
pub(super) struct Beat {
    /// Nodes silent for longer than `NODE_TTL`.
    pub dead: Vec<String>,
    /// This node was not in the registry: it is new, or the others counted
    /// it dead and took its members out of the presence lists.
    pub returned: bool,
}

/// Says this node is alive.
pub(super) async fn beat(link: &Link, info: &NodeInfo) -> Result<Beat, BusError> {
    let json = serde_json::to_string(info).map_err(|e| BusError::Down(e.to_string()))?;
    let mut cmd = scripts::eval(
        scripts::HEARTBEAT,
        &[keys::NODES.to_owned(), keys::node_info(&info.id)],
    );
    cmd.arg(&info.id).arg(json).arg(NODE_TTL.as_millis() as u64);
    let (added, dead): (i64, Vec<String>) = link.query(cmd).await?;
    Ok(Beat {
        dead,
        returned: added == 1,
    })
}

/// The live nodes, as each last described itself.
pub(super) async fn list(link: &Link) -> Result<Vec<NodeInfo>, BusError> {
    let mut ids = redis::cmd("ZRANGE");
    ids.arg(keys::NODES).arg(0).arg(-1);
    let ids: Vec<String> = link.query(ids).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut infos = redis::cmd("MGET");
    for id in &ids {
        infos.arg(keys::node_info(id));
    }
    let infos: Vec<Option<String>> = link.query(infos).await?;
    // A node whose description expired is dead, and about to be cleaned up.
    Ok(infos
        .into_iter()
        .flatten()
        .filter_map(|json| serde_json::from_str(&json).ok())
        .collect())
}

/// Takes a dead node's members out of every topic they were in, telling
/// the members left, and forgets the node. Does nothing if another node
/// claimed the work first.
pub(super) async fn reap(link: &Link, me: &str, dead: &str) -> Result<(), BusError> {
    let mut claim = redis::cmd("SET");
    claim
        .arg(keys::reaping(dead))
        .arg(me)
        .arg("NX")
        .arg("EX")
        .arg(REAP_CLAIM_SECS);
    if !matches!(link.call(claim).await?, redis::Value::Okay) {
        return Ok(());
    }
    let mut topics = redis::cmd("SMEMBERS");
    topics.arg(keys::node_topics(dead));
    let topics: Vec<String> = link.query(topics).await?;
    let mut gone = 0;
    for topic in topics.iter().filter_map(|t| Topic::parse(t).ok()) {
        let leaves: Vec<MemberView> = listed_members(link, &topic)
            .await?
            .into_iter()
            .filter(|(owner, _)| owner == dead)
            .map(|(_, member)| member)
            .collect();
        if !leaves.is_empty() {
            // As if the dead node had said so: out of the hash and to every
            // node's members in one step.
            let frame = client::presence(&topic.to_string(), &[], &leaves);
            link.send(presence_cmd(dead, &topic, &[], &leaves, &frame));
            gone += leaves.len();
        }
        // Its typing indicators go with it.
        let mut typing = redis::cmd("PUBLISH");
        typing
            .arg(keys::channel(&topic))
            .arg(wire::typing(dead, &[]));
        link.send(typing);
    }
    let mut del = redis::cmd("DEL");
    del.arg(keys::node_topics(dead)).arg(keys::node_info(dead));
    link.call(del).await?;
    let mut zrem = redis::cmd("ZREM");
    zrem.arg(keys::NODES).arg(dead);
    link.call(zrem).await?;
    tracing::warn!(
        node = dead,
        members = gone,
        topics = topics.len(),
        "a node stopped; its members left"
    );
    Ok(())
}
