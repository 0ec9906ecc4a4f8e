//! The Redis bus's subscription connection: one per node, subscribed to each
//! topic that has a room here and to the node-wide channels. It decodes each
//! payload once and hands the frames to the topic's room, which shares them
//! with its members.
//!
//! Pub/sub drops what is published while a subscriber is away, so after a
//! reconnect every room is told to catch up (`Delivery::Resync`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytestring::ByteString;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::redis::{keys, resync_rooms, Health, Link, Routes, RETRY_MAX, RETRY_MIN};
use super::wire::{self, Body};
use super::{
    AccountNotice, Control, Delivery, EventKind, Inbound, NodeId, TopicEvent, TopicEvents,
};
use crate::domain::topic::Topic;
use crate::lifecycle::Lifecycle;

/// How often the connection is checked when nothing arrives: a Redis that
/// vanished without closing the socket is noticed within this and
/// `PING_TIMEOUT`.
const PING_EVERY: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an external event's id is remembered, so that a publisher
/// that sends it again is not heard twice.
const INBOX_ID_TTL_SECS: u64 = 24 * 3600;
/// The longest id an external event may carry, in bytes: it becomes a key.
const INBOX_ID_MAX: usize = 200;

/// A change to what this node listens to.
pub enum Change {
    Subscribe {
        topic: Topic,
        /// Told once Redis confirms, or at once while it is unreachable
        /// (the room catches up when it is back).
        done: oneshot::Sender<()>,
    },
    Unsubscribe(Topic),
}

pub fn start(
    client: redis::Client,
    node: NodeId,
    routes: Arc<Mutex<Routes>>,
    health: Arc<Health>,
    link: Link,
    lifecycle: &Lifecycle,
) -> mpsc::UnboundedSender<Change> {
    let (tx, rx) = mpsc::unbounded_channel();
    lifecycle.spawn(listen(client, node, routes, health, link, rx));
    tx
}

async fn listen(
    client: redis::Client,
    node: NodeId,
    routes: Arc<Mutex<Routes>>,
    health: Arc<Health>,
    link: Link,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    let mut pause = RETRY_MIN;
    let mut connected_before = false;
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(err) => {
                if connected_before && pause == RETRY_MIN {
                    tracing::error!(error = %err, "the bus cannot subscribe; retrying");
                }
                // Subscriptions asked for meanwhile are made on connecting.
                if !wait_out(pause, &mut changes).await {
                    return;
                }
                pause = (pause * 2).min(RETRY_MAX);
                continue;
            }
        };
        pause = RETRY_MIN;
        let (mut sink, mut stream) = pubsub.split();
        let mut channels = vec![
            keys::ACCOUNTS.to_owned(),
            keys::INBOX.to_owned(),
            keys::CONTROL.to_owned(),
        ];
        let rooms: Vec<Topic> = routes
            .lock()
            .map(|r| r.rooms.keys().cloned().collect())
            .unwrap_or_default();
        channels.extend(rooms.iter().map(keys::channel));
        if let Err(err) = sink.subscribe(&channels).await {
            tracing::error!(error = %err, "the bus could not subscribe; retrying");
            continue;
        }
        health.events.store(true, Ordering::Relaxed);
        tracing::info!(topics = rooms.len(), "the bus is listening");
        // Whatever crossed nodes while this one was away is missed. The
        // resync goes over the command connection: if that is down too,
        // the writer resyncs once it is back.
        if connected_before && health.commands.load(Ordering::Relaxed) {
            resync_rooms(&routes);
        }
        connected_before = true;
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break };
                    route(&message, &node, &routes, &link);
                }
                change = changes.recv() => match change {
                    Some(Change::Subscribe { topic, done }) => {
                        if sink.subscribe(keys::channel(&topic)).await.is_err() {
                            break;
                        }
                        let _ = done.send(());
                    }
                    Some(Change::Unsubscribe(topic)) => {
                        // Another room may have taken the topic meanwhile.
                        let taken = routes.lock().map(|r| r.rooms.contains_key(&topic)).unwrap_or(false);
                        if !taken && sink.unsubscribe(keys::channel(&topic)).await.is_err() {
                            break;
                        }
                    }
                    None => return,
                },
                _ = ping.tick() => {
                    // Subscribed, Redis answers a PING with an array, not
                    // PONG: any answer will do.
                    let alive = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        // Rooms deliver their own events here until it is back.
        health.events.store(false, Ordering::Relaxed);
        tracing::error!("the bus lost its subscriptions; reconnecting");
        if !wait_out(RETRY_MIN, &mut changes).await {
            return;
        }
    }
}

/// Sleeps `pause`, answering subscription changes at once meanwhile.
/// Returns false once the bus is gone.
async fn wait_out(pause: Duration, changes: &mut mpsc::UnboundedReceiver<Change>) -> bool {
    let wait = tokio::time::sleep(pause);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            _ = &mut wait => return true,
            change = changes.recv() => match change {
                Some(Change::Subscribe { done, .. }) => { let _ = done.send(()); }
                Some(Change::Unsubscribe(_)) => {}
                None => return false,
            },
        }
    }
}

/// Hands one payload to whoever it is for on this node.
fn route(message: &redis::Msg, node: &NodeId, routes: &Mutex<Routes>, link: &Link) {
    let channel = message.get_channel_name();
    let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
        tracing::warn!(channel, "the bus dropped a payload that is not UTF-8");
        return;
    };
    if channel == keys::INBOX {
        inbound(payload, routes, link);
        return;
    }
    let decoded = match wire::decode(payload) {
        Ok(decoded) => decoded,
        Err(err) => {
            tracing::warn!(channel, error = %err, "the bus dropped a payload it cannot read");
            return;
        }
    };
    if channel == keys::CONTROL {
        // This node heard its own already.
        if decoded.node == node.as_str() {
            return;
        }
        let Body::Control(json) = decoded.body else {
            return;
        };
        match serde_json::from_str::<Control>(&json) {
            Ok(control) => {
                let routes: Vec<_> = routes.lock().map(|r| r.control.clone()).unwrap_or_default();
                for to in routes {
                    to.do_send(control.clone());
                }
            }
            // A newer node may send commands this one does not know.
            Err(err) => tracing::warn!(error = %err, "the bus ignored a control message"),
        }
        return;
    }
    if channel == keys::ACCOUNTS {
        // This node told its own sockets already.
        if decoded.node == node.as_str() {
            return;
        }
        let Body::Account(json) = decoded.body else {
            return;
        };
        match serde_json::from_str::<AccountNotice>(&json) {
            Ok(notice) => {
                if let Some(to) = routes.lock().ok().and_then(|r| r.accounts.clone()) {
                    to.do_send(notice);
                }
            }
            Err(err) => tracing::warn!(error = %err, "the bus dropped an account notice"),
        }
        return;
    }
    let Some(topic) = channel
        .strip_prefix(keys::TOPIC_PREFIX)
        .and_then(|t| Topic::parse(t).ok())
    else {
        return;
    };
    let Some(room) = routes
        .lock()
        .ok()
        .and_then(|r| r.rooms.get(&topic).cloned())
    else {
        return;
    };
    let empty = ByteString::new;
    let events = match decoded.body {
        Body::Messages(messages) => messages
            .into_iter()
            .map(|(view, frame)| TopicEvent {
                kind: EventKind::Message(view),
                frame,
            })
            .collect(),
        Body::Presence {
            joins,
            leaves,
            frame,
        } => vec![TopicEvent {
            kind: EventKind::Presence { joins, leaves },
            frame,
        }],
        Body::Typing(users) => vec![TopicEvent {
            kind: EventKind::Typing {
                node: decoded.node,
                users,
            },
            frame: empty(),
        }],
        Body::Lot(frame) => vec![TopicEvent {
            kind: EventKind::Lot,
            frame,
        }],
        Body::Signal { to, frame } => vec![TopicEvent {
            kind: EventKind::Signal { to },
            frame,
        }],
        Body::Account(_) | Body::Control(_) => return,
    };
    room.do_send(Delivery::Events(TopicEvents { topic, events }));
}

/// An event another service published into a room: every node hears it,
/// and the one that claims its id first posts it.
fn inbound(payload: &str, routes: &Mutex<Routes>, link: &Link) {
    let inbound = match serde_json::from_str::<Inbound>(payload) {
        Ok(inbound) => inbound,
        Err(err) => {
            tracing::warn!(error = %err, "the bus dropped an external event it cannot read");
            return;
        }
    };
    if inbound.id.is_empty() || inbound.id.len() > INBOX_ID_MAX {
        tracing::warn!(topic = %inbound.topic, "an external event without a usable id (1 to 200 bytes) was dropped");
        return;
    }
    let Some(to) = routes.lock().ok().and_then(|r| r.inbox.clone()) else {
        return;
    };
    let mut claim = redis::cmd("SET");
    claim
        .arg(keys::inbox_claim(&inbound.id))
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(INBOX_ID_TTL_SECS);
    let link = link.clone();
    actix::spawn(async move {
        match link.call(claim).await {
            Ok(redis::Value::Okay) => to.do_send(inbound),
            // Another node claimed it, or it was heard before.
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(id = %inbound.id, error = %err, "an external event could not be claimed; dropped")
            }
        }
    });
}
