//! The RoomRegistry actor: topic → Room, for topics with members on this
//! node. It starts a Room on first join and closes it once empty.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::join_all;
use sea_orm::DatabaseConnection;

use super::bus::Bus;
use super::room::{CountMembers, Room, TryClose};
use super::writer::MessageWriter;
use crate::clock::Clock;
use crate::config::ChatSettings;
use crate::domain::topic::{RoomName, Topic};

pub struct RoomRegistry {
    db: DatabaseConnection,
    clock: Clock,
    bus: Arc<dyn Bus>,
    settings: Arc<ChatSettings>,
    writer: Addr<MessageWriter>,
    rooms: HashMap<Topic, Addr<Room>>,
}

impl RoomRegistry {
    pub fn new(
        db: DatabaseConnection,
        clock: Clock,
        bus: Arc<dyn Bus>,
        settings: Arc<ChatSettings>,
        writer: Addr<MessageWriter>,
    ) -> RoomRegistry {
        RoomRegistry {
            db,
            clock,
            bus,
            settings,
            writer,
            rooms: HashMap::new(),
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
        let topic = Topic::Chat(msg.room.clone());
        if let Some(room) = self.rooms.get(&topic).filter(|r| r.connected()) {
            return MessageResult(room.clone());
        }
        let room = Room::new(
            msg.room,
            self.db.clone(),
            self.clock.clone(),
            self.bus.clone(),
            self.settings.clone(),
            ctx.address(),
            self.writer.clone(),
        )
        .start();
        self.rooms.insert(topic, room.clone());
        MessageResult(room)
    }
}

/// A room has no members left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Vacant {
    pub topic: Topic,
    pub room: Addr<Room>,
}

impl Handler<Vacant> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: Vacant, ctx: &mut Context<Self>) {
        if self.rooms.get(&msg.topic) != Some(&msg.room) {
            return;
        }
        // No room is handed out while the answer is awaited, so a join either
        // reached the room before this (and it stays) or fails on the closed
        // room and asks again.
        msg.room
            .send(TryClose)
            .into_actor(self)
            .map(move |closed, act, _| {
                if closed.unwrap_or(true) {
                    act.rooms.remove(&msg.topic);
                }
            })
            .wait(ctx);
    }
}

/// Topics with members on this node, and how many.
#[derive(Message)]
#[rtype(result = "Vec<(Topic, usize)>")]
pub struct ListRooms;

impl Handler<ListRooms> for RoomRegistry {
    type Result = ResponseFuture<Vec<(Topic, usize)>>;

    fn handle(&mut self, _: ListRooms, _: &mut Context<Self>) -> Self::Result {
        let rooms: Vec<(Topic, Addr<Room>)> = self
            .rooms
            .iter()
            .map(|(t, r)| (t.clone(), r.clone()))
            .collect();
        Box::pin(async move {
            let counts = join_all(rooms.iter().map(|(_, r)| r.send(CountMembers))).await;
            rooms
                .into_iter()
                .zip(counts)
                .filter_map(|((topic, _), n)| n.ok().map(|n| (topic, n)))
                .collect()
        })
    }
}
