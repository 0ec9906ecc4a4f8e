//! The Bus carries a topic's events to every node's Room for that topic, and
//! numbers them. `LocalBus` is the single-node bus; a Redis bus for cluster
//! mode implements the same trait, and Room code does not change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::{Message, Recipient};
use bytestring::ByteString;
use futures_util::future::{self, LocalBoxFuture};

use crate::domain::topic::Topic;
use crate::protocol::client::{MemberView, MessageView};

/// Events of one topic, in order, delivered together: a stored batch of
/// messages reaches each member as one write.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct TopicEvents {
    pub topic: Topic,
    pub events: Vec<TopicEvent>,
}

/// One event of a topic, encoded once for every member on every node.
#[derive(Debug, Clone)]
pub struct TopicEvent {
    pub kind: EventKind,
    /// The frame as members receive it.
    pub frame: ByteString,
}

impl TopicEvent {
    /// Whether `conn` goes without this event: a diff that only announces
    /// `conn` joining, since it has the full member list in its join reply.
    /// A diff that says more reaches it whole: applied to that list, its
    /// own join changes nothing, and the rest is news.
    pub fn skips(&self, conn: &str) -> bool {
        match &self.kind {
            EventKind::Presence { joins, leaves } => {
                leaves.is_empty() && joins.len() == 1 && joins[0].conn == conn
            }
            _ => false,
        }
    }
}

/// What an event is, for the Rooms that keep state from it.
#[derive(Debug, Clone)]
pub enum EventKind {
    Message(MessageView),
    Presence {
        joins: Vec<MemberView>,
        leaves: Vec<MemberView>,
    },
    Typing,
    /// A lot's state changed (`bid`, `lot`, `started`, `finished`).
    Lot,
}

#[derive(Debug, thiserror::Error)]
#[error("the bus is unavailable: {0}")]
pub struct BusError(pub String);

/// Moves topic events between nodes.
pub trait Bus: Send + Sync {
    /// The first of `count` new seqs for `topic`, each one higher than
    /// `after` (the last seq this node gave out).
    fn sequence(
        &self,
        topic: &Topic,
        after: u64,
        count: u64,
    ) -> LocalBoxFuture<'static, Result<u64, BusError>>;

    /// Sends `events` to the Room of their topic on every node, this one
    /// included.
    fn publish(&self, events: TopicEvents);

    /// Delivers `topic`'s events to `room` until unsubscribed.
    fn subscribe(&self, topic: &Topic, room: Recipient<TopicEvents>);

    fn unsubscribe(&self, topic: &Topic);
}

/// The in-process bus: one node, whose Room is the only writer of its topic.
#[derive(Default, Clone)]
pub struct LocalBus {
    // A std Mutex: held only for a map lookup, never across an await.
    rooms: Arc<Mutex<HashMap<Topic, Recipient<TopicEvents>>>>,
}

impl Bus for LocalBus {
    fn sequence(
        &self,
        _: &Topic,
        after: u64,
        _: u64,
    ) -> LocalBoxFuture<'static, Result<u64, BusError>> {
        // The Room numbers one batch at a time, so the last seq it gave out
        // is all the numbering one node needs.
        Box::pin(future::ready(Ok(after + 1)))
    }

    fn publish(&self, events: TopicEvents) {
        let room = self
            .rooms
            .lock()
            .ok()
            .and_then(|rooms| rooms.get(&events.topic).cloned());
        if let Some(room) = room {
            room.do_send(events);
        }
    }

    fn subscribe(&self, topic: &Topic, room: Recipient<TopicEvents>) {
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.insert(topic.clone(), room);
        }
    }

    fn unsubscribe(&self, topic: &Topic) {
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.remove(topic);
        }
    }
}
