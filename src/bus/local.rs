//! The in-process bus: one node, whose room is the only writer of its topic
//! and numbers its own messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::Recipient;
use futures_util::future::{self, LocalBoxFuture};

use super::{
    AccountNotice, Bus, BusError, BusState, Delivery, Draft, EventKind, Inbound, NodeId, NodeInfo,
    TopicEvent, TopicEvents,
};
use crate::domain::topic::Topic;
use crate::protocol::client::{self, MemberView, MessageView};

#[derive(Clone)]
pub struct LocalBus {
    node: NodeId,
    // std Mutexes: held only for a map lookup or a copy, never across an
    // await.
    rooms: Arc<Mutex<HashMap<Topic, Recipient<Delivery>>>>,
    info: Arc<Mutex<Option<NodeInfo>>>,
}

impl LocalBus {
    pub fn new(node: NodeId) -> LocalBus {
        LocalBus {
            node,
            rooms: Arc::default(),
            info: Arc::default(),
        }
    }
}

impl Bus for LocalBus {
    fn node(&self) -> &NodeId {
        &self.node
    }

    fn state(&self) -> BusState {
        BusState::Local
    }

    fn publish_messages(
        &self,
        topic: &Topic,
        after: u64,
        _: u64,
        drafts: &[Draft],
    ) -> LocalBoxFuture<'static, Result<u64, BusError>> {
        // The room numbers one batch at a time, so the last seq it gave out
        // is all the numbering one node needs.
        let key = topic.to_string();
        let events = drafts
            .iter()
            .zip(after + 1..)
            .map(|(draft, seq)| {
                let view = MessageView {
                    id: draft.id,
                    seq,
                    user: draft.user.clone(),
                    text: draft.text.clone(),
                    at: draft.at.clone(),
                };
                TopicEvent {
                    frame: client::message(&key, &view),
                    kind: EventKind::Message(view),
                }
            })
            .collect();
        self.publish(TopicEvents {
            topic: topic.clone(),
            events,
        });
        Box::pin(future::ready(Ok(after + 1)))
    }

    fn start_numbering(
        &self,
        _: &Topic,
        floor: u64,
    ) -> LocalBoxFuture<'static, Result<u64, BusError>> {
        Box::pin(future::ready(Ok(floor)))
    }

    fn last_seq(&self, _: &Topic) -> LocalBoxFuture<'static, Result<Option<u64>, BusError>> {
        Box::pin(future::ready(Ok(None)))
    }

    fn publish(&self, events: TopicEvents) {
        let room = self
            .rooms
            .lock()
            .ok()
            .and_then(|rooms| rooms.get(&events.topic).cloned());
        if let Some(room) = room {
            room.do_send(Delivery::Events(events));
        }
    }

    fn subscribe(&self, topic: &Topic, room: Recipient<Delivery>) -> LocalBoxFuture<'static, ()> {
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.insert(topic.clone(), room);
        }
        Box::pin(future::ready(()))
    }

    fn unsubscribe(&self, topic: &Topic, room: &Recipient<Delivery>) {
        if let Ok(mut rooms) = self.rooms.lock() {
            if rooms.get(topic) == Some(room) {
                rooms.remove(topic);
            }
        }
    }

    fn sync_members(&self, _: &Topic, _: Vec<MemberView>) {}

    fn members_elsewhere(&self, _: &Topic) -> LocalBoxFuture<'static, Vec<MemberView>> {
        Box::pin(future::ready(Vec::new()))
    }

    // Every socket is on this node, and the SessionHub told them.
    fn notify_accounts(&self, _: &AccountNotice) {}

    fn route_accounts(&self, _: Recipient<AccountNotice>) {}

    // Other services reach a single node over HTTP only.
    fn route_inbox(&self, _: Recipient<Inbound>) {}

    fn heartbeat(&self, info: NodeInfo) {
        if let Ok(mut own) = self.info.lock() {
            *own = Some(info);
        }
    }

    fn nodes(&self) -> LocalBoxFuture<'static, Result<Vec<NodeInfo>, BusError>> {
        let own = self.info.lock().ok().and_then(|i| i.clone());
        Box::pin(future::ready(Ok(own.into_iter().collect())))
    }
}
