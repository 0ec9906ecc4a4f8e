//! The Bus carries a topic's events to every node's room for that topic, in
//! one order, and numbers chat messages as it publishes them. `LocalBus` is
//! the single-node bus; `RedisBus` is cluster mode (docs/architecture.md
//! §6). Rooms speak only to the trait.
//!
//! A room publishes and hears its own events back through the bus, like
//! anyone else's: that is what puts every node's members in one order.

mod local;
pub mod nodes;
mod redis;
mod scripts;
mod subscriber;
mod told;
mod wire;

use std::fmt;
use std::time::Duration;

use actix::{Message, Recipient};
use bytestring::ByteString;
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use crate::domain::topic::Topic;
use crate::protocol::client::{MemberView, MessageView};

pub use self::local::LocalBus;
pub use self::nodes::{NodeInfo, NodeWorker};
pub use self::redis::RedisBus;

/// What a room hears from the bus.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Delivery {
    /// Events of its topic, in order.
    Events(TopicEvents),
    /// The bus was away and is back: events may have been missed, and the
    /// room catches up from the database and tells the others who is here.
    Resync,
}

/// Events of one topic, in order, delivered together: a stored batch of
/// messages reaches each member as one write.
#[derive(Debug, Clone)]
pub struct TopicEvents {
    pub topic: Topic,
    pub events: Vec<TopicEvent>,
}

/// One event of a topic, encoded once for every member on a node.
#[derive(Debug, Clone)]
pub struct TopicEvent {
    pub kind: EventKind,
    /// The frame as members receive it (empty for `Typing`, which each
    /// room encodes from what every node says).
    pub frame: ByteString,
}

impl TopicEvent {
    /// Whether `conn` goes without this event: a diff that only announces
    /// `conn` joining, since it has the full member list in its join reply;
    /// a signal for someone else. A diff that says more reaches it whole:
    /// applied to that list, its own join changes nothing, and the rest is
    /// news.
    pub fn skips(&self, conn: &str) -> bool {
        match &self.kind {
            EventKind::Presence { joins, leaves } => {
                leaves.is_empty() && joins.len() == 1 && joins[0].conn == conn
            }
            EventKind::Signal { to } => to != conn,
            _ => false,
        }
    }
}

/// What an event is, for the rooms that keep state from it.
#[derive(Debug, Clone)]
pub enum EventKind {
    Message(MessageView),
    Presence {
        joins: Vec<MemberView>,
        leaves: Vec<MemberView>,
    },
    /// Who is typing on one node; rooms show everyone's together.
    Typing {
        node: String,
        users: Vec<String>,
    },
    /// A lot's state changed (`bid`, `lot`, `started`, `finished`).
    Lot,
    /// WebRTC signaling for one connection, wherever it is.
    Signal {
        to: String,
    },
}

/// A chat message to number and publish: everything but its seq.
#[derive(Debug, Clone)]
pub struct Draft {
    pub id: i64,
    pub user: String,
    pub text: String,
    /// RFC 3339, as the frame carries it.
    pub at: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("the bus is unavailable: {0}")]
    Down(String),
    /// Redis has no counter for the topic (it lost its data, or never saw
    /// the topic): the room sets one from the database.
    #[error("the topic has no counter on the bus")]
    Unnumbered,
    /// The batch would pass the seq mark, whose last seq is given: the
    /// room raises the mark first.
    #[error("the seq mark must go up past {0}")]
    PastMark(u64),
}

/// Whether events reach every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BusState {
    /// One node: there is nobody else to reach.
    Local,
    Up,
    /// Redis is unreachable: events reach this node's members only.
    Down,
}

/// This node's id in the cluster: short, random at each start, and part of
/// every connection id, so those are unique across nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    pub fn generate() -> NodeId {
        NodeId(format!("{:08x}", rand::random::<u32>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account change for its sockets on every node (the SessionHub's
/// `AccountEvent`, as it travels between nodes).
#[derive(Message, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct AccountNotice {
    pub user_id: i64,
    pub event: AccountChange,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccountChange {
    Changed {
        name: String,
        display_name: String,
        is_admin: bool,
    },
    LoggedOut,
    Frame {
        frame: String,
    },
}

/// A chat message another service posts into a room, through the bus's
/// `bazaar:inbox` channel or `POST /api/rooms/{topic}/events`
/// (docs/protocol.md §3).
#[derive(Message, Debug, Clone, PartialEq, Eq, Deserialize)]
#[rtype(result = "()")]
pub struct Inbound {
    /// Chosen by the publisher; an id heard before is ignored, so a
    /// publisher may send again after a doubt.
    pub id: String,
    pub topic: String,
    pub user: String,
    pub text: String,
}

/// A command for every node of the cluster, carried on `bazaar:control`.
/// Each node acts on what concerns it; a node that was away while one was
/// sent has missed it, so none carries state a node cannot read again from
/// the database.
#[derive(Message, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[rtype(result = "()")]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    /// Tasks became ready (a crawl started, a listing found pages, an admin
    /// requeued some): every Dispatcher looks at the queue now, not at its
    /// next tick.
    QueueChanged,
    /// An admin paused the task queue: tasks leased and not yet handed out
    /// go back. (Resuming is `QueueChanged`.)
    QueuePaused,
    /// An admin drains or disconnects a worker connected to `node`.
    Worker {
        node: String,
        worker: u64,
        action: WorkerAction,
    },
    /// An admin drains `node`: it takes no new clients or workers and hands
    /// over what it has.
    DrainNode { node: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerAction {
    Drain,
    Disconnect,
}

/// A window's count of uses, from `Bus::count_hit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hits {
    pub count: u64,
    /// Until the window ends and the count starts again.
    pub resets_in: Duration,
}

/// Moves topic events between nodes.
pub trait Bus: Send + Sync {
    fn node(&self) -> &NodeId;

    fn state(&self) -> BusState;

    /// Whether other nodes share the topics (cluster mode): then seqs come
    /// from the bus, not from the room.
    fn shared(&self) -> bool {
        self.state() != BusState::Local
    }

    /// Numbers `drafts` for `topic` and publishes them to every node's room,
    /// this one included, in one step. Resolves to the first seq. No seq
    /// above `ceiling` (the database's mark) is given out. `after` is the
    /// last seq the room gave out, which numbers a single node's messages.
    fn publish_messages(
        &self,
        topic: &Topic,
        after: u64,
        ceiling: u64,
        drafts: &[Draft],
    ) -> LocalBoxFuture<'static, Result<u64, BusError>>;

    /// Starts the topic's numbering at `floor` unless another node has;
    /// resolves to where it stands.
    fn start_numbering(
        &self,
        topic: &Topic,
        floor: u64,
    ) -> LocalBoxFuture<'static, Result<u64, BusError>>;

    /// The last seq given out for `topic` on any node, if the bus numbers.
    fn last_seq(&self, topic: &Topic) -> LocalBoxFuture<'static, Result<Option<u64>, BusError>>;

    /// Sends events other than messages to the topic's room on every node.
    fn publish(&self, events: TopicEvents);

    /// Delivers `topic`'s events to `room` until unsubscribed; resolves
    /// once nothing published from then on can be missed.
    fn subscribe(&self, topic: &Topic, room: Recipient<Delivery>) -> LocalBoxFuture<'static, ()>;

    /// Stops delivering to `room`: a room that closes says which it is, so
    /// that it never unsubscribes the room that replaced it.
    fn unsubscribe(&self, topic: &Topic, room: &Recipient<Delivery>);

    /// Tells every node that `members` are this node's members of `topic`,
    /// and that any other it listed before has left: after the bus was
    /// away, the others' lists are out of date.
    fn sync_members(&self, topic: &Topic, members: Vec<MemberView>);

    /// The topic's members on other nodes, for a join reply.
    fn members_elsewhere(
        &self,
        topic: &Topic,
    ) -> LocalBoxFuture<'static, Result<Vec<MemberView>, BusError>>;

    /// Tells an account's sockets on the other nodes.
    fn notify_accounts(&self, notice: &AccountNotice);

    /// Where account notices from other nodes go on this one.
    fn route_accounts(&self, to: Recipient<AccountNotice>);

    /// Where events other services publish go on this node.
    fn route_inbox(&self, to: Recipient<Inbound>);

    /// Tells every node, this one at once and whatever the bus's state.
    fn control(&self, control: Control);

    /// Adds a place control messages go on this node: each hears them all.
    fn route_control(&self, to: Recipient<Control>);

    /// Says this node is alive, as `info` describes it.
    fn heartbeat(&self, info: NodeInfo);

    /// Counts one use of `key` in a fixed window of `window` that starts
    /// at its first use, on every node together: how many uses the window
    /// has seen, this one included, and how long until it ends.
    fn count_hit(
        &self,
        key: &str,
        window: Duration,
    ) -> LocalBoxFuture<'static, Result<Hits, BusError>>;

    /// What `count_hit` would count on, without counting: the uses of
    /// `key` in its window (0 once it ended) and how long until it ends.
    fn read_hits(
        &self,
        key: &str,
        window: Duration,
    ) -> LocalBoxFuture<'static, Result<Hits, BusError>>;

    /// Ends `key`'s window: its next use counts from one.
    fn forget_hits(&self, key: &str) -> LocalBoxFuture<'static, Result<(), BusError>>;

    /// The live nodes.
    fn nodes(&self) -> LocalBoxFuture<'static, Result<Vec<NodeInfo>, BusError>>;
}
