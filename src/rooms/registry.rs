//! The RoomRegistry actor: topic → Room (chat) or AuctionRoom (a lot), for
//! topics with members on this node. It starts a room on first join and
//! closes it once empty.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::join_all;
use sea_orm::DatabaseConnection;
use serde_json::Value;

use super::members::{CountMembers, TryClose};
use super::room::{Post, Room, RoomError, Said};
use super::writer::MessageStore;
use crate::accounts::hub::SessionHub;
use crate::auction::room::{AuctionRoom, JoinLot};
use crate::bus::Bus;
use crate::bus::Inbound;
use crate::config::ChatSettings;
use crate::domain::topic::{RoomName, Topic};
use crate::domain::user_name::UserName;
use crate::lifecycle::Lifecycle;
use crate::protocol::{ErrorCode, Refusal};
use crate::supervision::{self, Name, Restart};

pub struct RoomRegistry {
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    settings: Arc<ChatSettings>,
    store: MessageStore,
    hub: Addr<SessionHub>,
    /// Rooms run on it, so that shutdown stops them and waits for them.
    lifecycle: Lifecycle,
    rooms: HashMap<Topic, Addr<Room>>,
    lots: HashMap<i64, Addr<AuctionRoom>>,
}

impl RoomRegistry {
    pub fn new(
        db: DatabaseConnection,
        bus: Arc<dyn Bus>,
        settings: Arc<ChatSettings>,
        store: MessageStore,
        hub: Addr<SessionHub>,
        lifecycle: Lifecycle,
    ) -> RoomRegistry {
        RoomRegistry {
            db,
            bus,
            settings,
            store,
            hub,
            lifecycle,
            rooms: HashMap::new(),
            lots: HashMap::new(),
        }
    }
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;
}

impl Supervised for RoomRegistry {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The map survives a restart (the Supervisor keeps this value), and
        // rooms that stopped meanwhile are replaced on their next join.
        self.rooms.retain(|_, room| room.connected());
        self.lots.retain(|_, room| room.connected());
        tracing::warn!(rooms = self.rooms.len(), "room registry restarted");
    }
}

/// The Room for a chat room, started if it has none on this node.
#[derive(Message)]
#[rtype(result = "Addr<Room>")]
pub struct RoomFor {
    pub room: RoomName,
}

impl Handler<RoomFor> for RoomRegistry {
    type Result = MessageResult<RoomFor>;

    fn handle(&mut self, msg: RoomFor, ctx: &mut Context<Self>) -> Self::Result {
        supervision::drill(Name::Registry);
        let topic = Topic::Chat(msg.room.clone());
        if let Some(room) = self.rooms.get(&topic).filter(|r| r.connected()) {
            return MessageResult(room.clone());
        }
        let (db, bus) = (self.db.clone(), self.bus.clone());
        let (settings, registry, store) =
            (self.settings.clone(), ctx.address(), self.store.clone());
        let room = supervision::start(Name::Room, Restart::OnPanic, &self.lifecycle, move |_| {
            Room::new(msg.room, db, bus, settings, registry, store)
        });
        self.rooms.insert(topic, room.clone());
        MessageResult(room)
    }
}

/// The room of a lot, started if it has none on this node.
#[derive(Message)]
#[rtype(result = "Addr<AuctionRoom>")]
pub struct LotRoomFor {
    pub lot_id: i64,
}

impl Handler<LotRoomFor> for RoomRegistry {
    type Result = MessageResult<LotRoomFor>;

    fn handle(&mut self, msg: LotRoomFor, ctx: &mut Context<Self>) -> Self::Result {
        supervision::drill(Name::Registry);
        if let Some(room) = self.lots.get(&msg.lot_id).filter(|r| r.connected()) {
            return MessageResult(room.clone());
        }
        let (db, bus) = (self.db.clone(), self.bus.clone());
        let (hub, registry, lot_id) = (self.hub.clone(), ctx.address(), msg.lot_id);
        let room = supervision::start(Name::Lot, Restart::OnPanic, &self.lifecycle, move |_| {
            AuctionRoom::new(lot_id, db, bus, hub, registry)
        });
        self.lots.insert(msg.lot_id, room.clone());
        MessageResult(room)
    }
}

/// Joins a lot's room through the registry. A room that closed between the
/// lookup and the join (its last member left, or a join of a lot that does
/// not exist emptied it) is replaced once, so a join never fails for
/// arriving while a room stops.
pub async fn join_lot(
    registry: &Addr<RoomRegistry>,
    lot_id: i64,
    join: JoinLot,
) -> Result<(Addr<AuctionRoom>, Value), Refusal> {
    for _ in 0..2 {
        let room = registry.send(LotRoomFor { lot_id }).await.map_err(|_| {
            Refusal::new(ErrorCode::Internal, "the rooms are restarting; try again")
        })?;
        if let Ok(joined) = room.send(join.clone()).await {
            return joined.map(|state| (room, state));
        }
    }
    Err(Refusal::new(
        ErrorCode::Internal,
        "the lot's room closed; join again",
    ))
}

/// A message another service posts into a chat room: the room is opened
/// here if it has none on this node, and closes again once it has stored
/// the message and nobody is in it.
#[derive(Message)]
#[rtype(result = "Result<Said, PostError>")]
pub struct PostMessage {
    pub room: RoomName,
    pub user: UserName,
    pub text: String,
}

/// Why a posted message was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error("the room stopped; try again")]
    Gone,
}

impl Handler<PostMessage> for RoomRegistry {
    type Result = ResponseFuture<Result<Said, PostError>>;

    fn handle(&mut self, msg: PostMessage, ctx: &mut Context<Self>) -> Self::Result {
        let MessageResult(room) = self.handle(RoomFor { room: msg.room }, ctx);
        let post = Post {
            user: msg.user,
            text: msg.text,
        };
        Box::pin(async move {
            room.send(post)
                .await
                .map_err(|_| PostError::Gone)?
                .map_err(PostError::Room)
        })
    }
}

/// What another service published on the bus's inbox channel: checked as
/// `POST /api/rooms/{topic}/events` checks it, then posted.
impl Handler<Inbound> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        let post = match inbound_post(&msg.topic, &msg.user, &msg.text, self.settings.max_text) {
            Ok(post) => post,
            Err(reason) => {
                tracing::warn!(id = %msg.id, topic = %msg.topic, reason, "an external event was refused");
                return;
            }
        };
        let id = msg.id;
        let reply = self.handle(post, ctx);
        actix::spawn(async move {
            match reply.await {
                Ok(said) => tracing::info!(id, seq = said.seq, "an external event was posted"),
                Err(err) => {
                    tracing::warn!(id, error = %err, "an external event could not be posted")
                }
            }
        });
    }
}

/// Checks an event another service posts: a chat topic, a name, and a text
/// held to the limits a member's is.
pub fn inbound_post(
    topic: &str,
    user: &str,
    text: &str,
    max_text: usize,
) -> Result<PostMessage, String> {
    let room = match Topic::parse(topic) {
        Ok(Topic::Chat(room)) => room,
        Ok(_) => {
            return Err(format!(
                "{topic} is not a chat room; only chat rooms take posts"
            ))
        }
        Err(err) => return Err(err),
    };
    let user = UserName::parse_guest(user).map_err(|e| format!("user: {e}"))?;
    super::session::check_text(text, max_text).map_err(|refusal| refusal.message)?;
    Ok(PostMessage {
        room,
        user,
        text: text.to_owned(),
    })
}

/// A lot changed outside its room (an admin edited or cancelled it): every
/// node's watchers get a `lot` event with the new state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LotChanged {
    pub lot_id: i64,
}

impl Handler<LotChanged> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: LotChanged, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let bus = self.bus.clone();
        ctx.spawn(
            async move {
                match crate::auction::room::lot_frame(&db, msg.lot_id).await {
                    Ok(Some(frame)) => bus.publish(crate::bus::TopicEvents {
                        topic: crate::auction::room::lot_topic(msg.lot_id),
                        events: vec![crate::bus::TopicEvent {
                            kind: crate::bus::EventKind::Lot,
                            frame,
                        }],
                    }),
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(lot = msg.lot_id, error = %err, "watchers not told of a change")
                    }
                }
            }
            .into_actor(self),
        );
    }
}

/// A room has no members left: a chat room (by topic) or a lot's (by lot id).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Vacant<K, R: Actor> {
    pub key: K,
    pub room: Addr<R>,
}

impl Handler<Vacant<Topic, Room>> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: Vacant<Topic, Room>, ctx: &mut Context<Self>) {
        close_if_vacant(self, |act| &mut act.rooms, msg, ctx);
    }
}

impl Handler<Vacant<i64, AuctionRoom>> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: Vacant<i64, AuctionRoom>, ctx: &mut Context<Self>) {
        close_if_vacant(self, |act| &mut act.lots, msg, ctx);
    }
}

/// Asks a vacant room to close, and forgets it if it did. No room is handed
/// out while the answer is awaited, so a join either reached the room before
/// this (and it stays) or fails on the closed room and asks again.
fn close_if_vacant<K, R>(
    registry: &mut RoomRegistry,
    rooms: fn(&mut RoomRegistry) -> &mut HashMap<K, Addr<R>>,
    msg: Vacant<K, R>,
    ctx: &mut Context<RoomRegistry>,
) where
    K: Eq + std::hash::Hash + Unpin + 'static,
    R: Actor<Context = Context<R>> + Handler<TryClose>,
{
    if rooms(registry).get(&msg.key) != Some(&msg.room) {
        return;
    }
    msg.room
        .send(TryClose)
        .into_actor(registry)
        .map(move |closed, act, _| {
            if closed.unwrap_or(true) {
                rooms(act).remove(&msg.key);
            }
        })
        .wait(ctx);
}

/// How many chat rooms are open on this node. A room closes only once it
/// has no members and has stored every message it published, so shutdown
/// waits for this to reach 0.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct OpenChatRooms;

impl Handler<OpenChatRooms> for RoomRegistry {
    type Result = usize;

    fn handle(&mut self, _: OpenChatRooms, _: &mut Context<Self>) -> usize {
        self.rooms.values().filter(|r| r.connected()).count()
    }
}

/// Every room running on this node, and its members (0 for a room that
/// is closing).
#[derive(Message)]
#[rtype(result = "Vec<(Topic, usize)>")]
pub struct ListRooms;

/// Rooms running on this node in a `ListRooms` answer, chat and lots, with
/// members or not: a room outlives its last member only while it stores
/// what was said, so more than a few without members is a leak.
pub fn running(topics: &[(Topic, usize)]) -> (usize, usize) {
    let chats = topics
        .iter()
        .filter(|(t, _)| matches!(t, Topic::Chat(_)))
        .count();
    (chats, topics.len() - chats)
}

/// Chat rooms and lots with members, in a `ListRooms` answer. A room stays
/// registered a moment after its last member leaves; it is not counted.
pub fn occupied(topics: &[(Topic, usize)]) -> (usize, usize) {
    let chat = |topic: &Topic| matches!(topic, Topic::Chat(_));
    let with_members = topics.iter().filter(|(_, n)| *n > 0);
    let chats = with_members.clone().filter(|(t, _)| chat(t)).count();
    let lots = with_members.filter(|(t, _)| !chat(t)).count();
    (chats, lots)
}

impl Handler<ListRooms> for RoomRegistry {
    type Result = ResponseFuture<Vec<(Topic, usize)>>;

    fn handle(&mut self, _: ListRooms, _: &mut Context<Self>) -> Self::Result {
        // A room that stopped on its own (it could not load) is forgotten
        // here rather than asked and left in the map.
        self.rooms.retain(|_, room| room.connected());
        self.lots.retain(|_, room| room.connected());
        let rooms: Vec<(Topic, Addr<Room>)> = self
            .rooms
            .iter()
            .map(|(t, r)| (t.clone(), r.clone()))
            .collect();
        let lots: Vec<(Topic, Addr<AuctionRoom>)> = self
            .lots
            .iter()
            .map(|(id, r)| (crate::auction::room::lot_topic(*id), r.clone()))
            .collect();
        Box::pin(async move {
            let counts = join_all(rooms.iter().map(|(_, r)| r.send(CountMembers))).await;
            let lot_counts = join_all(lots.iter().map(|(_, r)| r.send(CountMembers))).await;
            let chat = rooms.into_iter().map(|(t, _)| t).zip(counts);
            let auctions = lots.into_iter().map(|(t, _)| t).zip(lot_counts);
            chat.chain(auctions)
                .filter_map(|(topic, n)| n.ok().map(|n| (topic, n)))
                .collect()
        })
    }
}
