//! Presence diffs, coalesced. The first change after a quiet spell goes out
//! at once; changes during the next `WINDOW` go out together at its end, as
//! one diff that gives each changed connection's state at its end. A crowd
//! arriving at once (everyone reconnecting after a restart) then costs each
//! member a frame per window rather than one per arrival: a thousand joins
//! would otherwise be half a million frames.
//!
//! A diff states where each connection ended up, not what it went through,
//! because members who joined during the window hold a list taken partway
//! through it: a connection that came and went is told as a leave (news to
//! them, nothing to the others), one that went and came back as a join.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

use crate::bus::{EventKind, TopicEvent, TopicEvents};
use crate::domain::topic::Topic;
use crate::domain::user_name::UserName;
use crate::protocol::client::{self, MemberView};

/// How long changes wait to be told together after a diff went out.
pub const WINDOW: Duration = Duration::from_millis(50);

/// What members have not been told yet.
#[derive(Default)]
pub struct Presence {
    /// Changed connections, in the order they first changed.
    changes: Vec<Change>,
    /// Index of each connection in `changes`.
    index: HashMap<String, usize>,
    /// A diff went out less than `WINDOW` ago.
    window_open: bool,
}

struct Change {
    conn: String,
    /// The name members were last told, if they were told it is here.
    told: Option<String>,
    /// Its name now, if it is still here.
    now: Option<String>,
    /// The last name it had here, for a leave.
    last: String,
}

impl Presence {
    pub fn joined(&mut self, conn: &str, user: &UserName) {
        self.record(conn, None, Some(user.to_string()));
    }

    pub fn left(&mut self, conn: &str, user: &UserName) {
        self.record(conn, Some(user.to_string()), None);
    }

    pub fn renamed(&mut self, conn: &str, old: &UserName, new: &UserName) {
        self.record(conn, Some(old.to_string()), Some(new.to_string()));
    }

    fn record(&mut self, conn: &str, told: Option<String>, now: Option<String>) {
        let last = now.clone().or_else(|| told.clone()).unwrap_or_default();
        match self.index.get(conn) {
            // Members were told what the first change started from.
            Some(&at) => {
                let change = &mut self.changes[at];
                change.now = now;
                change.last = last;
            }
            None => {
                self.index.insert(conn.to_owned(), self.changes.len());
                self.changes.push(Change {
                    conn: conn.to_owned(),
                    told,
                    now,
                    last,
                });
            }
        }
    }

    /// The diff that tells everything recorded, `(joins, leaves)`; None if
    /// nothing was. A connection still here joins (a renamed one also
    /// leaves under the name members were told), one gone leaves.
    pub fn take(&mut self) -> Option<(Vec<MemberView>, Vec<MemberView>)> {
        if self.changes.is_empty() {
            return None;
        }
        self.index.clear();
        let (mut joins, mut leaves) = (Vec::new(), Vec::new());
        for change in self.changes.drain(..) {
            let Change {
                conn,
                told,
                now,
                last,
            } = change;
            match now {
                Some(user) => {
                    if let Some(old) = told.filter(|old| *old != user) {
                        leaves.push(MemberView {
                            conn: conn.clone(),
                            user: old,
                        });
                    }
                    joins.push(MemberView { conn, user });
                }
                None => leaves.push(MemberView { conn, user: last }),
            }
        }
        Some((joins, leaves))
    }
}

/// A diff as a topic's event, its frame encoded once for every member.
pub fn event(topic: &Topic, joins: Vec<MemberView>, leaves: Vec<MemberView>) -> TopicEvents {
    let frame = client::presence(&topic.to_string(), &joins, &leaves);
    TopicEvents {
        topic: topic.clone(),
        events: vec![TopicEvent {
            kind: EventKind::Presence { joins, leaves },
            frame,
        }],
    }
}

/// A room that tells its members who comes and goes.
pub trait Announces: Actor<Context = Context<Self>> {
    fn presence(&mut self) -> &mut Presence;

    /// Publishes a diff to the topic now.
    fn announce(&mut self, joins: Vec<MemberView>, leaves: Vec<MemberView>);
}

/// Call after recording changes: they go out now, or at the end of the
/// window if a diff went out within it.
pub fn changed<A: Announces>(act: &mut A, ctx: &mut Context<A>) {
    if act.presence().window_open {
        return;
    }
    flush(act);
    act.presence().window_open = true;
    ctx.run_later(WINDOW, |act, ctx| {
        act.presence().window_open = false;
        if !act.presence().changes.is_empty() {
            changed(act, ctx);
        }
    });
}

/// After a restart: the window's timer is gone, so the window is shut and
/// whatever it held goes out now.
pub fn reopen<A: Announces>(act: &mut A, ctx: &mut Context<A>) {
    act.presence().window_open = false;
    changed(act, ctx);
}

/// Tells what is recorded now, window or not: before any other event (so
/// nobody hears someone speak before hearing they came), and before the
/// room closes (members on other nodes still need the leaves).
pub fn flush<A: Announces>(act: &mut A) {
    if let Some((joins, leaves)) = act.presence().take() {
        act.announce(joins, leaves);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserName {
        UserName::parse_guest(name).expect("a valid name")
    }

    fn views(list: &[MemberView]) -> Vec<(&str, &str)> {
        list.iter()
            .map(|m| (m.conn.as_str(), m.user.as_str()))
            .collect()
    }

    #[test]
    fn a_burst_becomes_one_diff_of_where_each_connection_ended_up() {
        let mut p = Presence::default();
        p.joined("c1", &user("ana"));
        p.joined("c2", &user("bob"));
        p.left("c9", &user("old"));
        p.joined("c3", &user("cy"));
        // Came and went: a leave, for whoever joined in between.
        p.left("c2", &user("bob"));
        // Joined in the window: nobody was told the first name.
        p.renamed("c1", &user("ana"), &user("anna"));

        let (joins, leaves) = p.take().expect("a diff");

        assert_eq!(views(&joins), [("c1", "anna"), ("c3", "cy")]);
        assert_eq!(views(&leaves), [("c2", "bob"), ("c9", "old")]);
        assert!(p.take().is_none(), "all was told");
    }

    #[test]
    fn a_rename_leaves_under_the_told_name_and_joins_under_the_new() {
        let mut p = Presence::default();
        p.renamed("c1", &user("ana"), &user("anna"));
        let (joins, leaves) = p.take().expect("a diff");
        assert_eq!(views(&leaves), [("c1", "ana")]);
        assert_eq!(views(&joins), [("c1", "anna")]);

        p.left("c1", &user("anna"));
        p.joined("c1", &user("anna"));
        let (joins, leaves) = p.take().expect("a diff");
        assert_eq!(
            views(&joins),
            [("c1", "anna")],
            "back, for anyone who joined while it was away"
        );
        assert!(leaves.is_empty());
    }

    #[test]
    fn a_leave_then_a_join_under_a_new_name_tells_the_new_name() {
        let mut p = Presence::default();
        p.left("c1", &user("ana"));
        p.joined("c1", &user("anna"));
        let (joins, leaves) = p.take().expect("a diff");
        assert_eq!(views(&leaves), [("c1", "ana")]);
        assert_eq!(views(&joins), [("c1", "anna")]);
    }
}
