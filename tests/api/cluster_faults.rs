//! Faults in a cluster: a node killed in the middle of a conversation, and
//! Redis killed and started again. What members see through them: every
//! message a sender was told was stored, in seq order and once, and member
//! lists that catch up with who is still there.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;

use crate::chat_client::{ChatClient, Ended, MemberList};
use crate::cluster_helpers::{health, node_of, running, ws, Cluster, ClusterOptions};

/// The room every member of these tests is in.
const TOPIC: &str = "chat:floor";
/// How long a request waits for its reply, at most.
const REPLY_WAIT: Duration = Duration::from_secs(30);
/// How often a sender says something: 10 a second, well within a
/// socket's rate (20 a second, docs/protocol.md §5).
const SAY_EVERY: Duration = Duration::from_millis(100);

/// Asks a node's `/healthz` until it answers `status` with `"bus":bus`;
/// returns how long that took.
async fn wait_for_health(url: &str, status: u16, bus: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (got, body) = health(url).await;
        if got == status && body["bus"] == bus {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{url}/healthz still answers {got} {body} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A member of the room as its client keeps it: the messages it shows, in
/// the order it got them, and the member list, from a join reply and the
/// diffs after it.
struct Member {
    name: String,
    client: ChatClient,
    conn: String,
    /// Every message shown: `(seq, text)`, history first, then events.
    seen: Vec<(u64, String)>,
    list: MemberList,
    /// Who the last `typing` event said is typing.
    typing: Vec<String>,
    /// What it said that was answered ok.
    acked: Vec<String>,
    /// Replies to what it said that were not ok.
    refused: Vec<Value>,
    /// How many times its socket ended and it came back.
    reconnects: usize,
    next_ref: u64,
}

impl Member {
    /// Connects at `base` and joins the room (resuming after `since`).
    async fn join(base: &str, name: &str, since: Option<u64>) -> Member {
        let mut member = Member {
            name: name.to_owned(),
            client: connect(base, name).await,
            conn: String::new(),
            seen: Vec::new(),
            list: MemberList::default(),
            typing: Vec::new(),
            acked: Vec::new(),
            refused: Vec::new(),
            reconnects: 0,
            next_ref: 1,
        };
        member
            .enter(since)
            .await
            .unwrap_or_else(|e| panic!("{name} could not join: {e:?}"));
        member
    }

    /// Its socket ended: it connects again through `base` and resumes
    /// after the last seq it has, as docs/protocol.md §1 tells clients to.
    async fn come_back(&mut self, base: &str) {
        self.client = connect(base, &self.name).await;
        self.reconnects += 1;
        let since = self.last_seq().unwrap_or(0);
        let name = self.name.clone();
        self.enter(Some(since))
            .await
            .unwrap_or_else(|e| panic!("{name} could not join again: {e:?}"));
    }

    /// Joins; what came before the reply is taken in after it.
    async fn enter(&mut self, since: Option<u64>) -> Result<(), Ended> {
        let mut join = json!({"op":"join","topic":TOPIC});
        if let Some(since) = since {
            join["since"] = json!(since);
        }
        let reply = self.call(join).await?;
        assert_eq!(reply["status"], "ok", "{} join: {reply}", self.name);
        let body = &reply["body"];
        self.conn = body["conn"].as_str().expect("conn").to_owned();
        self.list = MemberList::of(body);
        for message in body["history"].as_array().expect("history") {
            self.seen.push(message_of(message));
        }
        self.take_events();
        Ok(())
    }

    /// Says `text`; the reply is kept as acknowledged or refused.
    async fn say(&mut self, text: String) -> Result<(), Ended> {
        let reply = self
            .call(json!({"op":"say","topic":TOPIC,"text":text}))
            .await?;
        self.take_events();
        if reply["status"] == "ok" {
            self.acked.push(text);
        } else {
            self.refused.push(reply);
        }
        Ok(())
    }

    /// Sends a request with a fresh `ref` and returns its reply; what comes
    /// meanwhile waits in `client.events`.
    async fn call(&mut self, mut request: Value) -> Result<Value, Ended> {
        let reference = format!("r{}", self.next_ref);
        self.next_ref += 1;
        request["ref"] = json!(reference);
        self.client.try_send(request).await?;
        loop {
            let frame = self.client.next_frame(REPLY_WAIT).await?;
            if frame["op"] == "reply" && frame["ref"] == reference.as_str() {
                return Ok(frame);
            }
            self.client.events.push_back(frame);
        }
    }

    fn take_events(&mut self) {
        while let Some(frame) = self.client.events.pop_front() {
            self.take(&frame);
        }
    }

    fn take(&mut self, frame: &Value) {
        if frame["topic"] != TOPIC {
            return;
        }
        match frame["op"].as_str() {
            Some("message") => self.seen.push(message_of(frame)),
            Some("presence") => self.list.apply(frame),
            Some("typing") => {
                self.typing = serde_json::from_value(frame["users"].clone()).expect("users")
            }
            _ => {}
        }
    }

    /// Takes in the next frame if one comes `within`; says whether one did.
    async fn pump(&mut self, within: Duration) -> Result<bool, Ended> {
        let next = self.client.next_frame(Duration::from_secs(3600));
        match tokio::time::timeout(within, next).await {
            Err(_) => Ok(false),
            Ok(frame) => {
                self.take(&frame?);
                Ok(true)
            }
        }
    }

    /// Takes in frames until `done` holds; panics at `deadline`.
    async fn wait_until(&mut self, deadline: Instant, what: &str, done: impl Fn(&Member) -> bool) {
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} ({}) gave up waiting for {what}: {} messages, members {:?}",
                self.name,
                self.conn,
                self.seen.len(),
                self.list.0
            );
            if let Err(ended) = self.pump(left).await {
                panic!("{}'s socket ended waiting for {what}: {ended:?}", self.name);
            }
        }
    }

    fn last_seq(&self) -> Option<u64> {
        self.seen.iter().map(|(seq, _)| *seq).max()
    }

    fn shows(&self, texts: &[String]) -> bool {
        let shown: HashSet<&str> = self.seen.iter().map(|(_, t)| t.as_str()).collect();
        texts.iter().all(|t| shown.contains(t.as_str()))
    }

    /// Panics unless the seqs it was shown only go up, and no text came
    /// twice: every message once, in order.
    fn assert_once_in_order(&self) {
        for pair in self.seen.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{} was shown seq {} ({:?}) then seq {} ({:?})",
                self.name,
                pair[0].0,
                pair[0].1,
                pair[1].0,
                pair[1].1
            );
        }
        let texts: HashSet<&str> = self.seen.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts.len(),
            self.seen.len(),
            "{} was shown a text twice",
            self.name
        );
    }
}

async fn connect(base: &str, name: &str) -> ChatClient {
    ChatClient::connect_to(base, name)
        .await
        .unwrap_or_else(|e| panic!("{name} could not connect to {base}: {e:?}"))
}

fn message_of(frame: &Value) -> (u64, String) {
    (
        frame["seq"].as_u64().expect("a seq"),
        frame["text"].as_str().expect("a text").to_owned(),
    )
}

/// How far a conversation has got, shared by the members' tasks.
#[derive(Default)]
struct Talk {
    /// Acknowledged messages, per sender.
    acked: RefCell<Vec<usize>>,
    stop: Cell<bool>,
    /// Told whenever a sender's message is acknowledged.
    progress: Notify,
}

impl Talk {
    /// Waits until the counts of acknowledged messages pass `done`.
    async fn reaches(&self, within: Duration, what: &str, done: impl Fn(&[usize]) -> bool) {
        let deadline = Instant::now() + within;
        while !done(&self.acked.borrow()) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} after {within:?}: acknowledged per sender {:?}",
                self.acked.borrow()
            );
            let _ = tokio::time::timeout(left, self.progress.notified()).await;
        }
    }
}

/// A sender: says something every `SAY_EVERY` until the talk stops,
/// coming back through `base` whenever its socket ends.
async fn speak(mut member: Member, me: usize, base: String, talk: Rc<Talk>) -> Member {
    let mut pace = tokio::time::interval(SAY_EVERY);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut n = 0;
    while !talk.stop.get() {
        pace.tick().await;
        n += 1;
        let text = format!("{} says {n}", member.name);
        match member.say(text).await {
            Ok(()) => {
                talk.acked.borrow_mut()[me] = member.acked.len();
                talk.progress.notify_one();
            }
            Err(_) => member.come_back(&base).await,
        }
    }
    member
}

/// A listener: reads until the talk stops, coming back through `base`
/// whenever its socket ends.
async fn listen(mut member: Member, base: String, talk: Rc<Talk>) -> Member {
    while !talk.stop.get() {
        if member.pump(Duration::from_millis(100)).await.is_err() {
            member.come_back(&base).await;
        }
    }
    member
}

#[actix_web::test]
async fn a_node_killed_mid_conversation_loses_nothing_and_its_members_leave_presence() {
    // Arrange: members spread over three nodes by nginx, two or more on
    // each; the first on each node talks, the others listen.
    let cluster = Cluster::start(3);
    let mut nodes = Vec::new();
    for url in cluster.node_urls() {
        let (_, body) = health(&url).await;
        nodes.push(body["node"].as_str().expect("a node id").to_owned());
    }
    let via = ws(cluster.url());
    let mut members: Vec<Member> = Vec::new();
    let on = |members: &[Member], node: &str| {
        members.iter().filter(|m| node_of(&m.conn) == node).count()
    };
    while members.len() < 12 && nodes.iter().any(|n| on(&members, n) < 2) {
        let name = format!("m{}", members.len());
        members.push(Member::join(&via, &name, None).await);
    }
    for node in &nodes {
        assert!(
            on(&members, node) >= 2,
            "nginx spread the members over {nodes:?}: {:?}",
            members.iter().map(|m| &m.conn).collect::<Vec<_>>()
        );
    }
    let victim = 1;
    let victim_conns: Vec<(String, String)> = members
        .iter()
        .filter(|m| node_of(&m.conn) == nodes[victim])
        .map(|m| (m.conn.clone(), m.name.clone()))
        .collect();
    let senders: Vec<usize> = nodes
        .iter()
        .map(|n| {
            members
                .iter()
                .position(|m| node_of(&m.conn) == *n)
                .expect("a member on each node")
        })
        .collect();
    let talk = Rc::new(Talk {
        acked: RefCell::new(vec![0; senders.len()]),
        ..Talk::default()
    });
    let mut tasks = Vec::new();
    for (i, member) in members.into_iter().enumerate() {
        let (base, talk) = (via.clone(), talk.clone());
        tasks.push(match senders.iter().position(|&s| s == i) {
            Some(me) => actix_web::rt::spawn(speak(member, me, base, talk)),
            None => actix_web::rt::spawn(listen(member, base, talk)),
        });
    }

    // Act: with the talk going on, node 2 is killed; its members come back
    // through nginx, and the talk goes on from every sender.
    talk.reaches(Duration::from_secs(30), "talk", |acked| {
        acked.iter().all(|&n| n >= 10)
    })
    .await;
    let before_kill = talk.acked.borrow().clone();
    cluster.kill_node(victim);
    let killed_at = Instant::now();
    talk.reaches(Duration::from_secs(30), "talk after the kill", |acked| {
        acked.iter().zip(&before_kill).all(|(n, b)| *n >= b + 20)
    })
    .await;
    talk.stop.set(true);
    let mut members = Vec::new();
    for task in tasks {
        members.push(task.await.expect("a member's task ended"));
    }

    // Assert: only the killed node's members had to come back, and no
    // sender was refused.
    for member in &members {
        let was_there = victim_conns.iter().any(|(_, name)| *name == member.name);
        assert_eq!(
            member.reconnects,
            usize::from(was_there),
            "{} came back {} times",
            member.name,
            member.reconnects
        );
        assert!(
            member.refused.is_empty(),
            "{}: {:?}",
            member.name,
            member.refused
        );
        assert_ne!(
            node_of(&member.conn),
            nodes[victim],
            "{} is back",
            member.name
        );
    }
    let acked: Vec<String> = members.iter().flat_map(|m| m.acked.clone()).collect();

    // Every member ends up shown every acknowledged message, once, in seq
    // order.
    let deadline = Instant::now() + Duration::from_secs(30);
    for member in &mut members {
        member
            .wait_until(deadline, "every acknowledged message", |m| m.shows(&acked))
            .await;
        member.assert_once_in_order();
    }

    // Every member, on the surviving nodes or back on one, sees the killed
    // node's connections leave, and lists exactly who is there.
    let here: BTreeMap<String, String> = members
        .iter()
        .map(|m| (m.conn.clone(), m.name.clone()))
        .collect();
    let deadline = killed_at + Duration::from_secs(30);
    for member in &mut members {
        member
            .wait_until(deadline, "the killed node's members to leave", |m| {
                m.list.0 == here
            })
            .await;
        for (conn, name) in &victim_conns {
            assert!(member.list.user(conn).is_none(), "{name} ({conn}) stayed");
        }
    }

    // And a newcomer resuming from the start is shown every acknowledged
    // message, from the database or a node's memory.
    let newcomer = Member::join(&via, "newcomer", Some(0)).await;
    assert!(
        newcomer.shows(&acked),
        "the newcomer misses some of {} acknowledged messages",
        acked.len()
    );
    newcomer.assert_once_in_order();
}

#[actix_web::test]
async fn redis_killed_and_restarted_no_node_exits_and_nothing_crossing_nodes_is_lost() {
    // Arrange: two members on each node, connected to it directly so that
    // the test knows where each is, and a message from each node.
    let cluster = Cluster::start(3);
    let urls = cluster.node_urls();
    let mut members = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        for name in [format!("a{i}"), format!("b{i}")] {
            members.push(Member::join(&ws(url), &name, None).await);
        }
    }
    for i in 0..urls.len() {
        members[2 * i]
            .say(format!("before, from node {i}"))
            .await
            .expect("say");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for member in &mut members {
        member
            .wait_until(deadline, "the first messages", |m| m.seen.len() == 3)
            .await;
    }
    // b2 goes away, to come back after the outage; the others see it go.
    let away = members.pop().expect("b2");
    let since = away.last_seq().expect("b2 was shown the messages");
    let gone = away.conn.clone();
    away.client.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for member in &mut members {
        member
            .wait_until(deadline, "b2 to leave", |m| m.list.user(&gone).is_none())
            .await;
    }

    // Act: Redis dies.
    cluster.kill_redis();

    // Assert: every node lives on and says its bus is down; saying is
    // refused, since nothing can number a message for every node; a
    // member still hears another on its own node.
    for url in &urls {
        wait_for_health(url, 503, "down", Duration::from_secs(10)).await;
    }
    for i in 0..urls.len() {
        assert!(running(cluster.node_pid(i)), "node {i} exited");
        let reply = members[2 * i]
            .call(json!({"op":"say","topic":TOPIC,"text":"during the outage"}))
            .await
            .expect("a reply");
        assert_eq!(reply["status"], "error", "{reply}");
        assert_eq!(reply["body"]["code"], "unavailable", "{reply}");
        members[2 * i].take_events();
    }
    members[1]
        .client
        .try_send(json!({"op":"typing","topic":TOPIC}))
        .await
        .expect("b0 types");
    members[0]
        .wait_until(Instant::now() + Duration::from_secs(10), "b0 typing", |m| {
            m.typing == ["b0"]
        })
        .await;

    // Act: Redis comes back, empty (it keeps nothing).
    cluster.start_redis();

    // Assert: every node reaches it again.
    for url in &urls {
        wait_for_health(url, 200, "up", Duration::from_secs(10)).await;
    }

    // Act: a member on each node talks, in turns.
    let mut after = Vec::new();
    for n in 0..3 {
        for i in 0..urls.len() {
            let text = format!("after, from node {i}: {n}");
            members[2 * i].say(text.clone()).await.expect("say");
            after.push(text);
        }
    }

    // Assert: every node lives; every member is shown every message said
    // after the outage and none refused during it, in one order, gap-free
    // from the first after the restart (Redis lost its counter, so the
    // seqs carry on above the database's mark).
    for i in 0..urls.len() {
        assert!(running(cluster.node_pid(i)), "node {i} exited");
    }
    for member in &members {
        assert!(
            member.refused.is_empty(),
            "{}: {:?}",
            member.name,
            member.refused
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut orders = Vec::new();
    for member in &mut members {
        member
            .wait_until(deadline, "the messages after the outage", |m| {
                m.shows(&after)
            })
            .await;
        member.assert_once_in_order();
        assert!(
            !member.seen.iter().any(|(_, t)| t == "during the outage"),
            "{} was shown a refused message",
            member.name
        );
        orders.push(member.seen[3..].to_vec());
    }
    for (member, order) in members.iter().zip(&orders) {
        assert_eq!(order, &orders[0], "{} was shown another order", member.name);
    }
    let seqs: Vec<u64> = orders[0].iter().map(|(seq, _)| *seq).collect();
    assert!(seqs[0] > since, "{seqs:?} after {since}");
    assert_eq!(
        seqs,
        (seqs[0]..seqs[0] + 9).collect::<Vec<u64>>(),
        "gap-free after the restart"
    );

    // b2 comes back through nginx, resumes after the last seq it had, and
    // is shown exactly what was said after the outage.
    let back = Member::join(&ws(cluster.url()), "b2", Some(since)).await;
    assert_eq!(back.seen, orders[0]);

    // Every member lists everyone who is there, b2 back included.
    members.push(back);
    let here: BTreeMap<String, String> = members
        .iter()
        .map(|m| (m.conn.clone(), m.name.clone()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    for member in &mut members {
        member
            .wait_until(deadline, "everyone listed", |m| m.list.0 == here)
            .await;
    }
}

#[actix_web::test]
async fn a_member_who_leaves_while_redis_is_down_leaves_every_list_once_it_is_back() {
    let cluster = Cluster::start(3);
    let urls = cluster.node_urls();
    let mut members = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        members.push(Member::join(&ws(url), &format!("a{i}"), None).await);
    }
    members.push(Member::join(&ws(&urls[1]), "b1", None).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    for member in &mut members {
        member
            .wait_until(deadline, "4 listed", |m| m.list.0.len() == 4)
            .await;
    }
    cluster.kill_redis();
    for url in &urls {
        wait_for_health(url, 503, "down", Duration::from_secs(15)).await;
    }
    let b1 = members.pop().expect("b1");
    b1.client.close().await;
    // a1, on b1's node, sees it leave at once.
    members[1]
        .wait_until(
            Instant::now() + Duration::from_secs(5),
            "b1 gone locally",
            |m| m.list.0.len() == 3,
        )
        .await;
    cluster.start_redis();
    for url in &urls {
        wait_for_health(url, 200, "up", Duration::from_secs(15)).await;
    }
    let here: BTreeMap<String, String> = members
        .iter()
        .map(|m| (m.conn.clone(), m.name.clone()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    for member in &mut members {
        member
            .wait_until(deadline, "b1 gone", |m| m.list.0 == here)
            .await;
    }
    let mut late = Member::join(&ws(cluster.url()), "late", None).await;
    late.wait_until(Instant::now() + Duration::from_secs(5), "late", |m| {
        m.list.0.len() == 4
    })
    .await;
    eprintln!("late sees {:?}", late.list.0);
}

#[actix_web::test]
async fn a_room_that_panics_on_each_node_numbers_on_from_the_cluster_counter() {
    // Arrange: every node's rooms panic once, at their first message; a
    // member on each of two nodes.
    let cluster = Cluster::start_with(
        2,
        ClusterOptions {
            env: vec![("BAZAAR_FAULT_PANIC_ONCE_IN".into(), "room".into())],
            ..Default::default()
        },
    );
    let urls = cluster.node_urls();
    let mut ana = ChatClient::connect_to(&ws(&urls[0]), "ana")
        .await
        .expect("ana");
    let mut bob = ChatClient::connect_to(&ws(&urls[1]), "bob")
        .await
        .expect("bob");
    ana.join(TOPIC, None).await;
    bob.join(TOPIC, None).await;

    // Act: each node's room panics on the first say it takes.
    let lost = [
        ana.request(json!({"op":"say","topic":TOPIC,"text":"lost a"}))
            .await,
        bob.request(json!({"op":"say","topic":TOPIC,"text":"lost b"}))
            .await,
    ];
    let mut seqs = Vec::new();
    for (i, text) in ["one", "two", "three", "four"].iter().enumerate() {
        let speaker = if i % 2 == 0 { &mut ana } else { &mut bob };
        seqs.push(speaker.say(TOPIC, text).await["seq"].as_u64().expect("seq"));
    }

    // Assert: both senders heard; seqs go on from the cluster's counter
    // with no gap or repeat, and each member sees them in that order.
    for reply in &lost {
        assert_eq!(reply["status"], "error", "{reply}");
        assert_eq!(reply["body"]["code"], "internal", "{reply}");
    }
    assert_eq!(seqs, [1, 2, 3, 4]);
    for member in [&mut ana, &mut bob] {
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let message = member.recv_op("message").await;
            seen.push((
                message["seq"].as_u64().expect("seq"),
                message["text"].clone(),
            ));
        }
        assert_eq!(
            seen,
            [
                (1, json!("one")),
                (2, json!("two")),
                (3, json!("three")),
                (4, json!("four"))
            ]
        );
    }
    for node in 0..2 {
        assert!(
            cluster.log(node).contains("panic in an actor"),
            "node {node}:\n{}",
            cluster.log(node)
        );
    }
}
