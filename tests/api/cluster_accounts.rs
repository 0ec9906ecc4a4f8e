//! Accounts and auctions across a cluster: three `bazaar serve` nodes behind
//! nginx, sharing PostgreSQL and a real Redis. Bids from every node land on
//! one lot, a logout on one node reaches the account's sockets on the
//! others, and two browsers on different nodes chat through nginx.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bazaar::auction::store::{create_lot, Listing};
use bazaar::auction::{Increments, LotSpec};
use chrono::{TimeDelta, Utc};
use entity::lots::LotStatus;
use entity::{bids, lots};
use sea_orm::{ColumnTrait, Database, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};

use crate::accounts::{hidden, Visitor};
use crate::auction_pages::PASSWORD;
use crate::browser::{COMPOSER, MEMBERS, MESSAGES};
use crate::browser_helpers::{Browser, Page};
use crate::chat_client::{ChatClient, MemberList};
use crate::cluster_helpers::{node_of, ws, Cluster, ClusterOptions};

/// Bid attempts in the storm, from every bidder together.
const ATTEMPTS: usize = 1_000;
/// Accounts bidding in the storm.
const BIDDERS: usize = 10;
/// How long the slowest client may take to hear the lot's last change.
const SETTLE: Duration = Duration::from_secs(20);

/// Who opens a socket: a guest by name, or an account by its cookie.
#[derive(Clone, Copy)]
enum Who<'a> {
    Guest(&'a str),
    Account(&'a str),
}

/// Opens sockets through nginx as `who` and joins each to `topic` until
/// there is one on every node; a socket landing on a node already held is
/// closed. Returns them with their join replies, one per node.
async fn one_on_each_node(
    cluster: &Cluster,
    who: Who<'_>,
    topic: &str,
) -> Vec<(ChatClient, Value)> {
    let nodes = cluster.node_urls().len();
    let mut held: Vec<(ChatClient, Value)> = Vec::new();
    for _ in 0..nodes * 10 {
        let connected = match who {
            Who::Guest(name) => ChatClient::connect_to(&ws(cluster.url()), name).await,
            Who::Account(cookie) => {
                ChatClient::connect_to_with_cookie(&ws(cluster.url()), cookie).await
            }
        };
        let mut client = connected.expect("a socket through nginx");
        let joined = client.join(topic, None).await;
        let node = node_of(joined["conn"].as_str().expect("conn"));
        if held
            .iter()
            .any(|(_, j)| node_of(j["conn"].as_str().unwrap_or_default()) == node)
        {
            client.close().await;
            continue;
        }
        held.push((client, joined));
        if held.len() == nodes {
            return held;
        }
    }
    panic!("nginx never spread the sockets over {nodes} nodes");
}

/// The newest state of a lot a client has seen: every lot event carries
/// the whole lot, and its `seq` says which is newest.
#[derive(Debug, Clone, Default)]
struct Known {
    seq: u64,
    lot: Value,
}

impl Known {
    fn learn(&mut self, seq: u64, lot: &Value) {
        if seq > self.seq {
            self.seq = seq;
            self.lot = lot.clone();
        }
    }

    /// Learns from a frame, if it is an event of `topic` carrying the lot.
    fn hear(&mut self, frame: &Value, topic: &str) {
        let lot_event = ["bid", "lot", "outbid", "started", "finished"]
            .iter()
            .any(|op| frame["op"] == *op);
        if lot_event && frame["topic"] == topic {
            self.learn(frame["seq"].as_u64().expect("seq"), &frame["lot"]);
        }
    }

    fn leader(&self) -> Option<i64> {
        self.lot["leader"].as_i64()
    }
}

/// Reads every frame `client` has already received, without waiting.
async fn ready_frames(client: &mut ChatClient) -> Vec<Value> {
    let mut frames: Vec<Value> = client.events.drain(..).collect();
    while let Ok(frame) = tokio::time::timeout(Duration::ZERO, client.next_frame(SETTLE)).await {
        frames.push(frame.unwrap_or_else(|end| panic!("socket ended: {end:?}")));
    }
    frames
}

/// One account in the storm: a socket on each node, used in turn.
struct Bidder {
    id: i64,
    sockets: Vec<ChatClient>,
    /// The node each socket is on.
    nodes: Vec<String>,
    known: Known,
}

/// An accepted bid, as its reply told it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Accepted {
    seq: i64,
    bidder: i64,
    amount_cents: i64,
    price_cents: i64,
    standing: String,
    /// The node the bid went through.
    node: String,
}

/// Bids the minimum next bid it knows of, through its sockets in turn,
/// until the storm's attempts are spent; while it leads, it waits for news
/// instead of bidding against itself. Returns what was accepted and the
/// refusals' codes.
async fn bid_until_spent(
    bidder: &mut Bidder,
    topic: &str,
    attempts: Rc<Cell<usize>>,
) -> (Vec<Accepted>, Vec<String>) {
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut turn = 0;
    while attempts.get() > 0 {
        for socket in &mut bidder.sockets {
            for frame in ready_frames(socket).await {
                bidder.known.hear(&frame, topic);
            }
        }
        let at = turn % bidder.sockets.len();
        let socket = &mut bidder.sockets[at];
        turn += 1;
        if bidder.known.leader() == Some(bidder.id) {
            if let Ok(frame) =
                tokio::time::timeout(Duration::from_millis(20), socket.next_frame(SETTLE)).await
            {
                let frame = frame.unwrap_or_else(|end| panic!("socket ended: {end:?}"));
                bidder.known.hear(&frame, topic);
            }
            continue;
        }
        // Other bidders may have spent the last attempts meanwhile.
        let Some(left) = attempts.get().checked_sub(1) else {
            break;
        };
        attempts.set(left);
        let amount = bidder.known.lot["min_next_cents"]
            .as_i64()
            .expect("min_next_cents");
        let reply = socket
            .request(json!({"op":"bid","topic":topic,"amount_cents":amount}))
            .await;
        if reply["status"] != "ok" {
            refused.push(reply["body"]["code"].as_str().unwrap_or("?").to_owned());
            continue;
        }
        let body = &reply["body"];
        let seq = body["seq"].as_u64().expect("seq");
        bidder.known.learn(seq, &body["lot"]);
        accepted.push(Accepted {
            seq: i64::try_from(seq).expect("a seq fits"),
            bidder: bidder.id,
            amount_cents: amount,
            price_cents: body["lot"]["current_cents"].as_i64().expect("price"),
            standing: body["standing"].as_str().unwrap_or_default().to_owned(),
            node: bidder.nodes[at].clone(),
        });
    }
    (accepted, refused)
}

/// What a watcher heard: the newest lot, and the `seq` of each `bid` event.
#[derive(Debug, Default)]
struct Watched {
    known: Known,
    bid_seqs: Vec<u64>,
}

/// Reads `client`'s frames until it has seen the lot at `target` (0 while
/// unknown) and every bid from `first` on, keeping what a watcher's page
/// would show.
async fn watch(
    mut client: ChatClient,
    topic: String,
    first: u64,
    target: Rc<Cell<u64>>,
) -> Watched {
    let mut watched = Watched::default();
    let mut deadline = None;
    let mut frames: Vec<Value> = client.events.drain(..).collect();
    loop {
        for frame in frames.drain(..) {
            if frame["op"] == "bid" && frame["topic"] == topic.as_str() {
                watched.bid_seqs.push(frame["seq"].as_u64().expect("seq"));
            }
            watched.known.hear(&frame, &topic);
        }
        let wanted = target.get();
        if wanted > 0 {
            // Events from different nodes may arrive out of order: the
            // watcher is done when it has the newest lot and every bid.
            let heard: BTreeSet<u64> = watched.bid_seqs.iter().copied().collect();
            let missing: Vec<u64> = (first..=wanted).filter(|s| !heard.contains(s)).collect();
            if watched.known.seq >= wanted && missing.is_empty() {
                return watched;
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + SETTLE);
            assert!(
                Instant::now() < deadline,
                "a watcher is at seq {} of {wanted}, missing the bids {missing:?}",
                watched.known.seq
            );
        }
        let Ok(frame) =
            tokio::time::timeout(Duration::from_millis(100), client.next_frame(SETTLE)).await
        else {
            continue;
        };
        frames.push(frame.unwrap_or_else(|end| panic!("a watcher's socket ended: {end:?}")));
    }
}

/// A running lot from 10.00 EUR that ends long after the test.
async fn running_lot(db: &DatabaseConnection) -> lots::Model {
    let starts_at = Utc::now();
    let ends_at = starts_at + TimeDelta::minutes(30);
    let listing = Listing {
        title: "Earthbound, boxed".into(),
        description: "Complete in box.".into(),
        spec: LotSpec {
            currency: "EUR".into(),
            starting_cents: 1_000,
            reserve_cents: None,
            increments: Increments::default(),
            starts_at,
            ends_at,
            hard_end: ends_at,
            soft_close: TimeDelta::zero(),
        },
    };
    let id = create_lot(db, &listing, None, Utc::now())
        .await
        .expect("a lot")
        .id;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lot = lots::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read the lot")
            .expect("the lot");
        if lot.status == LotStatus::Running {
            return lot;
        }
        assert!(Instant::now() < deadline, "no node opened lot {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An account registered through nginx, with its cookie.
async fn register(cluster: &Cluster, name: &str) -> String {
    let mut visitor = Visitor::at(cluster.url());
    let page = visitor.register(name, name, PASSWORD).await;
    assert_eq!(page.status, 303, "register {name}: {}", page.body);
    visitor.cookie_header()
}

#[actix_web::test]
async fn a_thousand_concurrent_bids_through_three_nodes_leave_one_leader_and_one_lot_state() {
    // Arrange: a running lot; ten bidders with a socket on each node; a
    // guest watching on each node.
    let cluster = Cluster::start(3);
    let db = Database::connect(cluster.postgres_url())
        .await
        .expect("connect to the cluster's database");
    let opened = running_lot(&db).await;
    let topic = format!("auction:{}", opened.id);
    let mut bidders = Vec::new();
    for i in 0..BIDDERS {
        let cookie = register(&cluster, &format!("bidder{i}")).await;
        let sockets = one_on_each_node(&cluster, Who::Account(&cookie), &topic).await;
        let mut known = Known::default();
        for (_, joined) in &sockets {
            known.learn(joined["seq"].as_u64().expect("seq"), &joined["lot"]);
        }
        bidders.push(Bidder {
            id: sockets[0].1["you"].as_i64().expect("an account's socket"),
            nodes: sockets
                .iter()
                .map(|(_, joined)| node_of(joined["conn"].as_str().unwrap_or_default()))
                .collect(),
            sockets: sockets.into_iter().map(|(socket, _)| socket).collect(),
            known,
        });
    }
    let first_bid = u64::try_from(opened.version + 1).expect("a version");
    let target = Rc::new(Cell::new(0));
    let watchers: Vec<_> = one_on_each_node(&cluster, Who::Guest("gus"), &topic)
        .await
        .into_iter()
        .map(|(client, _)| {
            actix_web::rt::spawn(watch(client, topic.clone(), first_bid, target.clone()))
        })
        .collect();

    // Act: a thousand attempts, every bidder at once.
    let started = Instant::now();
    let attempts = Rc::new(Cell::new(ATTEMPTS));
    let storm: Vec<_> = bidders
        .into_iter()
        .map(|mut bidder| {
            let (topic, attempts) = (topic.clone(), attempts.clone());
            actix_web::rt::spawn(async move {
                let outcome = bid_until_spent(&mut bidder, &topic, attempts).await;
                (bidder, outcome)
            })
        })
        .collect();
    let mut bidders = Vec::new();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for bidding in storm {
        let (bidder, (won, lost)) = bidding.await.expect("a bidder finished");
        bidders.push(bidder);
        accepted.extend(won);
        refused.extend(lost);
    }
    let stormed = started.elapsed();

    // Assert: every attempt was answered, accepted or too low.
    assert_eq!(accepted.len() + refused.len(), ATTEMPTS);
    let codes: BTreeSet<&str> = refused.iter().map(String::as_str).collect();
    assert!(
        codes.is_subset(&BTreeSet::from(["bid_too_low"])),
        "refused with {codes:?}"
    );
    assert!(
        accepted.len() > BIDDERS,
        "only {} accepted in {stormed:?}",
        accepted.len()
    );
    // The accepted bids are the lot's versions since it opened, one each,
    // at prices rising with every one.
    accepted.sort();
    let lot = lots::Entity::find_by_id(opened.id)
        .one(&db)
        .await
        .expect("read the lot")
        .expect("the lot");
    let seqs: Vec<i64> = accepted.iter().map(|a| a.seq).collect();
    assert_eq!(
        seqs,
        (opened.version + 1..=lot.version).collect::<Vec<_>>(),
        "one accepted reply per version"
    );
    for pair in accepted.windows(2) {
        assert!(
            pair[0].price_cents < pair[1].price_cents,
            "prices did not rise: {pair:?}"
        );
    }
    for bid in &accepted {
        assert_eq!(bid.standing, "leading", "{bid:?}");
        assert_eq!(bid.price_cents, bid.amount_cents, "{bid:?}");
    }
    let through: BTreeSet<&str> = accepted.iter().map(|a| a.node.as_str()).collect();
    assert_eq!(through.len(), 3, "accepted through {through:?}");
    // Every accepted reply has its row, and no other row exists.
    let rows: Vec<(i64, i64, i64)> = bids::Entity::find()
        .filter(bids::Column::LotId.eq(opened.id))
        .order_by_asc(bids::Column::Seq)
        .order_by_asc(bids::Column::Ord)
        .all(&db)
        .await
        .expect("read the bids")
        .into_iter()
        .map(|row| (row.seq, row.user_id, row.amount_cents))
        .collect();
    let replied: Vec<(i64, i64, i64)> = accepted
        .iter()
        .map(|a| (a.seq, a.bidder, a.amount_cents))
        .collect();
    assert_eq!(rows, replied, "the bids table against the replies");
    let last = accepted.last().expect("an accepted bid");
    assert_eq!(lot.leader_id, Some(last.bidder));
    assert_eq!(lot.current_cents, last.price_cents);
    assert_eq!(lot.bid_count, i64::try_from(accepted.len()).unwrap_or(-1));
    // The watchers on every node end where the database is, having heard
    // every accepted bid once.
    let version = u64::try_from(lot.version).expect("a version");
    target.set(version);
    for watcher in watchers {
        let watched = watcher.await.expect("a watcher finished");
        assert_eq!(watched.known.seq, version);
        assert_eq!(watched.known.lot["version"], lot.version);
        assert_eq!(watched.known.lot["current_cents"], lot.current_cents);
        assert_eq!(watched.known.leader(), lot.leader_id);
        let mut heard = watched.bid_seqs.clone();
        heard.sort_unstable();
        heard.dedup();
        assert_eq!(heard.len(), watched.bid_seqs.len(), "a bid heard twice");
        let heard: Vec<i64> = heard
            .into_iter()
            .map(|s| i64::try_from(s).unwrap_or(-1))
            .collect();
        assert_eq!(heard, seqs, "the bids a watcher heard");
    }
    // And exactly one bidder sees itself leading.
    let mut leading = Vec::new();
    for bidder in &mut bidders {
        let deadline = Instant::now() + SETTLE;
        let socket = &mut bidder.sockets[0];
        for frame in socket.events.drain(..) {
            bidder.known.hear(&frame, &topic);
        }
        while bidder.known.seq < version {
            assert!(
                Instant::now() < deadline,
                "bidder {} knows seq {} of {version}",
                bidder.id,
                bidder.known.seq
            );
            let frame = socket.next_frame(SETTLE).await.expect("a frame");
            bidder.known.hear(&frame, &topic);
        }
        if bidder.known.leader() == Some(bidder.id) {
            leading.push(bidder.id);
        }
    }
    assert_eq!(leading, [last.bidder], "who sees itself leading");
}

#[actix_web::test]
async fn logging_out_on_one_node_tells_the_accounts_sockets_on_the_others() {
    // Arrange: Ana with a socket on each node, all in one room, and a guest
    // who sees all three of them there.
    let cluster = Cluster::start(3);
    let mut ana = Visitor::at(cluster.url());
    assert_eq!(ana.register("ana", "Ana", PASSWORD).await.status, 303);
    let tabs = one_on_each_node(&cluster, Who::Account(&ana.cookie_header()), "chat:lounge").await;
    let ana_conns: BTreeSet<String> = tabs
        .iter()
        .map(|(_, joined)| joined["conn"].as_str().expect("conn").to_owned())
        .collect();
    let mut gus = ChatClient::connect_to(&ws(cluster.url()), "gus")
        .await
        .expect("a guest's socket");
    let joined = gus.join("chat:lounge", None).await;
    let gus_conn = joined["conn"].as_str().expect("conn").to_owned();
    let mut seen = MemberList::of(&joined);
    let mut everyone = ana_conns.clone();
    everyone.insert(gus_conn.clone());
    until_members(&mut gus, &mut seen, &everyone).await;

    // Act: she logs out; nginx hands the request to one of the nodes.
    let csrf = hidden(&ana.get("/account").await.body, "csrf").expect("a logout token");
    assert_eq!(ana.post("/logout", &[("csrf", &csrf)]).await.status, 303);

    // Assert: each of her sockets, whichever node holds it, hears that she
    // is no one now and may say nothing more, and the guest sees all three
    // leave.
    for (mut tab, joined) in tabs {
        let session = tab.recv_op("session").await;
        assert_eq!(
            session,
            json!({"op": "session", "user": null}),
            "on {}",
            joined["conn"]
        );
        let refused = tab
            .request(json!({"op": "say", "topic": "chat:lounge", "text": "still here?"}))
            .await;
        assert_eq!(refused["body"]["code"], "not_logged_in", "{refused}");
    }
    until_members(&mut gus, &mut seen, &BTreeSet::from([gus_conn])).await;
    assert_eq!(seen.names(), ["gus"]);
}

/// Applies `client`'s presence diffs to `seen` until it lists exactly
/// `conns`.
async fn until_members(client: &mut ChatClient, seen: &mut MemberList, conns: &BTreeSet<String>) {
    let deadline = Instant::now() + SETTLE;
    while seen.0.keys().cloned().collect::<BTreeSet<_>>() != *conns {
        assert!(
            Instant::now() < deadline,
            "the member list is {seen:?}, not {conns:?}"
        );
        let presence = client.recv_op("presence").await;
        seen.apply(&presence);
    }
}

/// The connection id a chat page holds, once its join is answered.
async fn own_conn(page: &Page) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let [conn] = page
            .attrs("#members .member.me", "data-conn")
            .await
            .as_slice()
        {
            return conn.clone();
        }
        assert!(Instant::now() < deadline, "the page never listed itself");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn two_chromium_pages_on_different_nodes_chat_through_nginx() {
    // Arrange: Ana's and Bob's pages in the lobby through nginx, Bob's
    // reloaded until its socket is on another node than Ana's.
    let cluster = Cluster::start(3);
    let mut browser = Browser::start().await;
    let (ana, bob) = (browser.page().await, browser.page().await);
    ana.enter_room(cluster.url(), "lobby", "ana").await;
    bob.enter_room(cluster.url(), "lobby", "bob").await;
    let ana_node = node_of(&own_conn(&ana).await);
    let room = format!("{}/rooms/lobby", cluster.url());
    for attempt in 0..9 {
        if node_of(&own_conn(&bob).await) != ana_node {
            break;
        }
        // Round robin is deterministic: a reload making as many requests
        // as the last lands the same way, so a few requests of our own
        // shift the rotation first.
        for _ in 0..attempt % 3 {
            let health = awc::Client::new()
                .get(format!("{}/healthz", cluster.url()))
                .send()
                .await
                .expect("healthz through nginx");
            assert!(health.status().is_success());
        }
        bob.goto(&room).await;
        bob.wait_online().await;
    }
    assert_ne!(node_of(&own_conn(&bob).await), ana_node, "two nodes");

    // Act
    ana.send(COMPOSER, "hello from ana").await;
    bob.wait_for_text(MESSAGES, "hello from ana").await;
    bob.send(COMPOSER, "hi ana, bob here").await;

    // Assert: each page shows both messages, in order, and both members.
    for page in [&ana, &bob] {
        page.wait_for_text(MESSAGES, "hi ana, bob here").await;
        assert_eq!(
            page.texts(MESSAGES).await,
            ["hello from ana", "hi ana, bob here"]
        );
        page.wait_until("both members", MEMBERS, |names| {
            let mut names = names.to_vec();
            names.sort();
            names == ["ana", "bob"]
        })
        .await;
    }
}

#[actix_web::test]
async fn failed_logins_are_counted_over_every_node_together() {
    // Arrange: three failed logins a name, and an account.
    let cluster = Cluster::start_with(
        3,
        ClusterOptions {
            env: vec![(
                "BAZAAR_ACCOUNTS__LOGIN_ATTEMPTS_PER_NAME".to_owned(),
                "3".to_owned(),
            )],
            ..ClusterOptions::default()
        },
    );
    register(&cluster, "ana").await;
    let urls = cluster.node_urls();
    let attempt = |node: usize, password: &'static str| {
        let url = urls[node].clone();
        async move { Visitor::at(&url).login("ana", password).await }
    };

    // Act: two wrong guesses on two nodes and the right password on the
    // third; then a wrong guess on each node, and the right password.
    let mut statuses = Vec::new();
    for (node, password) in [(0, "guess"), (1, "guess"), (2, PASSWORD)] {
        statuses.push(attempt(node, password).await.status);
    }
    for node in 0..3 {
        statuses.push(attempt(node, "guess").await.status);
    }
    let last = attempt(0, PASSWORD).await;

    // Assert: the login on the third node cleared the name's count on
    // every node; the three guesses after it, one a node, reached the
    // limit, and even the right password now waits.
    assert_eq!(statuses, [401, 401, 303, 401, 401, 401]);
    assert_eq!(last.status, 429, "{}", last.body);
    assert!(
        last.body.contains("Too many failed attempts"),
        "{}",
        last.body
    );
}
