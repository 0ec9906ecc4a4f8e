//! The in-process bus: one node, whose room is the only writer of its topic
//! and numbers its own messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Recipient;
use futures_util::future::{self, LocalBoxFuture};

use super::{
    AccountNotice, Bus, BusError, BusState, Control, Delivery, Draft, EventKind, Hits, Inbound,
    NodeId, NodeInfo, TopicEvent, TopicEvents,
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
    control: Arc<Mutex<Vec<Recipient<Control>>>>,
    /// `count_hit`'s windows: each key's uses and when its window began.
    counts: Arc<Mutex<HashMap<String, (u64, Instant)>>>,
}

/// Counted keys kept before those whose window ended are swept out.
const SWEEP_AT: usize = 10_000;

impl LocalBus {
    pub fn new(node: NodeId) -> LocalBus {
        LocalBus {
            node,
            rooms: Arc::default(),
            info: Arc::default(),
            control: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// The counts, even after a panic while the lock was held: that leaves
    /// them usable (one key off by one at worst), where answering "first
    /// use" instead would lift every limit counted here for good.
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `count_hit` at `now`.
    fn count_at(&self, key: &str, window: Duration, now: Instant) -> Hits {
        let mut counts = self.counts();
        if counts.len() >= SWEEP_AT {
            counts.retain(|_, (_, since)| now.duration_since(*since) < window);
        }
        let entry = counts.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= window {
            *entry = (0, now);
        }
        entry.0 += 1;
        Hits {
            count: entry.0,
            resets_in: window.saturating_sub(now.duration_since(entry.1)),
        }
    }

    /// `read_hits` at `now`.
    fn read_at(&self, key: &str, window: Duration, now: Instant) -> Hits {
        match self.counts().get(key) {
            Some(&(count, since)) if now.duration_since(since) < window => Hits {
                count,
                resets_in: window.saturating_sub(now.duration_since(since)),
            },
            _ => Hits {
                count: 0,
                resets_in: Duration::ZERO,
            },
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

    fn members_elsewhere(
        &self,
        _: &Topic,
    ) -> LocalBoxFuture<'static, Result<Vec<MemberView>, BusError>> {
        Box::pin(future::ready(Ok(Vec::new())))
    }

    // Every socket is on this node, and the SessionHub told them.
    fn notify_accounts(&self, _: &AccountNotice) {}

    fn route_accounts(&self, _: Recipient<AccountNotice>) {}

    // Other services reach a single node over HTTP only.
    fn route_inbox(&self, _: Recipient<Inbound>) {}

    fn control(&self, control: Control) {
        if let Ok(routes) = self.control.lock() {
            for to in routes.iter() {
                to.do_send(control.clone());
            }
        }
    }

    fn route_control(&self, to: Recipient<Control>) {
        if let Ok(mut routes) = self.control.lock() {
            routes.push(to);
        }
    }

    fn heartbeat(&self, info: NodeInfo) {
        if let Ok(mut own) = self.info.lock() {
            *own = Some(info);
        }
    }

    fn nodes(&self) -> LocalBoxFuture<'static, Result<Vec<NodeInfo>, BusError>> {
        let own = self.info.lock().ok().and_then(|i| i.clone());
        Box::pin(future::ready(Ok(own.into_iter().collect())))
    }

    fn count_hit(
        &self,
        key: &str,
        window: Duration,
    ) -> LocalBoxFuture<'static, Result<Hits, BusError>> {
        let hits = self.count_at(key, window, Instant::now());
        Box::pin(future::ready(Ok(hits)))
    }

    fn read_hits(
        &self,
        key: &str,
        window: Duration,
    ) -> LocalBoxFuture<'static, Result<Hits, BusError>> {
        let hits = self.read_at(key, window, Instant::now());
        Box::pin(future::ready(Ok(hits)))
    }

    fn forget_hits(&self, key: &str) -> LocalBoxFuture<'static, Result<(), BusError>> {
        self.counts().remove(key);
        Box::pin(future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_are_counted_per_key_until_the_window_ends() {
        let bus = LocalBus::new(NodeId::generate());
        let window = Duration::from_secs(60);
        let now = Instant::now();
        assert_eq!(bus.count_at("a", window, now).count, 1);
        let second = bus.count_at("a", window, now + Duration::from_secs(10));
        assert_eq!(
            second,
            Hits {
                count: 2,
                resets_in: Duration::from_secs(50)
            }
        );
        assert_eq!(bus.count_at("b", window, now).count, 1);
        assert_eq!(
            bus.count_at("a", window, now + window).count,
            1,
            "a new window"
        );
    }

    #[test]
    fn reading_counts_nothing_and_forgetting_starts_the_key_again() {
        let bus = LocalBus::new(NodeId::generate());
        let window = Duration::from_secs(60);
        let now = Instant::now();
        let never = bus.read_at("a", window, now);
        assert_eq!(never.count, 0);
        bus.count_at("a", window, now);
        bus.count_at("a", window, now);
        let later = now + Duration::from_secs(15);
        let read = Hits {
            count: 2,
            resets_in: Duration::from_secs(45),
        };
        assert_eq!(bus.read_at("a", window, later), read);
        assert_eq!(
            bus.read_at("a", window, later),
            read,
            "reading counts nothing"
        );
        assert_eq!(bus.read_at("a", window, now + window).count, 0, "ended");
        drop(bus.forget_hits("a"));
        assert_eq!(bus.read_at("a", window, later).count, 0);
        assert_eq!(bus.count_at("a", window, later).count, 1);
    }

    #[test]
    fn a_poisoned_lock_goes_on_counting() {
        // Arrange: "a" was used once; then a thread panics holding the lock.
        let bus = LocalBus::new(NodeId::generate());
        let window = Duration::from_secs(60);
        let now = Instant::now();
        bus.count_at("a", window, now);
        let counts = bus.counts.clone();
        let panicked = std::thread::spawn(move || {
            let _counts = counts.lock();
            panic!("a panic while counting");
        })
        .join();
        assert!(panicked.is_err() && bus.counts.is_poisoned());

        // Act
        let second = bus.count_at("a", window, now);

        // Assert
        assert_eq!(second.count, 2);
    }
}
