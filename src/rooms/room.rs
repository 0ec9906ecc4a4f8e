//! The Room actor: one per topic with members on this node. It keeps the
//! member list, numbers messages and delivers them at once, stores them in
//! batches behind, and delivers each event to every member as one shared
//! frame pushed straight into the member's bounded outbound queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use entity::messages;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use super::bus::{Bus, EventKind, TopicEvent, TopicEvents};
use super::detached::Detached;
use super::members::{Member, Members};
use super::registry::{RoomRegistry, Vacant};
use super::store::{self, NewMessage};
use super::writer::{MessageStore, WriteMessages};
use crate::clock::Clock;
use crate::config::ChatSettings;
use crate::domain::topic::{RoomName, Topic};
use crate::domain::user_name::UserName;
use crate::protocol::client::{self, MemberView, MessageView};
use crate::ws::{Outbound, SendError};

/// How often expired typing indicators are swept.
const TYPING_SWEEP: Duration = Duration::from_secs(1);
/// Messages kept in memory, so joins and short resumes skip the database.
const RECENT_KEPT: usize = 200;
/// Messages delivered but not yet stored that a room holds at most; past
/// it (the database has been failing for a while) new ones are refused.
const UNSTORED_MAX: usize = 5_000;
/// Seqs a room may number ahead of the last one, without a database write.
/// A crash loses at most this many seqs; they are never given out again.
const SEQ_BLOCK: u64 = 1_000;
/// Attempts at storing a batch before its senders are told it failed.
const STORE_ATTEMPTS: u32 = 8;
/// The first pause between attempts; each next one doubles, up to
/// `STORE_RETRY_MAX`.
const STORE_RETRY: Duration = Duration::from_millis(100);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

type SayReply = oneshot::Sender<Result<Said, RoomError>>;

/// A message members have, on its way to the database.
struct Unstored {
    row: messages::Model,
    reply: SayReply,
}

pub struct Room {
    topic: Topic,
    /// `topic` as text, as stored and sent.
    key: String,
    name: RoomName,
    db: DatabaseConnection,
    clock: Clock,
    bus: Arc<dyn Bus>,
    settings: Arc<ChatSettings>,
    registry: Addr<RoomRegistry>,
    store: MessageStore,
    members: Members,
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
    /// Who is typing, until when.
    typing: BTreeMap<String, Instant>,
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
}

impl RoomError {
    pub fn code(&self) -> &'static str {
        match self {
            RoomError::NotJoined => "not_joined",
            RoomError::NotInTopic(_) => "not_in_topic",
            RoomError::Store | RoomError::Backlog | RoomError::Unavailable => "internal",
        }
    }
}

impl Room {
    pub fn new(
        name: RoomName,
        db: DatabaseConnection,
        clock: Clock,
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
            clock,
            bus,
            settings,
            registry,
            store,
            members: Members::default(),
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
        }
    }

    fn publish(&self, kind: EventKind, frame: ByteString) {
        self.publish_all(vec![TopicEvent { kind, frame }]);
    }

    fn publish_all(&self, events: Vec<TopicEvent>) {
        self.bus.publish(TopicEvents {
            topic: self.topic.clone(),
            events,
        });
    }

    fn publish_presence(&self, joins: Vec<MemberView>, leaves: Vec<MemberView>) {
        let frame = client::presence(&self.key, &joins, &leaves);
        self.publish(EventKind::Presence { joins, leaves }, frame);
    }

    fn publish_typing(&self) {
        let users: Vec<&str> = self.typing.keys().map(String::as_str).collect();
        self.publish(EventKind::Typing, client::typing(&self.key, &users));
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
        if !still_here && self.typing.remove(&user).is_some() {
            self.publish_typing();
        }
        self.publish_presence(
            Vec::new(),
            vec![MemberView {
                conn: conn.to_owned(),
                user,
            }],
        );
        self.maybe_vacant(ctx);
    }

    fn maybe_vacant(&mut self, ctx: &mut Context<Self>) {
        if !self.members.is_empty() || !self.idle() {
            return;
        }
        if self.reserved > self.last_seq {
            self.settle(ctx);
            return;
        }
        self.registry.do_send(Vacant {
            topic: self.topic.clone(),
            room: ctx.address(),
        });
    }

    /// Brings the mark down to `last_seq`, every message being stored.
    fn settle(&mut self, ctx: &mut Context<Self>) {
        self.settling = true;
        self.reserved = self.last_seq;
        let db = self.db.clone();
        let name = self.name.clone();
        let last = self.last_seq;
        async move { store::settle_seq_reserved(&db, &name, last).await }
            .into_actor(self)
            .map(|settled, act, ctx| {
                act.settling = false;
                if let Err(err) = settled {
                    // The mark stays high: the next start leaves a gap.
                    tracing::warn!(topic = %act.key, error = %err, "could not settle the room's seq mark");
                }
                if act.pending.is_empty() {
                    act.maybe_vacant(ctx);
                } else {
                    act.number(ctx);
                }
            })
            .spawn(ctx);
    }

    /// Raises the mark half a block ahead of need, so that numbering never
    /// waits for it while the database keeps up.
    fn reserve_ahead(&mut self, ctx: &mut Context<Self>) {
        if self.reserving || self.last_seq + SEQ_BLOCK / 2 <= self.reserved {
            return;
        }
        self.reserving = true;
        let db = self.db.clone();
        let name = self.name.clone();
        let upto = self.last_seq + SEQ_BLOCK;
        async move { store::raise_seq_reserved(&db, &name, upto).await }
            .into_actor(self)
            .map(move |raised, act, ctx| {
                act.reserving = false;
                match raised {
                    Ok(()) => act.reserved = act.reserved.max(upto),
                    Err(err) => {
                        tracing::warn!(topic = %act.key, error = %err, "could not raise the room's seq mark")
                    }
                }
                act.maybe_vacant(ctx);
            })
            .spawn(ctx);
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

    /// Numbers what was said since the last batch and publishes it at once;
    /// storing follows. Members see a message without waiting for the
    /// database, and its sender's reply waits for the commit (PROTOCOL §1).
    /// Seqs are taken here, one batch at a time, so they stay gap-free.
    fn number(&mut self, ctx: &mut Context<Self>) {
        if self.numbering || self.settling || self.pending.is_empty() {
            return;
        }
        self.numbering = true;
        let (batch, replies): (Vec<NewMessage>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().unzip();
        let bus = self.bus.clone();
        let ids = self.store.ids.clone();
        let topic = self.topic.clone();
        let after = self.last_seq;
        let count = batch.len();
        let (db, name) = (self.db.clone(), self.name.clone());
        // Past the mark, the mark goes up first (rarely: `reserve_ahead`
        // keeps it ahead).
        let raise =
            (after + count as u64 > self.reserved).then_some(after + count as u64 + SEQ_BLOCK);
        async move {
            if let Some(upto) = raise {
                store::raise_seq_reserved(&db, &name, upto)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let first = bus
                .sequence(&topic, after, count as u64)
                .await
                .map_err(|e| e.to_string())?;
            let ids = ids.take(count).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((first, ids))
        }
        .into_actor(self)
        .map(move |numbered, act, ctx| {
            act.numbering = false;
            match numbered {
                Ok((first, ids)) => {
                    if let Some(upto) = raise {
                        act.reserved = act.reserved.max(upto);
                    }
                    act.publish_said(first, ids, batch, replies, ctx);
                    act.reserve_ahead(ctx);
                }
                Err(err) => {
                    tracing::error!(topic = %act.key, error = %err, "could not number messages");
                    for reply in replies {
                        let _ = reply.send(Err(RoomError::Store));
                    }
                }
            }
            act.number(ctx);
            act.maybe_vacant(ctx);
        })
        .spawn(ctx);
    }

    fn publish_said(
        &mut self,
        first: u64,
        ids: Vec<i64>,
        batch: Vec<NewMessage>,
        replies: Vec<SayReply>,
        ctx: &mut Context<Self>,
    ) {
        let mut events = Vec::with_capacity(batch.len());
        for (((message, reply), id), seq) in batch.into_iter().zip(replies).zip(ids).zip(first..) {
            let row = messages::Model {
                id,
                topic: self.key.clone(),
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
                user_name: message.user,
                text: message.text,
                at: message.at,
            };
            let view = store::view(&row);
            self.last_seq = self.last_seq.max(seq);
            events.push(TopicEvent {
                frame: client::message(&self.key, &view),
                kind: EventKind::Message(view),
            });
            self.unstored.push_back(Unstored { row, reply });
        }
        self.publish_all(events);
        self.store(ctx);
    }

    /// Hands every published message not yet stored to the writer, one
    /// batch at a time so that what is stored is always a prefix of what
    /// was published. A failed batch is tried again after a pause; its
    /// senders hear of the failure only once the attempts run out.
    fn store(&mut self, ctx: &mut Context<Self>) {
        if self.writing > 0 || self.store_paused || self.unstored.is_empty() {
            return;
        }
        self.writing = self.unstored.len();
        let rows = self.unstored.iter().map(|u| u.row.clone()).collect();
        self.store
            .writer
            .send(WriteMessages { rows })
            .into_actor(self)
            .map(|written, act, ctx| {
                let batch = std::mem::take(&mut act.writing);
                match written.map_err(|e| e.to_string()).and_then(|w| w) {
                    Ok(()) => {
                        act.store_failures = 0;
                        for stored in act.unstored.drain(..batch) {
                            let _ = stored.reply.send(Ok(Said {
                                id: stored.row.id,
                                seq: stored.row.seq as u64,
                            }));
                        }
                        act.store(ctx);
                    }
                    Err(err) if act.store_failures + 1 < STORE_ATTEMPTS => {
                        let pause = STORE_RETRY
                            .saturating_mul(1 << act.store_failures.min(16))
                            .min(STORE_RETRY_MAX);
                        act.store_failures += 1;
                        tracing::warn!(topic = %act.key, error = %err, ?pause, "could not store messages; trying again");
                        act.store_paused = true;
                        ctx.run_later(pause, |act, ctx| {
                            act.store_paused = false;
                            act.store(ctx);
                        });
                    }
                    Err(err) => {
                        act.store_failures = 0;
                        let lost: Vec<Unstored> = act.unstored.drain(..batch).collect();
                        tracing::error!(
                            topic = %act.key,
                            error = %err,
                            first_seq = lost.first().map(|u| u.row.seq),
                            last_seq = lost.last().map(|u| u.row.seq),
                            "gave up storing messages members already have"
                        );
                        for unstored in lost {
                            let _ = unstored.reply.send(Err(RoomError::Store));
                        }
                        act.store(ctx);
                    }
                }
                act.maybe_vacant(ctx);
            })
            .spawn(ctx);
    }

    /// The seq up to which every message is in the database.
    fn stored_seq(&self) -> u64 {
        self.unstored
            .front()
            .map_or(self.last_seq, |u| (u.row.seq as u64).saturating_sub(1))
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let key = self.key.clone();
        let name = self.name.clone();
        let now = self.clock.now();
        let keep = self.settings.history.clamp(1, RECENT_KEPT);
        // Nothing is served until the room knows where its topic stands.
        async move {
            store::ensure_room(&db, &name, now).await?;
            let stored = store::last_seq(&db, &key).await?;
            let reserved = store::seq_reserved(&db, &name).await?;
            let recent = store::recent(&db, &key, keep).await?;
            Ok::<_, sea_orm::DbErr>((stored, reserved, recent))
        }
        .into_actor(self)
        .map(|loaded, act, ctx| match loaded {
            Ok((stored, reserved, recent)) => {
                if reserved > stored {
                    // The last run stopped without settling its mark: the
                    // seqs up to it may have been seen, so none is reused.
                    tracing::warn!(
                        topic = %act.key,
                        stored,
                        reserved,
                        "room carries on above its mark; messages seen before a crash may be gone"
                    );
                }
                act.last_seq = stored.max(reserved);
                act.reserved = act.last_seq;
                act.recent = recent.iter().map(store::view).collect();
            }
            Err(err) => {
                tracing::error!(topic = %act.key, error = %err, "room could not load; closing it");
                ctx.stop();
            }
        })
        .wait(ctx);
        self.bus.subscribe(&self.topic, ctx.address().recipient());
        ctx.run_interval(TYPING_SWEEP, |act, _| {
            let now = Instant::now();
            let before = act.typing.len();
            act.typing.retain(|_, until| *until > now);
            if act.typing.len() != before {
                act.publish_typing();
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.bus.unsubscribe(&self.topic);
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

/// The topic's state for a new member (PROTOCOL §1 `join` reply).
#[derive(Debug, Clone, Serialize)]
pub struct Joined {
    pub conn: String,
    pub members: Vec<MemberView>,
    pub history: Vec<MessageView>,
    pub seq: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Handler<Join> for Room {
    type Result = ResponseActFuture<Self, Result<Joined, RoomError>>;

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        if !self.members.contains_key(&msg.conn) {
            let joined = MemberView {
                conn: msg.conn.clone(),
                user: msg.user.to_string(),
            };
            self.members.insert(
                msg.conn.clone(),
                Member {
                    user: msg.user,
                    out: msg.out,
                },
            );
            self.publish_presence(vec![joined], Vec::new());
        }
        let members = self.members.views();
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
        let joined = move |history, truncated| Joined {
            conn,
            members,
            history,
            seq,
            truncated,
        };
        match msg.since {
            None => {
                let history = from_memory(0, self.settings.history);
                Box::pin(fut::ready(Ok(joined(history, false))))
            }
            // Everything missed is still in memory.
            Some(since) if since + 1 >= oldest_kept || since >= seq => {
                let history = self
                    .recent
                    .iter()
                    .filter(|m| m.seq > since)
                    .take(cap)
                    .cloned()
                    .collect::<Vec<_>>();
                let truncated = seq.saturating_sub(since) as usize > history.len();
                Box::pin(fut::ready(Ok(joined(history, truncated))))
            }
            Some(since) => {
                let db = self.db.clone();
                let key = self.key.clone();
                // What the database may not have yet comes from memory.
                let stored = self.stored_seq();
                let unstored: Vec<MessageView> = self
                    .recent
                    .iter()
                    .filter(|m| m.seq > stored.max(since))
                    .cloned()
                    .collect();
                Box::pin(
                    async move { store::after(&db, &key, since, cap).await }
                        .into_actor(self)
                        .map(move |rows, _, _| match rows {
                            Ok((rows, truncated)) => {
                                let mut history: Vec<MessageView> =
                                    rows.iter().map(store::view).collect();
                                if !truncated {
                                    let read = history.last().map_or(since, |m| m.seq);
                                    history.extend(unstored.into_iter().filter(|m| m.seq > read));
                                }
                                // Only up to the seq the reply names; later ones
                                // reach the member live.
                                history.retain(|m| m.seq <= seq);
                                Ok(joined(history, truncated))
                            }
                            Err(err) => {
                                tracing::error!(error = %err, "could not read history");
                                Err(RoomError::Unavailable)
                            }
                        }),
                )
            }
        }
    }
}

/// A connection leaves the topic (or closed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub conn: String,
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        self.remove(&msg.conn, ctx);
    }
}

/// A member's account took a new display name: others see it leave under
/// the old name and come back under the new one, in one presence diff.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rename {
    pub conn: String,
    pub user: UserName,
}

impl Handler<Rename> for Room {
    type Result = ();

    fn handle(&mut self, msg: Rename, _: &mut Context<Self>) {
        let Some(member) = self.members.get_mut(&msg.conn) else {
            return;
        };
        if member.user == msg.user {
            return;
        }
        let old = std::mem::replace(&mut member.user, msg.user.clone());
        self.publish_presence(
            vec![MemberView {
                conn: msg.conn.clone(),
                user: msg.user.to_string(),
            }],
            vec![MemberView {
                conn: msg.conn,
                user: old.to_string(),
            }],
        );
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
                at: self.clock.now(),
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
    type Result = Result<(), RoomError>;

    fn handle(&mut self, msg: Signal, ctx: &mut Context<Self>) -> Self::Result {
        if !self.members.contains_key(&msg.from) {
            return Err(RoomError::NotJoined);
        }
        let Some(target) = self.members.get(&msg.to) else {
            return Err(RoomError::NotInTopic(msg.to));
        };
        let frame = client::signal(&self.key, &msg.from, &msg.data);
        if let Err(SendError::Full) = target.out.text(frame) {
            tracing::warn!(topic = %self.key, conn = %msg.to, "slow consumer closed");
            self.remove(&msg.to, ctx);
        }
        Ok(())
    }
}

impl Handler<TopicEvents> for Room {
    type Result = ();

    fn handle(&mut self, batch: TopicEvents, ctx: &mut Context<Self>) {
        for event in &batch.events {
            if let EventKind::Message(view) = &event.kind {
                self.last_seq = self.last_seq.max(view.seq);
                self.recent.push_back(view.clone());
            }
        }
        // Unstored messages stay: a resume that reads the database finds
        // them here.
        let stored = self.stored_seq();
        while self.recent.len() > RECENT_KEPT
            && self.recent.front().is_some_and(|m| m.seq <= stored)
        {
            self.recent.pop_front();
        }
        self.deliver(&batch.events, ctx);
    }
}

/// The registry asks an empty room to close; it refuses if someone joined
/// in the meantime.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct TryClose;

impl Handler<TryClose> for Room {
    type Result = bool;

    fn handle(&mut self, _: TryClose, ctx: &mut Context<Self>) -> bool {
        let idle = self.members.is_empty() && self.idle();
        if !idle {
            return false;
        }
        if self.reserved > self.last_seq {
            // Its mark must come down first; it asks again when it has.
            self.maybe_vacant(ctx);
            return false;
        }
        ctx.stop();
        true
    }
}

/// How many members the room has, for the rooms list.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountMembers;

impl Handler<CountMembers> for Room {
    type Result = usize;

    fn handle(&mut self, _: CountMembers, _: &mut Context<Self>) -> usize {
        self.members.len()
    }
}
