//! The fleet across nodes, as the admin pages show it: every live node with
//! its workers, connections and rooms. Each node describes itself with its
//! heartbeat (`bus::nodes`); the node that serves a page shows itself as
//! it is now and the others as they last said, a heartbeat ago at most. A
//! node that dies drops off when its description expires, within
//! `nodes::NODE_TTL`.

use std::collections::BTreeMap;

use actix::{Addr, MailboxError};
use serde::Serialize;

use crate::bus::{BusError, NodeInfo, NodeWorker};
use crate::crawl::dispatcher::{Dispatcher, ListWorkers};
use crate::domain::topic::Topic;
use crate::metrics::{Connection, Metrics};
use crate::rooms::registry::{ListRooms, RoomRegistry};
use crate::ws::Leaving;

/// This program's version, as each node reports its own.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a node holds now, read from its own actors: what its heartbeat
/// tells the others, and what its admin pages show of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    pub clients: u64,
    /// Members per topic, for the topics that have any.
    pub topics: BTreeMap<String, u64>,
    pub workers: Vec<NodeWorker>,
    pub draining: bool,
}

impl Live {
    /// Reads this node's workers, rooms and sockets.
    pub async fn read(
        dispatcher: &Addr<Dispatcher>,
        registry: &Addr<RoomRegistry>,
        metrics: &Metrics,
        leaving: &Leaving,
    ) -> Result<Live, MailboxError> {
        let workers = dispatcher.send(ListWorkers).await?;
        let rooms = registry.send(ListRooms).await?;
        Ok(Live {
            clients: metrics.open_now(Connection::Client),
            topics: topics(&rooms),
            workers,
            draining: leaving.is_cancelled(),
        })
    }

    /// Writes what this node holds into its description.
    pub fn describe(self, info: &mut NodeInfo) {
        info.clients = self.clients;
        info.rooms = u64::try_from(self.topics.len()).unwrap_or(u64::MAX);
        info.topics = self.topics;
        info.workers = self.workers;
        info.draining = self.draining;
    }
}

/// A `ListRooms` answer as members per topic: a room stays registered a
/// moment after its last member leaves, and is not counted then.
pub fn topics(rooms: &[(Topic, usize)]) -> BTreeMap<String, u64> {
    rooms
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(topic, n)| (topic.to_string(), u64::try_from(*n).unwrap_or(u64::MAX)))
        .collect()
}

/// A worker in a JSON list: its node's id beside its own fields, since
/// worker ids are unique per node only.
#[derive(Debug, Serialize)]
pub struct ListedWorker<'a> {
    pub node: &'a str,
    #[serde(flatten)]
    pub worker: &'a NodeWorker,
}

/// Every live node, as one admin page shows them.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The id of the node that serves the page.
    pub this: String,
    /// Whether the node is one of a cluster: the pages then name each
    /// row's node.
    pub cluster: bool,
    /// By address; this node among them, as it is now.
    pub nodes: Vec<NodeInfo>,
    /// Why only this node is shown: the bus, which lists the others, is
    /// down.
    pub unreachable: Option<String>,
}

impl Fleet {
    /// Puts the bus's list of nodes together with this node's live state.
    /// This node is listed even when the bus is down or has not heard its
    /// first heartbeat yet: then as `fallback` describes it.
    pub fn assemble(
        listed: Result<Vec<NodeInfo>, BusError>,
        fallback: NodeInfo,
        live: Live,
        cluster: bool,
    ) -> Fleet {
        let this = fallback.id.clone();
        let (mut nodes, unreachable) = match listed {
            Ok(nodes) => (nodes, None),
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        let index = match nodes.iter().position(|n| n.id == this) {
            Some(i) => i,
            None => {
                nodes.push(fallback);
                nodes.len() - 1
            }
        };
        live.describe(&mut nodes[index]);
        nodes.sort_by(|a, b| a.address.cmp(&b.address).then_with(|| a.id.cmp(&b.id)));
        Fleet {
            this,
            cluster,
            nodes,
            unreachable,
        }
    }

    /// Every node's workers, node by node, each with its node's id.
    pub fn workers(&self) -> impl Iterator<Item = (&str, &NodeWorker)> {
        self.nodes
            .iter()
            .flat_map(|n| n.workers.iter().map(move |w| (n.id.as_str(), w)))
    }

    /// Every node's workers as the JSON lists (`/api/workers`,
    /// `/api/admin/workers`, the dashboard's events) give them.
    pub fn listed_workers(&self) -> Vec<ListedWorker<'_>> {
        self.workers()
            .map(|(node, worker)| ListedWorker { node, worker })
            .collect()
    }

    /// Members per topic, node by node.
    pub fn members(&self) -> BTreeMap<&str, BTreeMap<&str, u64>> {
        let mut topics: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        for node in &self.nodes {
            for (topic, n) in &node.topics {
                topics
                    .entry(topic.as_str())
                    .or_default()
                    .insert(node.id.as_str(), *n);
            }
        }
        topics
    }

    /// Client connections on every node.
    pub fn clients(&self) -> u64 {
        self.nodes.iter().map(|n| n.clients).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, address: &str, topics: &[(&str, u64)]) -> NodeInfo {
        NodeInfo {
            id: id.to_owned(),
            address: address.to_owned(),
            clients: 1,
            topics: topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
            ..NodeInfo::default()
        }
    }

    fn live(topics: &[(&str, u64)], clients: u64) -> Live {
        Live {
            clients,
            topics: topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
            workers: Vec::new(),
            draining: true,
        }
    }

    #[test]
    fn this_node_is_shown_as_it_is_now_beside_the_others_as_they_last_said() {
        let listed = vec![
            node("bbbb", "127.0.0.1:9002", &[("chat:lobby", 2)]),
            node("aaaa", "127.0.0.1:9001", &[("chat:lobby", 5)]),
        ];
        let fallback = node("aaaa", "0.0.0.0:9001", &[]);

        let fleet = Fleet::assemble(
            Ok(listed),
            fallback,
            live(&[("chat:lobby", 1), ("auction:7", 3)], 4),
            true,
        );

        let ids: Vec<&str> = fleet.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["aaaa", "bbbb"], "by address");
        let here = &fleet.nodes[0];
        assert_eq!(here.address, "127.0.0.1:9001", "as its heartbeat said");
        assert_eq!((here.clients, here.rooms, here.draining), (4, 2, true));
        assert_eq!(fleet.clients(), 5);
        let members = fleet.members();
        assert_eq!(
            members["chat:lobby"],
            BTreeMap::from([("aaaa", 1), ("bbbb", 2)])
        );
        assert_eq!(members["auction:7"], BTreeMap::from([("aaaa", 3)]));
        assert_eq!(fleet.unreachable, None);
    }

    #[test]
    fn with_the_bus_down_this_node_alone_is_shown_and_the_page_says_why() {
        let fallback = node("aaaa", "0.0.0.0:9001", &[]);

        let fleet = Fleet::assemble(
            Err(BusError::Down("Redis is unreachable".into())),
            fallback,
            live(&[], 0),
            true,
        );

        assert_eq!(fleet.nodes.len(), 1);
        assert_eq!(fleet.nodes[0].address, "0.0.0.0:9001");
        assert_eq!(
            fleet.unreachable.as_deref(),
            Some("the bus is unavailable: Redis is unreachable")
        );
    }

    #[test]
    fn rooms_without_members_are_not_counted() {
        let rooms = [
            (Topic::parse("chat:lobby").unwrap(), 2),
            (Topic::parse("chat:empty").unwrap(), 0),
        ];
        assert_eq!(
            topics(&rooms),
            BTreeMap::from([("chat:lobby".to_owned(), 2)])
        );
    }
}
