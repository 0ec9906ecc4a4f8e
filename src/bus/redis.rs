//! The Redis bus, for cluster mode: every node's Rooms for a topic hear the
//! same events in the same order, through Redis pub/sub. Per node there is
//! one connection for commands (`Link`, written in order and pipelined)
//! and one for subscriptions (`subscriber`), shared by every room and
//! socket: one subscription per topic per node.
//!
//! Redis is a bus, not the truth. Chat messages are numbered by a script
//! that publishes them in the same step; the database holds them and the
//! seq mark, so a Redis that lost its data carries on above what the
//! database says may have been seen. While Redis is unreachable, events
//! other than messages reach this node's members only, and saying
//! something is refused, since nothing could number it for every node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{self, LocalBoxFuture};
use redis::Value;
use tokio::sync::{mpsc, oneshot};

use super::told::Told;
use super::{
    nodes, scripts, subscriber, wire, AccountNotice, Bus, BusError, BusState, Control, Delivery,
    Draft, EventKind, Hits, Inbound, NodeId, NodeInfo, TopicEvents,
};
use crate::domain::topic::Topic;
use crate::lifecycle::Lifecycle;
use crate::protocol::client::{self, MemberView};

/// How long a command waits for Redis before the bus counts as down.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection attempt waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Commands sent to Redis in one pipeline, at most: enough to carry a
/// burst in one round trip, few enough to keep a reply's wait short.
const PIPELINE_MAX: usize = 512;
/// The first pause before connecting again; it doubles up to `RETRY_MAX`.
pub(super) const RETRY_MIN: Duration = Duration::from_millis(100);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(2);

/// The names of Redis keys and channels, in one place.
pub(super) mod keys {
    use crate::domain::topic::Topic;

    pub fn channel(topic: &Topic) -> String {
        format!("bazaar:topic:{topic}")
    }
    pub fn seq(topic: &Topic) -> String {
        format!("bazaar:seq:{topic}")
    }
    pub fn members(topic: &Topic) -> String {
        format!("bazaar:members:{topic}")
    }
    pub fn node_topics(node: &str) -> String {
        format!("bazaar:node:{node}:topics")
    }
    pub fn node_info(node: &str) -> String {
        format!("bazaar:node:{node}")
    }
    pub fn reaping(node: &str) -> String {
        format!("bazaar:reaping:{node}")
    }
    pub fn inbox_claim(id: &str) -> String {
        format!("bazaar:inbox:{id}")
    }
    pub fn count(key: &str) -> String {
        format!("bazaar:count:{key}")
    }
    pub const NODES: &str = "bazaar:nodes";
    pub const ACCOUNTS: &str = "bazaar:accounts";
    pub const INBOX: &str = "bazaar:inbox";
    pub const CONTROL: &str = "bazaar:control";
    pub const TOPIC_PREFIX: &str = "bazaar:topic:";
}

/// Whether each connection is up: the bus is up when both are.
#[derive(Default)]
pub(super) struct Health {
    pub commands: AtomicBool,
    pub events: AtomicBool,
}

impl Health {
    pub fn up(&self) -> bool {
        self.commands.load(Ordering::Relaxed) && self.events.load(Ordering::Relaxed)
    }
}

/// The rooms subscribed on this node, and where the node-wide channels go.
#[derive(Default)]
pub(super) struct Routes {
    pub rooms: HashMap<Topic, actix::Recipient<Delivery>>,
    pub accounts: Option<actix::Recipient<AccountNotice>>,
    pub inbox: Option<actix::Recipient<Inbound>>,
    pub control: Vec<actix::Recipient<Control>>,
}

/// A command for the writer, with where its answer goes.
struct Request {
    cmd: redis::Cmd,
    reply: Option<oneshot::Sender<Result<Value, BusError>>>,
}

/// The command connection, as the rest of the bus sees it: commands are
/// sent in the order they are given, so a topic's presence, typing and
/// messages reach Redis, and so every node, in the order its room made them.
#[derive(Clone)]
pub(super) struct Link {
    tx: mpsc::UnboundedSender<Request>,
}

impl Link {
    /// Sends a command whose answer nobody waits for.
    pub fn send(&self, cmd: redis::Cmd) {
        let _ = self.tx.send(Request { cmd, reply: None });
    }

    /// Sends a command and reads its answer as a `T`.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, BusError> {
        redis::from_redis_value(self.call(cmd).await?).map_err(|e| BusError::Down(e.to_string()))
    }

    /// Sends a command and waits for its answer.
    pub async fn call(&self, cmd: redis::Cmd) -> Result<Value, BusError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                cmd,
                reply: Some(reply),
            })
            .map_err(|_| BusError::Down("the bus has stopped".into()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(BusError::Down("the bus has stopped".into())))
    }
}

pub struct RedisBus {
    node: NodeId,
    /// What this node told the others about its members.
    told: Arc<Mutex<Told>>,
    /// The node's first heartbeat went through: from then on, finding
    /// itself missing from the registry means the others counted it dead.
    registered: Arc<AtomicBool>,
    link: Link,
    routes: Arc<Mutex<Routes>>,
    subscriptions: mpsc::UnboundedSender<subscriber::Change>,
    health: Arc<Health>,
}

impl RedisBus {
    /// Starts the bus's two connections on the current runtime. They
    /// connect, and reconnect, on their own: a node starts while Redis is
    /// down, and its bus comes up when Redis does.
    pub fn start(url: &str, node: NodeId, lifecycle: &Lifecycle) -> Result<RedisBus, BusError> {
        let client = redis::Client::open(url)
            .map_err(|e| BusError::Down(format!("bad bus.redis_url: {e}")))?;
        let health = Arc::new(Health::default());
        let routes = Arc::new(Mutex::new(Routes::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        lifecycle.spawn(write_loop(
            client.clone(),
            rx,
            health.clone(),
            routes.clone(),
        ));
        let link = Link { tx };
        let subscriptions = subscriber::start(
            client,
            node.clone(),
            routes.clone(),
            health.clone(),
            link.clone(),
            lifecycle,
        );
        Ok(RedisBus {
            node,
            told: Arc::default(),
            registered: Arc::default(),
            link,
            routes,
            subscriptions,
            health,
        })
    }

    /// Delivers events to this node's room only: what happens to events
    /// other than messages while Redis is unreachable.
    fn deliver_here(&self, events: TopicEvents) {
        for event in &events.events {
            if let EventKind::Presence { joins, leaves } = &event.kind {
                if let Ok(mut told) = self.told.lock() {
                    told.record(&events.topic, joins, leaves, false);
                }
            }
        }
        let room = self
            .routes
            .lock()
            .ok()
            .and_then(|routes| routes.rooms.get(&events.topic).cloned());
        if let Some(room) = room {
            room.do_send(Delivery::Events(events));
        }
    }
}

impl Bus for RedisBus {
    fn node(&self) -> &NodeId {
        &self.node
    }

    fn state(&self) -> BusState {
        if self.health.up() {
            BusState::Up
        } else {
            BusState::Down
        }
    }

    fn publish_messages(
        &self,
        topic: &Topic,
        _: u64,
        ceiling: u64,
        drafts: &[Draft],
    ) -> LocalBoxFuture<'static, Result<u64, BusError>> {
        if !self.health.up() {
            return Box::pin(future::ready(Err(BusError::Down(
                "this node cannot reach the others".into(),
            ))));
        }
        let key = topic.to_string();
        let mut cmd = scripts::eval(scripts::NUMBER, &[keys::seq(topic), keys::channel(topic)]);
        cmd.arg(ceiling)
            .arg(wire::messages_header(self.node.as_str()))
            .arg(drafts.len());
        for draft in drafts {
            let (prefix, suffix) =
                wire::message_parts(&key, draft.id, &draft.user, &draft.text, &draft.at);
            cmd.arg(prefix).arg(suffix);
        }
        let link = self.link.clone();
        Box::pin(async move {
            match link.query::<(i64, i64)>(cmd).await? {
                (-1, _) => Err(BusError::Unnumbered),
                (-2, last) => Err(BusError::PastMark(u64::try_from(last).unwrap_or(0))),
                (first, _) => Ok(u64::try_from(first).unwrap_or(0)),
            }
        })
    }

    fn start_numbering(
        &self,
        topic: &Topic,
        floor: u64,
    ) -> LocalBoxFuture<'static, Result<u64, BusError>> {
        let mut cmd = scripts::eval(scripts::INIT, &[keys::seq(topic)]);
        cmd.arg(floor);
        let link = self.link.clone();
        Box::pin(async move { link.query(cmd).await })
    }

    fn last_seq(&self, topic: &Topic) -> LocalBoxFuture<'static, Result<Option<u64>, BusError>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(keys::seq(topic));
        let link = self.link.clone();
        Box::pin(async move { link.query(cmd).await })
    }

    fn publish(&self, events: TopicEvents) {
        if !self.health.up() {
            self.deliver_here(events);
            return;
        }
        let channel = keys::channel(&events.topic);
        let node = self.node.as_str();
        for event in &events.events {
            match &event.kind {
                EventKind::Presence { joins, leaves } => {
                    if let Ok(mut told) = self.told.lock() {
                        told.record(&events.topic, joins, leaves, true);
                    }
                    self.link.send(presence_cmd(
                        self.node.as_str(),
                        &events.topic,
                        joins,
                        leaves,
                        &event.frame,
                    ));
                }
                EventKind::Typing { users, .. } => {
                    let users: Vec<&str> = users.iter().map(String::as_str).collect();
                    self.link
                        .send(publish_cmd(&channel, wire::typing(node, &users)));
                }
                EventKind::Lot => {
                    self.link
                        .send(publish_cmd(&channel, wire::lot(node, &event.frame)));
                }
                EventKind::Signal { to } => {
                    self.link
                        .send(publish_cmd(&channel, wire::signal(node, to, &event.frame)));
                }
                // Messages are numbered as they are published
                // (`publish_messages`); a room never sends them here.
                EventKind::Message(_) => {
                    tracing::error!(topic = %events.topic, "an unnumbered message was not published");
                }
            }
        }
    }

    fn subscribe(
        &self,
        topic: &Topic,
        room: actix::Recipient<Delivery>,
    ) -> LocalBoxFuture<'static, ()> {
        if let Ok(mut routes) = self.routes.lock() {
            routes.rooms.insert(topic.clone(), room);
        }
        let (done, subscribed) = oneshot::channel();
        let _ = self.subscriptions.send(subscriber::Change::Subscribe {
            topic: topic.clone(),
            done,
        });
        Box::pin(async move {
            let _ = subscribed.await;
        })
    }

    fn unsubscribe(&self, topic: &Topic, room: &actix::Recipient<Delivery>) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        if routes.rooms.get(topic) != Some(room) {
            return;
        }
        routes.rooms.remove(topic);
        drop(routes);
        let _ = self
            .subscriptions
            .send(subscriber::Change::Unsubscribe(topic.clone()));
    }

    fn sync_members(&self, topic: &Topic, members: Vec<MemberView>) {
        let link = self.link.clone();
        let node = self.node.clone();
        let topic = topic.clone();
        let told = self.told.clone();
        actix::spawn(async move {
            // On failure the bus went away again; the next resync tries again.
            let Ok(listed) = listed_members(&link, &topic).await else {
                return;
            };
            let mut gone: HashMap<String, String> = told
                .lock()
                .map(|t| t.gone(&topic, &members))
                .unwrap_or_default()
                .into_iter()
                .map(|m| (m.conn, m.user))
                .collect();
            for (owner, member) in listed {
                if owner == node.as_str() && !members.iter().any(|m| m.conn == member.conn) {
                    gone.entry(member.conn).or_insert(member.user);
                }
            }
            let gone: Vec<MemberView> = gone
                .into_iter()
                .map(|(conn, user)| MemberView { conn, user })
                .collect();
            let frame = client::presence(&topic.to_string(), &members, &gone);
            let cmd = presence_cmd(node.as_str(), &topic, &members, &gone, &frame);
            if link.call(cmd).await.is_ok() {
                if let Ok(mut told) = told.lock() {
                    told.synced(&topic, &members);
                }
            }
        });
    }

    fn members_elsewhere(
        &self,
        topic: &Topic,
    ) -> LocalBoxFuture<'static, Result<Vec<MemberView>, BusError>> {
        if !self.health.up() {
            let down = BusError::Down("the bus is away".to_owned());
            return Box::pin(future::ready(Err(down)));
        }
        let link = self.link.clone();
        let node = self.node.clone();
        let topic = topic.clone();
        Box::pin(async move {
            Ok(listed_members(&link, &topic)
                .await?
                .into_iter()
                .filter(|(owner, _)| owner != node.as_str())
                .map(|(_, member)| member)
                .collect())
        })
    }

    fn notify_accounts(&self, notice: &AccountNotice) {
        let Ok(json) = serde_json::to_string(notice) else {
            return;
        };
        self.link.send(publish_cmd(
            keys::ACCOUNTS,
            wire::account(self.node.as_str(), &json),
        ));
    }

    fn route_accounts(&self, to: actix::Recipient<AccountNotice>) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.accounts = Some(to);
        }
    }

    fn route_inbox(&self, to: actix::Recipient<Inbound>) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.inbox = Some(to);
        }
    }

    fn control(&self, control: Control) {
        // This node hears it now, even with the bus away; the others hear it
        // through Redis (the subscriber skips this node's own).
        if let Ok(routes) = self.routes.lock() {
            for to in &routes.control {
                to.do_send(control.clone());
            }
        }
        let Ok(json) = serde_json::to_string(&control) else {
            return;
        };
        self.link.send(publish_cmd(
            keys::CONTROL,
            wire::control(self.node.as_str(), &json),
        ));
    }

    fn route_control(&self, to: actix::Recipient<Control>) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.control.push(to);
        }
    }

    fn heartbeat(&self, info: NodeInfo) {
        // Leaves told while the bus was away, in topics whose room has
        // closed since: no room will resync them, so the bus does.
        if self.health.up() {
            let orphans: Vec<Topic> = match (self.told.lock(), self.routes.lock()) {
                (Ok(mut told), Ok(routes)) => {
                    told.prune();
                    told.unsent()
                        .into_iter()
                        .filter(|topic| !routes.rooms.contains_key(topic))
                        .collect()
                }
                _ => Vec::new(),
            };
            for topic in orphans {
                self.sync_members(&topic, Vec::new());
            }
        }
        let link = self.link.clone();
        let health = self.health.clone();
        let routes = self.routes.clone();
        let registered = self.registered.clone();
        actix::spawn(async move {
            match nodes::beat(&link, &info).await {
                Ok(beat) => {
                    let known = registered.swap(true, Ordering::Relaxed);
                    if beat.returned && known {
                        // The others counted this node dead and took its
                        // members out: every room says who is here again.
                        tracing::warn!("this node was counted dead by the others; its rooms announce their members again");
                        resync_rooms(&routes);
                    }
                    for dead in beat.dead.iter().filter(|d| **d != info.id) {
                        if let Err(err) = nodes::reap(&link, &info.id, dead).await {
                            tracing::warn!(node = %dead, error = %err, "could not clean up after a stopped node");
                        }
                    }
                }
                Err(err) => {
                    if health.up() {
                        tracing::warn!(error = %err, "the node's heartbeat failed");
                    }
                }
            }
        });
    }

    fn nodes(&self) -> LocalBoxFuture<'static, Result<Vec<NodeInfo>, BusError>> {
        let link = self.link.clone();
        Box::pin(async move { nodes::list(&link).await })
    }

    fn count_hit(
        &self,
        key: &str,
        window: Duration,
    ) -> LocalBoxFuture<'static, Result<Hits, BusError>> {
        let mut cmd = scripts::eval(scripts::COUNT, &[keys::count(key)]);
        cmd.arg(window.as_millis().max(1) as u64);
        Box::pin(hits(self.link.clone(), cmd))
    }

    fn read_hits(&self, key: &str, _: Duration) -> LocalBoxFuture<'static, Result<Hits, BusError>> {
        let cmd = scripts::eval(scripts::READ_COUNT, &[keys::count(key)]);
        Box::pin(hits(self.link.clone(), cmd))
    }

    fn forget_hits(&self, key: &str) -> LocalBoxFuture<'static, Result<(), BusError>> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(keys::count(key));
        let link = self.link.clone();
        Box::pin(async move {
            let _: u64 = link.query(cmd).await?;
            Ok(())
        })
    }
}

/// Runs a script that answers a count and the milliseconds left in its
/// window (`scripts::COUNT`, `scripts::READ_COUNT`).
async fn hits(link: Link, cmd: redis::Cmd) -> Result<Hits, BusError> {
    let (count, left): (u64, u64) = link.query(cmd).await?;
    Ok(Hits {
        count,
        resets_in: Duration::from_millis(left),
    })
}

/// Tells every room on this node to catch up and announce its members.
pub(super) fn resync_rooms(routes: &Mutex<Routes>) {
    let rooms: Vec<_> = routes
        .lock()
        .map(|r| r.rooms.values().cloned().collect())
        .unwrap_or_default();
    for room in rooms {
        room.do_send(Delivery::Resync);
    }
}

/// Records a diff of `node`'s members in the topic's member hash and
/// publishes it, in one step.
pub(super) fn presence_cmd(
    node: &str,
    topic: &Topic,
    joins: &[MemberView],
    leaves: &[MemberView],
    frame: &str,
) -> redis::Cmd {
    let mut cmd = scripts::eval(
        scripts::PRESENCE,
        &[
            keys::members(topic),
            keys::channel(topic),
            keys::node_topics(node),
        ],
    );
    cmd.arg(node)
        .arg(topic.to_string())
        .arg(wire::presence(node, frame))
        .arg(leaves.len());
    for leave in leaves {
        cmd.arg(&leave.conn);
    }
    for join in joins {
        cmd.arg(&join.conn).arg(&join.user);
    }
    cmd
}

/// A topic's members on every node, as the member hash lists them: each
/// with the node it is on.
pub(super) async fn listed_members(
    link: &Link,
    topic: &Topic,
) -> Result<Vec<(String, MemberView)>, BusError> {
    let mut cmd = redis::cmd("HGETALL");
    cmd.arg(keys::members(topic));
    let listed: HashMap<String, String> = link.query(cmd).await?;
    Ok(listed
        .into_iter()
        .filter_map(|(conn, value)| {
            let (node, user) = value.split_once('\t')?;
            let member = MemberView {
                conn,
                user: user.to_owned(),
            };
            Some((node.to_owned(), member))
        })
        .collect())
}

fn publish_cmd(channel: &str, payload: String) -> redis::Cmd {
    let mut cmd = redis::cmd("PUBLISH");
    cmd.arg(channel).arg(payload);
    cmd
}

/// Connects with growing pauses until it succeeds; meanwhile every command
/// given is answered at once with the bus being down, so nobody waits on a
/// Redis that is not there.
async fn connect(
    client: &redis::Client,
    rx: &mut mpsc::UnboundedReceiver<Request>,
    health: &Health,
) -> Option<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut pause = RETRY_MIN;
    loop {
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => return Some(conn),
            Err(err) => {
                if health.commands.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %err, "the bus lost Redis; retrying");
                }
            }
        }
        let wait = tokio::time::sleep(pause);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                request = rx.recv() => match request {
                    Some(request) => refuse(request),
                    None => return None,
                },
            }
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}

fn refuse(request: Request) {
    if let Some(reply) = request.reply {
        let _ = reply.send(Err(BusError::Down("Redis is unreachable".into())));
    }
}

/// Sends commands in the order given, as many at once as are waiting, one
/// pipeline (one round trip) at a time.
async fn write_loop(
    client: redis::Client,
    mut rx: mpsc::UnboundedReceiver<Request>,
    health: Arc<Health>,
    routes: Arc<Mutex<Routes>>,
) {
    let mut connected_before = false;
    while let Some(mut conn) = connect(&client, &mut rx, &health).await {
        if !health.commands.swap(true, Ordering::Relaxed) {
            tracing::info!("the bus reached Redis");
        }
        // Commands sent while this connection was dead (a resync's among
        // them) were lost: once both connections are up, rooms resync.
        if connected_before && health.up() {
            resync_rooms(&routes);
        }
        connected_before = true;
        loop {
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < PIPELINE_MAX {
                match rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for request in &batch {
                pipe.add_command(request.cmd.clone());
            }
            match pipe.query_async::<Vec<Value>>(&mut conn).await {
                Ok(values) => {
                    for (request, value) in batch.into_iter().zip(values) {
                        if let Some(reply) = request.reply {
                            let answer = match value {
                                Value::ServerError(err) => Err(BusError::Down(format!("{err:?}"))),
                                value => Ok(value),
                            };
                            let _ = reply.send(answer);
                        }
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "the bus lost Redis; reconnecting");
                    health.commands.store(false, Ordering::Relaxed);
                    batch.into_iter().for_each(refuse);
                    break;
                }
            }
        }
    }
}
