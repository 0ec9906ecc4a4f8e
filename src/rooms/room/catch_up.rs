//! The Room on a shared bus (cluster mode): where its topic stands when it
//! opens, reading messages it missed while the bus was away, and resumes
//! that wait for messages another node numbered but has not stored yet.
//!
//! Another node stores what its members said a moment after every node has
//! it, so a room that reads the database for seqs the bus already gave out
//! waits, briefly, for those rows to land.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sea_orm::DatabaseConnection;

use super::{Room, RoomError};
use crate::bus::{Bus, EventKind, TopicEvent};
use crate::domain::topic::Topic;
use crate::protocol::client::{self, MemberView, MessageView};
use crate::rooms::presence;
use crate::rooms::store;

/// How long a read waits for messages another node numbered to be stored.
/// Past it, they are taken as lost (their node stopped before storing them).
const STORED_WAIT: Duration = Duration::from_secs(1);
/// The pause between two looks at the database while waiting.
const STORED_POLL: Duration = Duration::from_millis(25);
/// Messages read in one catch-up, at most: a room away for longer tells its
/// members where it resumed, and older ones page over HTTP.
const CATCH_UP_MAX: usize = 10_000;
/// How long after the bus came back a room compares what its members were
/// told of other nodes with the list in Redis: longer than the longest a
/// node waits before reconnecting (2 s), so every node has said who is
/// there by then.
const RECONCILE_AFTER: Duration = Duration::from_secs(3);

/// Where the topic's numbering stands on the bus, once the database has
/// every message up to it (or `STORED_WAIT` passed). A topic the bus does
/// not number yet (new to it, or Redis lost its data) starts at `floor`:
/// the highest seq the database says may have been seen.
pub(super) async fn counter(
    bus: &dyn Bus,
    db: &DatabaseConnection,
    key: &str,
    topic: &Topic,
    floor: u64,
) -> Option<u64> {
    match bus.last_seq(topic).await {
        Ok(Some(counter)) => {
            // A database that cannot be read now fails the room's load next.
            let _ = until_stored(|| async {
                let stored = store::last_seq(db, key).await?;
                Ok::<_, sea_orm::DbErr>(((), stored >= counter))
            })
            .await;
            Some(counter)
        }
        Ok(None) => bus.start_numbering(topic, floor).await.ok(),
        Err(err) => {
            // The room opens on what the database says, and catches up
            // when the bus is back.
            tracing::warn!(%topic, error = %err, "room opens without the bus");
            None
        }
    }
}

/// Every message after `since` up to `upto` for a resume: from the
/// database, with what memory holds that it has not stored yet. On a
/// shared bus it waits for rows another node has not stored yet.
pub(super) async fn history(
    db: DatabaseConnection,
    key: String,
    since: u64,
    upto: u64,
    cap: usize,
    kept: Vec<MessageView>,
    shared: bool,
) -> Result<(Vec<MessageView>, bool), RoomError> {
    let found = until_stored(|| async {
        let (rows, truncated) = store::after(&db, &key, since, cap).await.map_err(|err| {
            tracing::error!(error = %err, "could not read history");
            RoomError::Unavailable
        })?;
        let mut history: Vec<MessageView> = rows.iter().map(store::view).collect();
        if !truncated {
            let read = history.last().map_or(since, |m| m.seq);
            history.extend(kept.iter().filter(|m| m.seq > read).cloned());
        }
        // Only up to the seq the reply names; later ones reach the member
        // live.
        history.retain(|m| m.seq <= upto);
        let whole = history.last().map_or(since, |m| m.seq) >= upto;
        Ok(((history, truncated), truncated || whole || !shared))
    })
    .await?;
    let (history, truncated) = found;
    // Messages right after `since` are missing: retention removed them if
    // the room stores nothing at or below `since` either.
    let gap = history.first().map_or(upto > since, |m| m.seq > since + 1);
    if truncated || !gap {
        return Ok((history, truncated));
    }
    let pruned = !store::holds_at_or_below(&db, &key, since)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "could not read history");
            RoomError::Unavailable
        })?;
    Ok((history, pruned))
}

/// Reads with `read` until it says it has all it waited for, or until
/// `STORED_WAIT` has passed; returns the last read.
async fn until_stored<T, E, F, Fut>(mut read: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(T, bool), E>>,
{
    let deadline = Instant::now() + STORED_WAIT;
    loop {
        let (value, whole) = read().await?;
        if whole || Instant::now() >= deadline {
            return Ok(value);
        }
        tokio::time::sleep(STORED_POLL).await;
    }
}

impl Room {
    /// Whether the seq mark should come down before the room closes. Only
    /// a single node does: in a cluster another node may be numbering
    /// under it.
    pub(super) fn must_settle(&self) -> bool {
        self.reserved > self.last_seq && !self.bus.shared()
    }

    /// Reads the messages after `last_seq` up to `upto` that never arrived,
    /// delivers them in order, then what arrived meanwhile.
    pub(super) fn catch_up(&mut self, upto: u64, ctx: &mut Context<Self>) {
        self.catching_up = true;
        let db = self.db.clone();
        let key = self.key.clone();
        let after = self.last_seq;
        let want = usize::try_from(upto - after).unwrap_or(CATCH_UP_MAX);
        async move {
            until_stored(|| async {
                let (rows, _) = store::after(&db, &key, after, want.min(CATCH_UP_MAX)).await?;
                let reached = rows
                    .last()
                    .is_some_and(|r| u64::try_from(r.seq).unwrap_or(0) >= upto);
                Ok::<_, sea_orm::DbErr>((rows, reached || want > CATCH_UP_MAX))
            })
            .await
        }
        .into_actor(self)
        .map(move |rows, act, ctx| {
            let rows = rows.unwrap_or_else(|err| {
                tracing::error!(topic = %act.key, error = %err, "could not read missed messages");
                Vec::new()
            });
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                let view = store::view(row);
                if view.seq <= act.last_seq || view.seq > upto {
                    continue;
                }
                act.last_seq = view.seq;
                act.recent.push_back(view.clone());
                events.push(TopicEvent {
                    frame: client::message(&act.key, &view),
                    kind: EventKind::Message(view),
                });
            }
            if act.last_seq < upto {
                tracing::warn!(
                    topic = %act.key,
                    from = act.last_seq + 1,
                    to = upto,
                    "messages numbered elsewhere were never stored; members go on without them"
                );
                act.last_seq = upto;
            }
            act.deliver_received(events, ctx);
            act.catching_up = false;
            while let Some(batch) = act.held.pop_front() {
                act.receive(batch, ctx);
                if act.catching_up {
                    break;
                }
            }
        })
        .spawn(ctx);
    }

    /// The bus was away and is back (or this node was counted dead): the
    /// others hear again who is here and who is typing, and the room reads
    /// what it missed.
    pub(super) fn resync(&mut self, ctx: &mut Context<Self>) {
        if !self.bus.shared() {
            return;
        }
        self.bus.sync_members(&self.topic, self.members.views());
        // Diffs other nodes sent before this one listened again are lost;
        // once every node has had time to come back and say who is there,
        // the list in Redis says what this node's members missed.
        ctx.run_later(RECONCILE_AFTER, |act, ctx| act.reconcile(ctx));
        self.publish_typing();
        let bus = self.bus.clone();
        let topic = self.topic.clone();
        async move { bus.last_seq(&topic).await }
            .into_actor(self)
            .map(|counter, act, ctx| {
                if let Ok(Some(counter)) = counter {
                    if counter > act.last_seq && !act.catching_up {
                        act.catch_up(counter, ctx);
                    }
                }
            })
            .spawn(ctx);
    }

    /// Tells this node's members who came and went on other nodes while
    /// the bus was away, as the list in Redis has it now.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let listed = self.bus.members_elsewhere(&self.topic);
        listed
            .into_actor(self)
            .map(|listed, act, ctx| {
                // Away again: the next resync tries again.
                let Ok(listed) = listed else { return };
                let listed: HashMap<String, MemberView> =
                    listed.into_iter().map(|m| (m.conn.clone(), m)).collect();
                let leaves: Vec<MemberView> = act
                    .elsewhere
                    .values()
                    .filter(|m| !listed.contains_key(&m.conn))
                    .cloned()
                    .collect();
                let joins: Vec<MemberView> = listed
                    .values()
                    .filter(|m| !act.elsewhere.contains_key(&m.conn))
                    .cloned()
                    .collect();
                act.elsewhere = listed;
                if leaves.is_empty() && joins.is_empty() {
                    return;
                }
                let diff = presence::event(&act.topic, joins, leaves);
                act.deliver(&diff.events, ctx);
            })
            .spawn(ctx);
    }
}
