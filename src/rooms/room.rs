//! The Room actor: one per topic with members on this node. It keeps the
//! member list, numbers messages and delivers them at once, stores them in
//! batches behind, and delivers each event to every member as one shared
//! frame pushed straight into the member's bounded outbound queue.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use futures_util::future::{self, LocalBoxFuture};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use super::detached::Detached;
use super::members::{CountMembers, Leave, Member, Members, TryClose};
use super::presence::{self, Announces, Presence};
use super::registry::{RoomRegistry, Vacant};
use super::store::{self, NewMessage};
use super::writer::MessageStore;
use crate::bus::{Bus, Delivery, EventKind, TopicEvent, TopicEvents};
use crate::clock;
use crate::config::ChatSettings;
use crate::domain::topic::{RoomName, Topic};
use crate::domain::user_name::UserName;
use crate::protocol::client::{self, MemberView, MessageView};
use crate::protocol::ErrorCode;
use crate::supervision::{self, Name};
use crate::ws::{Outbound, SendError};

mod catch_up;
mod restart;
mod storing;

use storing::{SayReply, Unstored, UNSTORED_MAX};

/// How often expired typing indicators are swept.
const TYPING_SWEEP: Duration = Duration::from_secs(1);
/// Messages kept in memory, so joins and short resumes skip the database.
const RECENT_KEPT: usize = 200;

pub struct Room {
    topic: Topic,
    /// `topic` as text, as stored and sent.
    key: String,
    name: RoomName,
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    settings: Arc<ChatSettings>,
    registry: Addr<RoomRegistry>,
    store: MessageStore,
    members: Members,
    /// Comings and goings not told yet.
    presence: Presence,
    /// The highest seq given out (and so published) for this topic.
    last_seq: u64,
    /// The last messages, stored or not: every unstored one is kept.
    recent: VecDeque<MessageView>,
    /// Says waiting for their seqs.
    pending: Vec<(NewMessage, SayReply)>,
    numbering: bool,
    /// Published messages not stored yet, in seq order. A `say` is answered
    /// once its message is stored.
    unstored: VecDeque<Unstored>,
    /// How many of `unstored`, from the front, the writer holds now.
    writing: usize,
    /// Failed attempts at storing the front of `unstored`.
    store_failures: u32,
    /// Storing waits out a pause after a failure.
    store_paused: bool,
    /// No seq above this is given out before the database has a higher
    /// mark: members see messages before they are stored, so after a crash
    /// the room carries on above the mark instead of reusing a seen seq.
    reserved: u64,
    /// The mark is being raised ahead of need.
    reserving: bool,
    /// The mark is being brought down to `last_seq` (all stored), so that a
    /// later start carries on without a gap. Numbering waits meanwhile.
    settling: bool,
    /// Who is typing on this node, until when.
    typing: BTreeMap<String, Instant>,
    /// Who is typing on each node, this one included, as each last said.
    typing_by_node: BTreeMap<String, Vec<String>>,
    /// The members on other nodes, as this node's members were told them
    /// (join replies and diffs), by connection: after the bus was away, what
    /// they missed is the difference from the list in Redis.
    elsewhere: HashMap<String, MemberView>,
    /// Subscribed and loaded: a restart only reloads the marks.
    loaded: bool,
    /// Events that arrived while missed messages were being read.
    held: VecDeque<TopicEvents>,
    /// Messages some node numbered never reached this one (the bus was away):
    /// they are being read from the database, and events wait meanwhile.
    catching_up: bool,
}

/// Why a room refused a request; each maps to a protocol error code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RoomError {
    #[error("join the topic first")]
    NotJoined,
    #[error("connection {0} is not in this topic")]
    NotInTopic(String),
    #[error("the message could not be stored; try again")]
    Store,
    #[error("the room cannot store messages right now; try again later")]
    Backlog,
    #[error("the room could not load its history; try again")]
    Unavailable,
    #[error("this server cannot reach the others right now, so messages cannot be sent; try again shortly")]
    Cut,
}

impl RoomError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RoomError::NotJoined => ErrorCode::NotJoined,
            RoomError::NotInTopic(_) => ErrorCode::NotInTopic,
            RoomError::Store | RoomError::Backlog | RoomError::Unavailable => ErrorCode::Internal,
            RoomError::Cut => ErrorCode::Unavailable,
        }
    }
}

impl Room {
    pub fn new(
        name: RoomName,
        db: DatabaseConnection,
        bus: Arc<dyn Bus>,
        settings: Arc<ChatSettings>,
        registry: Addr<RoomRegistry>,
        store: MessageStore,
    ) -> Room {
        let topic = Topic::Chat(name.clone());
        Room {
            key: topic.to_string(),
            topic,
            name,
            db,
            bus,
            settings,
            registry,
            store,
            members: Members::default(),
            presence: Presence::default(),
            last_seq: 0,
            recent: VecDeque::new(),
            pending: Vec::new(),
            numbering: false,
            unstored: VecDeque::new(),
            writing: 0,
            store_failures: 0,
            store_paused: false,
            reserved: 0,
            reserving: false,
            settling: false,
            typing: BTreeMap::new(),
            typing_by_node: BTreeMap::new(),
            elsewhere: HashMap::new(),
            loaded: false,
            held: VecDeque::new(),
            catching_up: false,
        }
    }

    fn publish(&mut self, kind: EventKind, frame: ByteString) {
        self.publish_all(vec![TopicEvent { kind, frame }]);
    }

    /// Who came and went goes first: nobody hears someone speak before
    /// hearing they came.
    fn publish_all(&mut self, events: Vec<TopicEvent>) {
        presence::flush(self);
        self.bus.publish(TopicEvents {
            topic: self.topic.clone(),
            events,
        });
    }

    /// Says who is typing here; every node's room (this one too) shows it
    /// with who is typing elsewhere.
    fn publish_typing(&mut self) {
        let users = self.typing.keys().cloned().collect();
        let node = self.bus.node().to_string();
        self.publish(EventKind::Typing { node, users }, ByteString::new());
    }

    /// Who is typing on every node, as one frame.
    /// Takes in who joined and left on other nodes, as this node's members
    /// heard it.
    fn heard_elsewhere(&mut self, joins: &[MemberView], leaves: &[MemberView]) {
        if !self.bus.shared() {
            return;
        }
        let own = format!("c-{}-", self.bus.node());
        for member in leaves {
            self.elsewhere.remove(&member.conn);
        }
        for member in joins.iter().filter(|m| !m.conn.starts_with(&own)) {
            self.elsewhere.insert(member.conn.clone(), member.clone());
        }
    }

    fn typing_frame(&self) -> ByteString {
        let mut users: Vec<&str> = self
            .typing_by_node
            .values()
            .flatten()
            .map(String::as_str)
            .collect();
        users.sort_unstable();
        users.dedup();
        client::typing(&self.key, &users)
    }

    /// Takes in a topic's events, in order, and delivers them. On a shared
    /// bus, a message that skips seqs means some were missed: they are
    /// read from the database first, and what follows waits for them.
    fn receive(&mut self, batch: TopicEvents, ctx: &mut Context<Self>) {
        if self.catching_up {
            self.held.push_back(batch);
            return;
        }
        let shared = self.bus.shared();
        let mut out = Vec::with_capacity(batch.events.len());
        let mut events = batch.events.into_iter();
        while let Some(event) = events.next() {
            match &event.kind {
                EventKind::Message(view) => {
                    if shared && view.seq <= self.last_seq {
                        // Read already, while catching up.
                        continue;
                    }
                    if shared && view.seq > self.last_seq + 1 {
                        let missed_upto = view.seq - 1;
                        let rest = std::iter::once(event).chain(events).collect();
                        self.held.push_front(TopicEvents {
                            topic: self.topic.clone(),
                            events: rest,
                        });
                        self.deliver_received(out, ctx);
                        self.catch_up(missed_upto, ctx);
                        return;
                    }
                    self.last_seq = self.last_seq.max(view.seq);
                    self.recent.push_back(view.clone());
                    out.push(event);
                }
                EventKind::Typing { node, users } => {
                    if users.is_empty() {
                        self.typing_by_node.remove(node);
                    } else {
                        self.typing_by_node.insert(node.clone(), users.clone());
                    }
                    out.push(TopicEvent {
                        frame: self.typing_frame(),
                        kind: event.kind,
                    });
                }
                EventKind::Signal { to } => {
                    let to = to.clone();
                    self.relay(&to, event.frame, ctx);
                }
                EventKind::Presence { joins, leaves } => {
                    self.heard_elsewhere(joins, leaves);
                    out.push(event);
                }
                _ => out.push(event),
            }
        }
        self.deliver_received(out, ctx);
    }

    /// Delivers received events, and lets go of stored messages past what
    /// is kept. Unstored ones stay: a resume that reads the database finds
    /// them here.
    fn deliver_received(&mut self, events: Vec<TopicEvent>, ctx: &mut Context<Self>) {
        let stored = self.stored_seq();
        while self.recent.len() > RECENT_KEPT
            && self.recent.front().is_some_and(|m| m.seq <= stored)
        {
            self.recent.pop_front();
        }
        self.deliver(&events, ctx);
    }

    /// Hands a signal frame to one member, if it is here.
    fn relay(&mut self, to: &str, frame: ByteString, ctx: &mut Context<Self>) {
        let Some(target) = self.members.get(to) else {
            return;
        };
        if let Err(SendError::Full) = target.out.text(frame) {
            tracing::warn!(topic = %self.key, conn = %to, "slow consumer closed");
            self.remove(to, ctx);
        }
    }

    /// Pushes events to members; those that cannot keep up are closed and
    /// leave, and nobody else waits for them.
    fn deliver(&mut self, events: &[TopicEvent], ctx: &mut Context<Self>) {
        for conn in self.members.deliver(events) {
            tracing::warn!(topic = %self.key, conn, "slow consumer closed");
            self.remove(&conn, ctx);
        }
    }

    fn remove(&mut self, conn: &str, ctx: &mut Context<Self>) {
        let Some(member) = self.members.remove(conn) else {
            return;
        };
        let user = member.user.to_string();
        let still_here = self.members.values().any(|m| m.user == member.user);
        self.presence.left(conn, &member.user);
        if !still_here && self.typing.remove(&user).is_some() {
            self.publish_typing();
        }
        presence::changed(self, ctx);
        self.maybe_vacant(ctx);
    }

    fn maybe_vacant(&mut self, ctx: &mut Context<Self>) {
        if !self.members.is_empty() || !self.idle() {
            return;
        }
        // Members on other nodes still need the last leaves.
        presence::flush(self);
        if self.must_settle() {
            self.settle(ctx);
            return;
        }
        self.registry.do_send(Vacant {
            key: self.topic.clone(),
            room: ctx.address(),
        });
    }

    /// Whether nothing said here is still on its way to members or to
    /// the database.
    fn idle(&self) -> bool {
        self.pending.is_empty()
            && !self.numbering
            && self.unstored.is_empty()
            && !self.reserving
            && !self.settling
    }
}

impl Announces for Room {
    fn presence(&mut self) -> &mut Presence {
        &mut self.presence
    }

    fn announce(&mut self, joins: Vec<MemberView>, leaves: Vec<MemberView>) {
        self.bus
            .publish(presence::event(&self.topic, joins, leaves));
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(TYPING_SWEEP, |act, _| {
            let now = Instant::now();
            let before = act.typing.len();
            act.typing.retain(|_, until| *until > now);
            if act.typing.len() != before {
                act.publish_typing();
            }
        });
        // Started again after a panic: subscribed and loaded already.
        if self.loaded {
            return self.reload(ctx);
        }
        let db = self.db.clone();
        let key = self.key.clone();
        let name = self.name.clone();
        let now = clock::now();
        let keep = self.settings.history.clamp(1, RECENT_KEPT);
        let bus = self.bus.clone();
        let topic = self.topic.clone();
        // Subscribed first: whatever is numbered from then on arrives, and
        // whatever was numbered before is in the database, or about to be.
        let subscribed = self.bus.subscribe(&self.topic, ctx.address().recipient());
        // Nothing is served until the room knows where its topic stands.
        async move {
            subscribed.await;
            store::ensure_room(&db, &name, now).await?;
            let stored = store::last_seq(&db, &key).await?;
            let reserved = store::seq_reserved(&db, &name).await?;
            let counter = if bus.shared() {
                catch_up::counter(bus.as_ref(), &db, &key, &topic, stored.max(reserved)).await
            } else {
                None
            };
            let recent = store::recent(&db, &key, keep).await?;
            Ok::<_, sea_orm::DbErr>((stored, reserved, counter, recent))
        }
        .into_actor(self)
        .map(|loaded, act, ctx| match loaded {
            Ok((stored, reserved, counter, recent)) => {
                act.last_seq = match counter {
                    // Another node may number past the mark this node knows;
                    // the bus's counter is where the topic stands.
                    Some(counter) => counter.max(stored),
                    None if act.bus.shared() => stored,
                    None => {
                        if reserved > stored {
                            // The last run stopped without settling its mark:
                            // the seqs up to it may have been seen, so none
                            // is reused.
                            tracing::warn!(
                                topic = %act.key,
                                stored,
                                reserved,
                                "room carries on above its mark; messages seen before a crash may be gone"
                            );
                        }
                        stored.max(reserved)
                    }
                };
                act.reserved = reserved.max(act.last_seq);
                act.recent = recent.iter().map(store::view).collect();
                act.loaded = true;
            }
            Err(err) => {
                tracing::error!(topic = %act.key, error = %err, "room could not load; closing it");
                ctx.stop();
            }
        })
        .wait(ctx);
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.bus
            .unsubscribe(&self.topic, &ctx.address().recipient());
    }
}

/// A connection joins the topic.
#[derive(Message)]
#[rtype(result = "Result<Joined, RoomError>")]
pub struct Join {
    pub conn: String,
    pub user: UserName,
    pub out: Outbound,
    /// Resume: every message after this seq instead of the recent ones.
    pub since: Option<u64>,
}

/// The topic's state for a new member (docs/protocol.md §1 `join` reply).
#[derive(Debug, Clone, Serialize)]
// Read back only by the test that holds docs/protocol.md to it.
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct Joined {
    pub conn: String,
    pub members: Vec<MemberView>,
    pub history: Vec<MessageView>,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Handler<Join> for Room {
    type Result = ResponseActFuture<Self, Result<Joined, RoomError>>;

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        // Talk follows joins: the first message said should not wait for
        // the mark to go up.
        self.reserve_ahead(ctx);
        let fresh = !self.members.contains_key(&msg.conn);
        if fresh {
            self.presence.joined(&msg.conn, &msg.user);
            self.members.insert(
                msg.conn.clone(),
                Member {
                    user: msg.user,
                    out: msg.out,
                },
            );
            presence::changed(self, ctx);
        }
        let local = self.members.views();
        let elsewhere = self.bus.members_elsewhere(&self.topic);
        let seq = self.last_seq;
        let conn = msg.conn;
        let cap = self.settings.resume_cap;
        let oldest_kept = self.recent.front().map_or(seq + 1, |m| m.seq);
        let from_memory = |after: u64, limit: usize| -> Vec<MessageView> {
            let newer: Vec<MessageView> = self
                .recent
                .iter()
                .filter(|m| m.seq > after)
                .cloned()
                .collect();
            newer[newer.len().saturating_sub(limit)..].to_vec()
        };
        let history: LocalBoxFuture<'static, Result<(Vec<MessageView>, bool), RoomError>> =
            match msg.since {
                None => {
                    let history = from_memory(0, self.settings.history);
                    Box::pin(future::ready(Ok((history, false))))
                }
                // Everything missed is still in memory.
                // A `since` past every seq (up to u64::MAX) missed nothing.
                Some(since) if since.saturating_add(1) >= oldest_kept || since >= seq => {
                    let missed = self.recent.iter().filter(|m| m.seq > since);
                    // Counted, not worked out from seqs: a crash leaves a gap
                    // in them, and messages not in `recent` yet reach the
                    // member live.
                    let truncated = missed.clone().count() > cap;
                    let history = missed.take(cap).cloned().collect::<Vec<_>>();
                    Box::pin(future::ready(Ok((history, truncated))))
                }
                Some(since) => {
                    // What the database may not have yet (this node's
                    // unstored messages, and others' just numbered) is in
                    // memory.
                    let kept: Vec<MessageView> = self
                        .recent
                        .iter()
                        .filter(|m| m.seq > since)
                        .cloned()
                        .collect();
                    Box::pin(catch_up::history(
                        self.db.clone(),
                        self.key.clone(),
                        since,
                        seq,
                        cap,
                        kept,
                        self.bus.shared(),
                    ))
                }
            };
        Box::pin(
            async move {
                let (history, elsewhere) = future::join(history, elsewhere).await;
                let (history, truncated) = history?;
                // With the bus away, the reply lists this node's own.
                Ok((local, elsewhere.unwrap_or_default(), history, truncated))
            }
            .into_actor(self)
            .map(move |loaded, act, ctx| {
                let (mut members, elsewhere, history, truncated) = match loaded {
                    Ok(loaded) => loaded,
                    Err(err) => {
                        // The socket is told it did not join, so it must not
                        // stay a member that never leaves.
                        if fresh {
                            act.remove(&conn, ctx);
                        }
                        return Err(err);
                    }
                };
                // The joiner's list is the newest telling: what it says of
                // the other nodes is what this room's members were told.
                act.heard_elsewhere(&elsewhere, &[]);
                members.extend(elsewhere);
                members.sort_by(|a, b| a.user.cmp(&b.user).then_with(|| a.conn.cmp(&b.conn)));
                Ok(Joined {
                    conn,
                    members,
                    history,
                    seq,
                    truncated,
                })
            }),
        )
    }
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        self.remove(&msg.conn, ctx);
    }
}

/// A member's account took a new display name: everyone sees it leave under
/// the old name and come back under the new one, in one presence diff
/// (clients apply its leaves before its joins).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rename {
    pub conn: String,
    pub user: UserName,
}

impl Handler<Rename> for Room {
    type Result = ();

    fn handle(&mut self, msg: Rename, ctx: &mut Context<Self>) {
        if let Some(old) = self.members.rename(&msg.conn, msg.user.clone()) {
            self.presence.renamed(&msg.conn, &old, &msg.user);
            presence::changed(self, ctx);
        }
    }
}

/// A member says something.
#[derive(Message)]
#[rtype(result = "Result<Said, RoomError>")]
pub struct Say {
    pub conn: String,
    pub text: String,
}

/// Where a stored message landed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Said {
    pub id: i64,
    pub seq: u64,
}

impl Handler<Say> for Room {
    type Result = ResponseFuture<Result<Said, RoomError>>;

    fn handle(&mut self, msg: Say, ctx: &mut Context<Self>) -> Self::Result {
        supervision::drill(Name::Room);
        let Some(member) = self.members.get(&msg.conn) else {
            return Box::pin(async { Err(RoomError::NotJoined) });
        };
        if self.unstored.len() >= UNSTORED_MAX {
            return Box::pin(async { Err(RoomError::Backlog) });
        }
        let user = member.user.to_string();
        if self.typing.remove(&user).is_some() {
            self.publish_typing();
        }
        let (tx, rx) = oneshot::channel();
        self.pending.push((
            NewMessage {
                user,
                text: msg.text,
                at: clock::now(),
            },
            tx,
        ));
        self.number(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(RoomError::Store)) })
    }
}

impl Handler<Detached<Say>> for Room {
    type Result = ();

    fn handle(&mut self, msg: Detached<Say>, ctx: &mut Context<Self>) {
        msg.handle_by(self, ctx);
    }
}

/// A member is typing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Typing {
    pub conn: String,
}

impl Handler<Typing> for Room {
    type Result = ();

    fn handle(&mut self, msg: Typing, _: &mut Context<Self>) {
        let Some(member) = self.members.get(&msg.conn) else {
            return;
        };
        let until = Instant::now() + self.settings.typing_ttl;
        let fresh = self.typing.insert(member.user.to_string(), until).is_none();
        if fresh {
            self.publish_typing();
        }
    }
}

/// Relays WebRTC signaling to another member of the topic.
#[derive(Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct Signal {
    pub from: String,
    pub to: String,
    pub data: Value,
}

impl Handler<Signal> for Room {
    type Result = ResponseActFuture<Self, Result<(), RoomError>>;

    fn handle(&mut self, msg: Signal, ctx: &mut Context<Self>) -> Self::Result {
        if !self.members.contains_key(&msg.from) {
            return Box::pin(fut::ready(Err(RoomError::NotJoined)));
        }
        let frame = client::signal(&self.key, &msg.from, &msg.data);
        if self.members.contains_key(&msg.to) {
            self.relay(&msg.to, frame, ctx);
            return Box::pin(fut::ready(Ok(())));
        }
        // On another node, if anywhere: its room there hands it over.
        let elsewhere = self.bus.members_elsewhere(&self.topic);
        Box::pin(elsewhere.into_actor(self).map(move |members, act, _| {
            if !members.unwrap_or_default().iter().any(|m| m.conn == msg.to) {
                return Err(RoomError::NotInTopic(msg.to));
            }
            act.bus.publish(TopicEvents {
                topic: act.topic.clone(),
                events: vec![TopicEvent {
                    kind: EventKind::Signal { to: msg.to },
                    frame,
                }],
            });
            Ok(())
        }))
    }
}

/// Another service posts a message into the room (`bus::Inbound`): it is
/// numbered, stored and delivered like anything said here.
#[derive(Message)]
#[rtype(result = "Result<Said, RoomError>")]
pub struct Post {
    pub user: UserName,
    pub text: String,
}

impl Handler<Post> for Room {
    type Result = ResponseFuture<Result<Said, RoomError>>;

    fn handle(&mut self, msg: Post, ctx: &mut Context<Self>) -> Self::Result {
        supervision::drill(Name::Room);
        if self.unstored.len() >= UNSTORED_MAX {
            return Box::pin(async { Err(RoomError::Backlog) });
        }
        let (tx, rx) = oneshot::channel();
        self.pending.push((
            NewMessage {
                user: msg.user.to_string(),
                text: msg.text,
                at: clock::now(),
            },
            tx,
        ));
        self.number(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(RoomError::Store)) })
    }
}

impl Handler<Delivery> for Room {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        match delivery {
            Delivery::Events(batch) => self.receive(batch, ctx),
            Delivery::Resync => self.resync(ctx),
        }
    }
}

impl Handler<TryClose> for Room {
    type Result = bool;

    fn handle(&mut self, _: TryClose, ctx: &mut Context<Self>) -> bool {
        let idle = self.members.is_empty() && self.idle();
        if !idle {
            return false;
        }
        if self.must_settle() {
            // Its mark must come down first; it asks again when it has.
            self.settle(ctx);
            return false;
        }
        ctx.stop();
        true
    }
}

impl Handler<CountMembers> for Room {
    type Result = usize;

    fn handle(&mut self, _: CountMembers, _: &mut Context<Self>) -> usize {
        self.members.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::doc_examples;

    /// The chat join replies in docs/protocol.md §1 are what a room answers:
    /// a `Joined`, with no field it lacks and none left out.
    #[test]
    fn the_protocol_chat_join_replies_are_what_a_room_answers() {
        let doc = doc_examples::protocol();
        let frames = doc_examples::block_after(
            doc_examples::section(&doc, 1),
            "### Events (server to client)",
        );
        let mut seen = 0;
        for line in frames {
            let frame = doc_examples::json(line);
            let body = &frame["body"];
            if body.get("history").is_none() {
                continue;
            }

            let joined: Joined =
                serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{line}: {e}"));

            let written = serde_json::to_value(&joined).expect("json");
            assert_eq!(&written, body, "{line}");
            seen += 1;
        }
        assert!(seen >= 2, "only {seen} chat join replies shown");
    }
}
