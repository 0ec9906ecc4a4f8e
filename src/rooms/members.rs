//! A room's members on this node, as chat rooms and lot rooms both keep
//! them: their views for join replies, the fan-out of a topic's events, and
//! the messages both kinds of room answer about their members.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Message;
use bytestring::ByteString;

use crate::bus::TopicEvent;
use crate::domain::user_name::UserName;
use crate::protocol::client::MemberView;
use crate::ws::{Outbound, SendError};

/// One connection in a room.
pub struct Member {
    pub user: UserName,
    pub out: Outbound,
}

/// Members by connection id.
#[derive(Default)]
pub struct Members(HashMap<String, Member>);

impl std::ops::Deref for Members {
    type Target = HashMap<String, Member>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Members {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Members {
    /// Everyone, by name then connection: the join reply's list.
    pub fn views(&self) -> Vec<MemberView> {
        let mut list: Vec<MemberView> = self
            .0
            .iter()
            .map(|(conn, m)| MemberView {
                conn: conn.clone(),
                user: m.user.to_string(),
            })
            .collect();
        list.sort_by(|a, b| a.user.cmp(&b.user).then_with(|| a.conn.cmp(&b.conn)));
        list
    }

    /// Gives `conn` a new name; returns the old one, or None when nothing
    /// changed.
    pub fn rename(&mut self, conn: &str, user: UserName) -> Option<UserName> {
        let member = self.0.get_mut(conn).filter(|m| m.user != user)?;
        Some(std::mem::replace(&mut member.user, user))
    }

    /// Pushes events to every member as one send each, without waiting for
    /// anyone. Returns the members too slow to keep up: their connections
    /// are already closing, and the room should let them go.
    pub fn deliver(&self, events: &[TopicEvent]) -> Vec<String> {
        let frames = |conn: &str| -> Arc<[ByteString]> {
            events
                .iter()
                .filter(|e| !e.skips(conn))
                .map(|e| e.frame.clone())
                .collect()
        };
        // Most events go to everyone alike: one shared list for all of them.
        let everyone = frames("");
        let mut slow = Vec::new();
        for (conn, member) in &self.0 {
            let own = if events.iter().any(|e| e.skips(conn)) {
                frames(conn)
            } else {
                everyone.clone()
            };
            if own.is_empty() {
                continue;
            }
            // `Closed`: its session is stopping and will leave on its own.
            if let Err(SendError::Full) = member.out.batch(own) {
                slow.push(conn.clone());
            }
        }
        slow
    }
}

/// A connection leaves the room (or closed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub conn: String,
}

/// The registry asks a room with no members to close; it refuses (`false`)
/// if someone joined meanwhile, or while it still has work to finish.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct TryClose;

/// How many connections are in the room, for the rooms list.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountMembers;
