//! What this node has told the other nodes about its members, per topic.
//! Redis may not have heard all of it: a leave said while Redis was away
//! reached only this node, one in flight when Redis died was lost, and a
//! Redis that restarts empty forgets every member hash. So after the bus
//! was away, a room tells the others again who is here, and takes back
//! everyone it ever told of who is not.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::domain::topic::Topic;
use crate::protocol::client::MemberView;

/// How long a leave the bus took is remembered: one sent just before Redis
/// died may have been lost in flight, and is told again at the next sync.
const LEFT_KEPT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct Told(HashMap<Topic, HashMap<String, Entry>>);

struct Entry {
    user: String,
    left: Option<Left>,
}

enum Left {
    /// The bus took the leave at this moment.
    Sent(Instant),
    /// The bus was away: nobody elsewhere heard it yet.
    Unsent,
}

impl Told {
    /// Records a diff; `sent` says whether the bus took it.
    pub fn record(
        &mut self,
        topic: &Topic,
        joins: &[MemberView],
        leaves: &[MemberView],
        sent: bool,
    ) {
        let now = Instant::now();
        let told = self.0.entry(topic.clone()).or_default();
        // Leaves first: a rename leaves under the old name and joins under
        // the new one.
        for leave in leaves {
            let left = if sent { Left::Sent(now) } else { Left::Unsent };
            told.insert(
                leave.conn.clone(),
                Entry {
                    user: leave.user.clone(),
                    left: Some(left),
                },
            );
        }
        for join in joins {
            told.insert(
                join.conn.clone(),
                Entry {
                    user: join.user.clone(),
                    left: None,
                },
            );
        }
    }

    /// Whoever the others may still list as here who is not in `members`.
    pub fn gone(&self, topic: &Topic, members: &[MemberView]) -> Vec<MemberView> {
        self.0
            .get(topic)
            .into_iter()
            .flatten()
            .filter(|(conn, _)| !members.iter().any(|m| &m.conn == *conn))
            .map(|(conn, entry)| MemberView {
                conn: conn.clone(),
                user: entry.user.clone(),
            })
            .collect()
    }

    /// The others now know exactly `members`.
    pub fn synced(&mut self, topic: &Topic, members: &[MemberView]) {
        if members.is_empty() {
            self.0.remove(topic);
            return;
        }
        let told = members
            .iter()
            .map(|m| {
                let entry = Entry {
                    user: m.user.clone(),
                    left: None,
                };
                (m.conn.clone(), entry)
            })
            .collect();
        self.0.insert(topic.clone(), told);
    }

    /// Topics with leaves nobody elsewhere heard.
    pub fn unsent(&self) -> Vec<Topic> {
        self.0
            .iter()
            .filter(|(_, told)| told.values().any(|e| matches!(e.left, Some(Left::Unsent))))
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// Forgets leaves the bus took long enough ago.
    pub fn prune(&mut self) {
        let now = Instant::now();
        for told in self.0.values_mut() {
            told.retain(|_, e| !matches!(e.left, Some(Left::Sent(at)) if now - at > LEFT_KEPT));
        }
        self.0.retain(|_, told| !told.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(conn: &str, user: &str) -> MemberView {
        MemberView {
            conn: conn.into(),
            user: user.into(),
        }
    }

    fn topic() -> Topic {
        Topic::parse("chat:lobby").expect("a topic")
    }

    #[test]
    fn a_leave_told_while_the_bus_was_away_is_taken_back_at_the_sync() {
        let mut told = Told::default();
        told.record(
            &topic(),
            &[member("c-1", "ana"), member("c-2", "bob")],
            &[],
            true,
        );
        told.record(&topic(), &[], &[member("c-2", "bob")], false);

        assert_eq!(told.unsent(), [topic()]);
        let gone = told.gone(&topic(), &[member("c-1", "ana")]);
        assert_eq!(gone, [member("c-2", "bob")]);

        told.synced(&topic(), &[member("c-1", "ana")]);
        assert!(told.unsent().is_empty());
        assert!(told.gone(&topic(), &[member("c-1", "ana")]).is_empty());
    }

    #[test]
    fn a_leave_the_bus_took_is_told_again_only_for_a_while() {
        let mut told = Told::default();
        told.record(&topic(), &[member("c-1", "ana")], &[], true);
        told.record(&topic(), &[], &[member("c-1", "ana")], true);
        assert_eq!(
            told.gone(&topic(), &[]),
            [member("c-1", "ana")],
            "it may have been lost in flight"
        );
        told.prune();
        assert_eq!(told.gone(&topic(), &[]).len(), 1, "kept for LEFT_KEPT");
    }

    #[test]
    fn a_rename_ends_as_the_new_name() {
        let mut told = Told::default();
        told.record(&topic(), &[member("c-1", "ana")], &[], true);
        told.record(
            &topic(),
            &[member("c-1", "anna")],
            &[member("c-1", "ana")],
            true,
        );
        assert!(told.gone(&topic(), &[member("c-1", "anna")]).is_empty());
    }
}
