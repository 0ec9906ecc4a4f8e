//! The ClientSession actor: one per `/ws` connection, fed by the socket's
//! message stream. It parses requests (docs/protocol.md §1), enforces the
//! limits of one connection (frame size, rate, liveness), and talks to Rooms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::detached;
use super::identity::Identity;
use super::members::Leave;
use super::rate::{TokenBucket, Verdict};
use super::registry::{join_lot, RoomFor, RoomRegistry};
use super::room::{Join, Joined, Rename, Room, RoomError, Say, Signal, Typing};
use crate::accounts::hub::{AccountEvent, Attach, Detach, SessionHub};
use crate::auction::room::{AuctionRoom, JoinLot, PlaceBid};
use crate::bus::NodeId;
use crate::clock;
use crate::config::{ChatSettings, WsSettings};
use crate::domain::topic::{RoomName, Topic};
use crate::protocol::client::{self, Envelope, Request};
use crate::protocol::frame::{self, Unread};
use crate::protocol::{ErrorCode, Refusal};
use crate::ws::{CloseCode, Frame, Outbound, ReadError, SendError, Silence};

/// The largest `signal` payload relayed, in bytes of JSON.
pub const MAX_SIGNAL: usize = 16 << 10;

/// What a frame costs from a connection's bucket: a whole token for text
/// or binary, parsed or not; a quarter for a ping or a pong, which cost the
/// server little but are not free.
const FRAME_COST: f64 = 1.0;
const CONTROL_FRAME_COST: f64 = 0.25;

/// Closes a socket whose login session expired (docs/protocol.md §4).
pub const SESSION_EXPIRED: CloseCode = CloseCode::Other(4401);

/// Numbers connections on this node: `c-1`, `c-2`, …
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

pub struct ClientSession {
    conn: String,
    identity: Identity,
    out: Outbound,
    registry: Addr<RoomRegistry>,
    ws: Arc<WsSettings>,
    chat: Arc<ChatSettings>,
    rooms: HashMap<Topic, Addr<Room>>,
    lots: HashMap<Topic, Addr<AuctionRoom>>,
    bucket: TokenBucket,
    silence: Silence,
    hub: Addr<SessionHub>,
    /// The account logged out: this socket may only ping until it reconnects.
    signed_out: bool,
    /// When the login session the socket opened with ends: the socket is
    /// then closed (docs/protocol.md §4). `None` for a guest.
    session_ends: Option<DateTime<Utc>>,
}

/// What every client session on a node shares.
#[derive(Clone)]
pub struct SessionDeps {
    pub registry: Addr<RoomRegistry>,
    pub ws: Arc<WsSettings>,
    pub chat: Arc<ChatSettings>,
    pub hub: Addr<SessionHub>,
    /// Part of every connection id, so that ids are unique in a cluster.
    pub node: NodeId,
}

impl ClientSession {
    pub fn new(identity: Identity, out: Outbound, deps: SessionDeps) -> ClientSession {
        let now = Instant::now();
        let n = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        ClientSession {
            conn: format!("c-{}-{n}", deps.node),
            identity,
            out,
            registry: deps.registry,
            bucket: TokenBucket::new(deps.ws.rate, deps.ws.burst, now),
            silence: Silence::new(deps.ws.idle_timeout),
            ws: deps.ws,
            chat: deps.chat,
            rooms: HashMap::new(),
            lots: HashMap::new(),
            hub: deps.hub,
            signed_out: false,
            session_ends: None,
        }
    }

    /// The socket's login session ends at `at`.
    pub fn session_ending_at(mut self, at: DateTime<Utc>) -> ClientSession {
        self.session_ends = Some(at);
        self
    }

    /// Once the login session is over, the socket is signed out as on a
    /// logout and closed: it would otherwise go on as the account for as
    /// long as it stays open. Reconnecting finds no session. Whether it
    /// was closed.
    fn end_expired_session(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.session_ends.is_none_or(|ends| clock::now() < ends) {
            return false;
        }
        if !self.signed_out {
            self.sign_out(ctx);
        }
        self.out.close(SESSION_EXPIRED, "login session expired");
        ctx.stop();
        true
    }

    /// Leaves every topic and tells the client `session: null`; then only
    /// `ping` is answered.
    fn sign_out(&mut self, ctx: &mut Context<Self>) {
        self.leave_all();
        self.detach();
        self.signed_out = true;
        self.push(client::session(None), ctx);
    }

    fn push(&self, frame: ByteString, ctx: &mut Context<Self>) {
        if let Err(SendError::Full) = self.out.text(frame) {
            ctx.stop();
        }
    }

    /// Answers a request: a `reply` when it had a `ref`; otherwise only a
    /// failure is worth a frame.
    fn answer(
        &self,
        reference: Option<&str>,
        outcome: Result<Value, Refusal>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(frame) = answer_frame(reference, outcome) {
            self.push(frame, ctx);
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match read_request(text, self.ws.soft_frame_limit) {
            Ok(envelope) => self.on_request(envelope, ctx),
            Err(unread) => self.push(refused_frame(&unread), ctx),
        }
    }

    /// Takes what `frame` costs from the bucket. Every frame costs, a
    /// request or not, so that a flood of binary, malformed or ping frames
    /// is limited as a flood of requests is. `false` when the frame is not
    /// to be handled: refused, or the socket is closing.
    fn charge(&mut self, frame: &Frame, ctx: &mut Context<Self>) -> bool {
        let cost = match frame {
            Frame::Ping(_) | Frame::Pong(_) => CONTROL_FRAME_COST,
            _ => FRAME_COST,
        };
        match self.bucket.take(Instant::now(), self.ws.rate_grace, cost) {
            Verdict::Allow => true,
            Verdict::Refuse => {
                self.refuse(frame, ctx);
                false
            }
            Verdict::Abuse => {
                tracing::debug!(conn = %self.conn, user = %self.identity.user, "rate limit exceeded");
                self.out.close(CloseCode::Policy, "rate limit exceeded");
                ctx.stop();
                false
            }
        }
    }

    /// Answers a frame over the rate with `rate_limited`, as the reply to
    /// its `ref` when it is a request that has one. A ping or a pong gets
    /// nothing: answering would cost as much as the flood.
    fn refuse(&self, frame: &Frame, ctx: &mut Context<Self>) {
        let reference = match frame {
            Frame::Text(text) => match read_request(text, self.ws.soft_frame_limit) {
                Ok(envelope) => envelope.reference,
                Err(unread) => unread.reference,
            },
            Frame::Binary(_) => None,
            Frame::Ping(_) | Frame::Pong(_) | Frame::Close(_) => return,
        };
        let outcome = Err(Refusal::new(
            ErrorCode::RateLimited,
            "slow down: too many requests",
        ));
        self.answer(reference.as_deref(), outcome, ctx);
    }

    fn on_request(&mut self, envelope: Envelope, ctx: &mut Context<Self>) {
        let reference = envelope.reference;
        if self.signed_out && !matches!(envelope.request, Request::Ping) {
            let outcome = Err(Refusal::new(
                ErrorCode::NotLoggedIn,
                "you logged out; reconnect to go on",
            ));
            return self.answer(reference.as_deref(), outcome, ctx);
        }
        match envelope.request {
            Request::Join { topic, since } => self.join(reference, &topic, since, ctx),
            Request::Leave { topic } => {
                if let Some((topic, room)) = self.joined_lot(&topic) {
                    room.do_send(Leave {
                        conn: self.conn.clone(),
                    });
                    self.lots.remove(&topic);
                    return self.answer(reference.as_deref(), Ok(json!({})), ctx);
                }
                let outcome = self.joined(&topic).map(|(topic, room)| {
                    room.do_send(Leave {
                        conn: self.conn.clone(),
                    });
                    self.rooms.remove(&topic);
                    json!({})
                });
                self.answer(reference.as_deref(), outcome, ctx);
            }
            Request::Say { topic, text } => self.say(reference, &topic, text, ctx),
            Request::Typing { topic } => {
                let outcome = self.joined(&topic).map(|(_, room)| {
                    room.do_send(Typing {
                        conn: self.conn.clone(),
                    });
                    json!({})
                });
                self.answer(reference.as_deref(), outcome, ctx);
            }
            Request::Signal { topic, to, data } => self.signal(reference, &topic, to, data, ctx),
            Request::Bid {
                topic,
                amount_cents,
                max_cents,
            } => self.bid(reference, &topic, amount_cents, max_cents, ctx),
            Request::Ping => {
                let body = json!({ "server_time": client::time(clock::now()) });
                self.answer(reference.as_deref(), Ok(body), ctx);
            }
        }
    }

    /// The AuctionRoom of a lot this connection has joined.
    fn joined_lot(&self, raw: &str) -> Option<(Topic, Addr<AuctionRoom>)> {
        let topic = Topic::parse(raw).ok()?;
        self.lots.get(&topic).map(|room| (topic, room.clone()))
    }

    fn bid(
        &mut self,
        reference: Option<String>,
        raw: &str,
        amount_cents: i64,
        max_cents: Option<i64>,
        ctx: &mut Context<Self>,
    ) {
        let Some(account) = self.identity.account.as_ref().map(|a| a.id) else {
            let outcome = Err(Refusal::new(
                ErrorCode::NotLoggedIn,
                "only accounts may bid; log in first",
            ));
            return self.answer(reference.as_deref(), outcome, ctx);
        };
        let room = match Topic::parse(raw) {
            Err(e) => {
                let outcome = Err(Refusal::new(ErrorCode::BadTopic, e));
                return self.answer(reference.as_deref(), outcome, ctx);
            }
            Ok(topic) => match (self.lots.get(&topic), &topic) {
                (Some(room), _) => room.clone(),
                (None, Topic::Chat(_)) => {
                    let outcome = Err(Refusal::new(
                        ErrorCode::BadTopic,
                        format!("{topic} is a chat room: bids go to auction topics"),
                    ));
                    return self.answer(reference.as_deref(), outcome, ctx);
                }
                (None, Topic::Auction(_)) => {
                    let outcome = Err(Refusal::new(
                        ErrorCode::NotJoined,
                        format!("join {topic} first"),
                    ));
                    return self.answer(reference.as_deref(), outcome, ctx);
                }
            },
        };
        let bid = PlaceBid {
            conn: self.conn.clone(),
            account,
            amount_cents,
            max_cents,
        };
        detached::send(&room, bid)
            .into_actor(self)
            .map(move |placed, act, ctx| {
                let outcome = placed.unwrap_or_else(|_| {
                    // It panicked and restarted (members kept), or closed.
                    Err(Refusal::new(
                        ErrorCode::Internal,
                        "the lot's room failed before answering; try again",
                    ))
                });
                act.answer(reference.as_deref(), outcome, ctx);
            })
            .spawn(ctx);
    }

    /// The Room of a topic this connection has joined.
    fn joined(&self, raw: &str) -> Result<(Topic, Addr<Room>), Refusal> {
        let topic = Topic::parse(raw).map_err(|e| Refusal::new(ErrorCode::BadTopic, e))?;
        match (self.rooms.get(&topic), &topic) {
            (Some(room), _) => Ok((topic, room.clone())),
            // "Join first" would send a member of the lot round in circles.
            (None, Topic::Auction(_)) => Err(Refusal::new(
                ErrorCode::BadTopic,
                format!("{topic} is a lot: it takes bids, not chat"),
            )),
            (None, Topic::Chat(_)) => Err(Refusal::new(
                ErrorCode::NotJoined,
                format!("join {topic} first"),
            )),
        }
    }

    /// Refuses a topic past `chat.max_topics_per_socket`: every topic is a
    /// room's member list entry and a subscription, so one socket must not
    /// hold them without bound. Joining a topic again is always fine.
    fn may_join(&self, topic: &Topic) -> Result<(), Refusal> {
        let joined = self.rooms.len() + self.lots.len();
        let max = self.chat.max_topics_per_socket;
        if joined < max || self.rooms.contains_key(topic) || self.lots.contains_key(topic) {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::TooManyTopics,
            format!("a connection may join at most {max} topics; leave one first"),
        ))
    }

    fn join_lot(
        &mut self,
        reference: Option<String>,
        topic: Topic,
        id: u64,
        ctx: &mut Context<Self>,
    ) {
        let Ok(lot_id) = i64::try_from(id) else {
            let outcome = Err(Refusal::new(
                ErrorCode::NoSuchTopic,
                format!("there is no lot behind {topic}"),
            ));
            return self.answer(reference.as_deref(), outcome, ctx);
        };
        let join = JoinLot {
            conn: self.conn.clone(),
            user: self.identity.user.clone(),
            account: self.identity.account.as_ref().map(|a| a.id),
            out: self.out.clone(),
        };
        let registry = self.registry.clone();
        // As for chat: later frames (a bid) wait for the join.
        async move { join_lot(&registry, lot_id, join).await }
            .into_actor(self)
            .map(move |joined, act, ctx| {
                let outcome = joined.map(|(room, body)| {
                    act.lots.insert(topic, room);
                    body
                });
                act.answer(reference.as_deref(), outcome, ctx);
            })
            .wait(ctx);
    }

    fn join(
        &mut self,
        reference: Option<String>,
        raw: &str,
        since: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        let topic = match Topic::parse(raw) {
            Ok(topic) => topic,
            Err(e) => {
                let outcome = Err(Refusal::new(ErrorCode::BadTopic, e));
                return self.answer(reference.as_deref(), outcome, ctx);
            }
        };
        if let Err(refusal) = self.may_join(&topic) {
            return self.answer(reference.as_deref(), Err(refusal), ctx);
        }
        let room_name = match &topic {
            Topic::Chat(room) => room.clone(),
            &Topic::Auction(id) => return self.join_lot(reference, topic, id, ctx),
        };
        let join = Join {
            conn: self.conn.clone(),
            user: self.identity.user.clone(),
            out: self.out.clone(),
            since,
        };
        let registry = self.registry.clone();
        // Later frames wait for the join, so a `say` right after it finds
        // the topic joined.
        async move { join_room(&registry, room_name, join).await }
            .into_actor(self)
            .map(move |joined, act, ctx| {
                let outcome = match joined {
                    Ok((room, mut state)) => {
                        act.rooms.insert(topic, room);
                        fit_history(&mut state, since.is_some(), act.out.max_bytes() / 2);
                        Ok(serde_json::to_value(state).unwrap_or_default())
                    }
                    Err(err) => Err(Refusal::new(err.code(), err.to_string())),
                };
                act.answer(reference.as_deref(), outcome, ctx);
            })
            .wait(ctx);
    }

    fn say(
        &mut self,
        reference: Option<String>,
        topic: &str,
        text: String,
        ctx: &mut Context<Self>,
    ) {
        let checked = self.joined(topic).and_then(|(_, room)| {
            check_text(&text, self.chat.max_text)?;
            Ok(room)
        });
        let room = match checked {
            Ok(room) => room,
            Err(e) => return self.answer(reference.as_deref(), Err(e), ctx),
        };
        let say = Say {
            conn: self.conn.clone(),
            text,
        };
        detached::send(&room, say)
            .into_actor(self)
            .map(move |said, act, ctx| {
                let outcome = room_outcome(said, |said| json!({ "id": said.id, "seq": said.seq }));
                act.answer(reference.as_deref(), outcome, ctx);
            })
            .spawn(ctx);
    }

    fn signal(
        &mut self,
        reference: Option<String>,
        topic: &str,
        to: String,
        data: Value,
        ctx: &mut Context<Self>,
    ) {
        let checked = self.joined(topic).and_then(|(_, room)| {
            let size = serde_json::to_string(&data).map_or(usize::MAX, |s| s.len());
            if size > MAX_SIGNAL {
                return Err(Refusal::new(
                    ErrorCode::SignalTooLarge,
                    format!("signal data is limited to {MAX_SIGNAL} bytes"),
                ));
            }
            Ok(room)
        });
        let room = match checked {
            Ok(room) => room,
            Err(e) => return self.answer(reference.as_deref(), Err(e), ctx),
        };
        let signal = Signal {
            from: self.conn.clone(),
            to,
            data,
        };
        room.send(signal)
            .into_actor(self)
            .map(move |relayed, act, ctx| {
                let outcome = room_outcome(relayed, |()| json!({}));
                act.answer(reference.as_deref(), outcome, ctx);
            })
            .spawn(ctx);
    }
}

/// The frame answering a request: a `reply` when it had a `ref`; otherwise
/// only a failure is worth a frame.
pub fn answer_frame(
    reference: Option<&str>,
    outcome: Result<Value, Refusal>,
) -> Option<ByteString> {
    Some(match (reference, outcome) {
        (Some(r), Ok(body)) => client::reply_ok(r, &body),
        (Some(r), Err(refusal)) => client::reply_error(r, &refusal),
        (None, Ok(_)) => return None,
        (None, Err(refusal)) => client::error(&refusal),
    })
}

/// A text frame's first reading, before any room: the request it carries,
/// or why it is none (too large, not JSON, an unknown op, wrong fields).
pub fn read_request(text: &str, soft_frame_limit: usize) -> Result<Envelope, Unread> {
    frame::within_soft_limit(text, soft_frame_limit).map_err(|refusal| Unread {
        reference: None,
        refusal,
    })?;
    client::parse(text)
}

/// The frame refusing a frame that is not a request: the reply to its
/// `ref` when that could be read, an `error` frame otherwise.
pub fn refused_frame(unread: &Unread) -> ByteString {
    match unread.reference.as_deref() {
        Some(r) => client::reply_error(r, &unread.refusal),
        None => client::error(&unread.refusal),
    }
}

/// A Room's answer as a reply body or an error code and message; an error
/// outside it means the room failed before answering (it panicked and was
/// restarted, keeping its members, or it stopped).
fn room_outcome<T, E>(
    answer: Result<Result<T, RoomError>, E>,
    body: impl FnOnce(T) -> Value,
) -> Result<Value, Refusal> {
    match answer {
        Ok(Ok(value)) => Ok(body(value)),
        Ok(Err(err)) => Err(Refusal::new(err.code(), err.to_string())),
        Err(_) => Err(Refusal::new(
            ErrorCode::Internal,
            "the room failed before answering; try again",
        )),
    }
}

/// Cuts a join reply's history to `budget` bytes of JSON, so that the reply
/// stays well within the socket's queue (`ws.max_queued_bytes`): a resume
/// of a thousand long messages would be megabytes in one frame. A resume
/// keeps the oldest and says `truncated`, and the client joins again from
/// the last one it got; a plain join keeps the newest. One message always
/// stays, so that a resume moves on.
fn fit_history(joined: &mut Joined, resume: bool, budget: usize) {
    let sizes: Vec<usize> = joined.history.iter().map(json_len).collect();
    if sizes.iter().sum::<usize>() <= budget {
        return;
    }
    let fitting = |sizes: &mut dyn Iterator<Item = &usize>| {
        let mut used = 0;
        sizes
            .take_while(|&&size| {
                used += size;
                used <= budget
            })
            .count()
            .max(1)
    };
    if resume {
        joined.history.truncate(fitting(&mut sizes.iter()));
        joined.truncated = true;
    } else {
        let keep = fitting(&mut sizes.iter().rev());
        joined.history.drain(..sizes.len() - keep);
    }
}

/// The length of `value` in JSON, counted without writing it anywhere.
fn json_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(usize::MAX, |()| count.0)
}

/// Joins through the registry; a room that closed between the lookup and
/// the join is replaced once.
async fn join_room(
    registry: &Addr<RoomRegistry>,
    room: RoomName,
    join: Join,
) -> Result<(Addr<Room>, Joined), RoomError> {
    for _ in 0..2 {
        let addr = registry
            .send(RoomFor { room: room.clone() })
            .await
            .map_err(|_| RoomError::Unavailable)?;
        let attempt = Join {
            conn: join.conn.clone(),
            user: join.user.clone(),
            out: join.out.clone(),
            since: join.since,
        };
        match addr.send(attempt).await {
            Ok(joined) => return joined.map(|state| (addr, state)),
            Err(_) => continue,
        }
    }
    Err(RoomError::Unavailable)
}

/// A message's text: not blank, within the limit, no control characters
/// other than line breaks and tabs.
pub fn check_text(text: &str, max: usize) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Err(Refusal::new(
            ErrorCode::EmptyText,
            "say something: the text is empty",
        ));
    }
    if text.chars().count() > max {
        return Err(Refusal::new(
            ErrorCode::TextTooLong,
            format!("messages are limited to {max} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(Refusal::new(
            ErrorCode::BadText,
            "the text contains control characters",
        ));
    }
    Ok(())
}

impl Actor for ClientSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(account) = &self.identity.account {
            self.hub.do_send(Attach {
                user_id: account.id,
                conn: self.conn.clone(),
                socket: ctx.address().recipient(),
            });
        }
        if let Some(ends) = self.session_ends {
            let left = (ends - clock::now()).to_std().unwrap_or_default();
            ctx.run_later(left, |act, ctx| {
                act.end_expired_session(ctx);
            });
        }
        ctx.run_interval(self.ws.ping_every, |act, ctx| {
            // Also here, in case the clock was moved forward.
            if act.end_expired_session(ctx) {
                return;
            }
            if act.silence.too_long() {
                act.out.close(CloseCode::Away, "idle timeout");
                ctx.stop();
            } else {
                act.out.ping();
            }
        });
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.leave_all();
        self.detach();
        Running::Stop
    }
}

impl ClientSession {
    fn leave_all(&mut self) {
        for (_, room) in self.rooms.drain() {
            room.do_send(Leave {
                conn: self.conn.clone(),
            });
        }
        for (_, room) in self.lots.drain() {
            room.do_send(Leave {
                conn: self.conn.clone(),
            });
        }
    }

    fn detach(&self) {
        if let Some(account) = &self.identity.account {
            self.hub.do_send(Detach {
                user_id: account.id,
                conn: self.conn.clone(),
            });
        }
    }
}

/// The account changed or logged out (from any tab or device).
impl Handler<AccountEvent> for ClientSession {
    type Result = ();

    fn handle(&mut self, event: AccountEvent, ctx: &mut Context<Self>) {
        if self.signed_out {
            return;
        }
        match event {
            AccountEvent::Changed(account) => {
                let frame = client::session(Some(&account.view()));
                self.identity = Identity::of_account(account);
                let rename = || Rename {
                    conn: self.conn.clone(),
                    user: self.identity.user.clone(),
                };
                for room in self.rooms.values() {
                    room.do_send(rename());
                }
                for room in self.lots.values() {
                    room.do_send(rename());
                }
                self.push(frame, ctx);
            }
            AccountEvent::LoggedOut => self.sign_out(ctx),
            AccountEvent::Frame(frame) => self.push(frame, ctx),
        }
    }
}

impl StreamHandler<Result<Frame, ReadError>> for ClientSession {
    fn handle(&mut self, msg: Result<Frame, ReadError>, ctx: &mut Context<Self>) {
        // At debug level: a span per frame of every socket costs too much to
        // be on by default; the lines a session logs name its conn anyway.
        let _frame =
            tracing::debug_span!("client_frame", conn = %self.conn, user = %self.identity.user)
                .entered();
        self.silence.heard();
        let frame = match msg {
            Ok(Frame::Close(_)) => {
                self.out.bye();
                return ctx.stop();
            }
            Ok(frame) => frame,
            Err(err) => {
                tracing::debug!(conn = %self.conn, error = %err, "client protocol error");
                let (code, reason) = err.close();
                self.out.close(code, reason);
                return ctx.stop();
            }
        };
        if !self.charge(&frame, ctx) {
            return;
        }
        match frame {
            Frame::Text(text) => self.on_text(&text, ctx),
            Frame::Binary(_) => self.push(client::error(&frame::binary_refused()), ctx),
            Frame::Ping(bytes) => self.out.pong(bytes),
            Frame::Pong(_) | Frame::Close(_) => {}
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::client::MessageView;

    fn joined(messages: u64) -> Joined {
        Joined {
            conn: "c-1".into(),
            members: Vec::new(),
            history: (1..=messages)
                .map(|seq| MessageView {
                    id: seq as i64,
                    seq,
                    user: "ana".into(),
                    text: "x".repeat(1000),
                    at: "2026-11-23T19:00:00.000Z".into(),
                })
                .collect(),
            seq: messages,
            truncated: false,
        }
    }

    fn seqs(joined: &Joined) -> Vec<u64> {
        joined.history.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn a_long_resume_keeps_its_oldest_messages_that_fit_and_says_it_was_cut() {
        let mut resume = joined(10);
        fit_history(&mut resume, true, 3500);
        assert_eq!(seqs(&resume), [1, 2, 3]);
        assert!(resume.truncated);
        assert!(json_len(&resume.history) <= 3500);
    }

    #[test]
    fn a_long_plain_join_keeps_its_newest_messages_that_fit() {
        let mut join = joined(10);
        fit_history(&mut join, false, 3500);
        assert_eq!(seqs(&join), [8, 9, 10]);
        assert!(!join.truncated);
    }

    #[test]
    fn a_history_that_fits_is_left_alone_and_one_too_large_keeps_one_message() {
        let mut short = joined(3);
        fit_history(&mut short, true, 1 << 20);
        assert_eq!(seqs(&short), [1, 2, 3]);
        assert!(!short.truncated);
        let mut tight = joined(3);
        fit_history(&mut tight, true, 10);
        assert_eq!(seqs(&tight), [1]);
        assert!(tight.truncated);
    }

    #[test]
    fn a_frame_over_the_soft_limit_is_refused_unread_and_others_in_reply_to_their_ref() {
        let frame = |unread: &Unread| -> Value {
            serde_json::from_str(&refused_frame(unread)).expect("json")
        };
        let large = read_request(r#"{"op":"ping","ref":"1"}"#, 10).unwrap_err();
        assert_eq!(large.reference, None);
        assert_eq!(large.refusal.code, ErrorCode::FrameTooLarge);
        assert_eq!(frame(&large)["op"], "error");
        assert_eq!(frame(&large)["code"], "frame_too_large");

        let unknown = read_request(r#"{"op":"shout","ref":"2"}"#, 100).unwrap_err();
        assert_eq!(frame(&unknown)["ref"], "2");
        assert_eq!(frame(&unknown)["body"]["code"], "unknown_op");
        assert!(read_request(r#"{"op":"ping","ref":"3"}"#, 100).is_ok());
    }

    #[test]
    fn texts_are_checked_for_blankness_length_and_control_characters() {
        assert!(check_text("hello\nworld", 2000).is_ok());
        let code = |text: &str, max| check_text(text, max).unwrap_err().code;
        assert_eq!(code("   ", 2000), ErrorCode::EmptyText);
        assert_eq!(code(&"é".repeat(11), 10), ErrorCode::TextTooLong);
        assert!(check_text(&"é".repeat(10), 10).is_ok());
        assert_eq!(code("a\u{0}b", 2000), ErrorCode::BadText);
    }
}
