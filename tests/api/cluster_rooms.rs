//! Rooms across a cluster: three `bazaar serve` nodes behind nginx, sharing
//! PostgreSQL and a real Redis, with members spread over them by nginx.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::chat_client::{ChatClient, Ended, MemberList};
use crate::cluster_helpers::{health, node_of, ws, Cluster};

/// Opens `count` sockets through nginx and joins each to `topic`; returns
/// them with their join replies.
async fn members(cluster: &Cluster, topic: &str, count: usize) -> Vec<(ChatClient, Value)> {
    let mut out = Vec::new();
    for i in 0..count {
        let mut client = ChatClient::connect_to(&ws(cluster.url()), &format!("m{i}"))
            .await
            .expect("connect through nginx");
        let joined = client.join(topic, None).await;
        out.push((client, joined));
    }
    out
}

/// Reads `client`'s `message` events until it has `count`, in arrival order.
async fn messages(client: &mut ChatClient, count: usize) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} messages",
            got.len()
        );
        let frame = client.recv_op("message").await;
        got.push((
            frame["seq"].as_u64().expect("a seq"),
            frame["text"].as_str().expect("a text").to_owned(),
        ));
    }
    got
}

#[actix_web::test]
async fn members_on_three_nodes_get_every_message_in_one_gap_free_order() {
    // Arrange: nine members, spread over the three nodes by nginx.
    let cluster = Cluster::start(3);
    let room = members(&cluster, "chat:lobby", 9).await;
    let nodes: BTreeSet<String> = room
        .iter()
        .map(|(_, joined)| node_of(joined["conn"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(nodes.len(), 3, "nginx spread the members: {nodes:?}");

    // Act: a sender on each node says 20 messages, all at once.
    let senders: Vec<usize> = nodes
        .iter()
        .map(|node| {
            room.iter()
                .position(|(_, j)| node_of(j["conn"].as_str().unwrap_or_default()) == *node)
                .expect("a member on the node")
        })
        .collect();
    let mut slots: Vec<Option<ChatClient>> = room.into_iter().map(|(c, _)| Some(c)).collect();
    let mut sends = Vec::new();
    for &i in &senders {
        let mut client = slots[i].take().expect("a sender");
        sends.push(actix_web::rt::spawn(async move {
            for n in 0..20 {
                let text = format!("from {i}: {n}");
                let reply = client
                    .request(json!({"op":"say","topic":"chat:lobby","text":text}))
                    .await;
                assert_eq!(reply["status"], "ok", "{reply}");
            }
            (i, client)
        }));
    }
    for send in sends {
        let (i, client) = send.await.expect("the sender finished");
        slots[i] = Some(client);
    }

    // Assert: every member, the senders included, has the 60 messages, in
    // the same order, numbered 1..=60 without a gap.
    let mut orders = Vec::new();
    for client in slots.iter_mut().flatten() {
        orders.push(messages(client, 60).await);
    }
    let first = orders[0].clone();
    let seqs: Vec<u64> = first.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (1..=60).collect::<Vec<u64>>(),
        "gap-free and increasing"
    );
    for (i, order) in orders.iter().enumerate() {
        assert_eq!(order, &first, "member {i} saw another order");
    }

    // And a newcomer on any node sees all nine earlier members listed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut late = ChatClient::connect_to(&ws(cluster.url()), "late")
        .await
        .expect("connect");
    let joined = late.join("chat:lobby", None).await;
    let names = MemberList::of(&joined);
    let listed: BTreeSet<&str> = names.names().into_iter().collect();
    for i in 0..9 {
        let name = format!("m{i}");
        assert!(
            listed.contains(name.as_str()),
            "{name} missing from {listed:?}"
        );
    }
}

/// Publishes `payload` on a Redis channel, as another service would.
fn redis_publish(port: u16, channel: &str, payload: &str) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("redis url");
    let mut conn = client.get_connection().expect("connect to redis");
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query(&mut conn)
        .expect("publish");
}

#[actix_web::test]
async fn an_event_published_on_redis_reaches_members_on_every_node_once() {
    // Arrange: a member on each node.
    let cluster = Cluster::start(3);
    let mut room = members(&cluster, "chat:deals", 3).await;
    let nodes: BTreeSet<String> = room
        .iter()
        .map(|(_, joined)| node_of(joined["conn"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");

    // Act: another service publishes the documented message, twice (a
    // publisher unsure it got through sends it again with the same id).
    let event =
        json!({"id":"promo-1","topic":"chat:deals","user":"shop-bot","text":"Prices just dropped"});
    redis_publish(cluster.redis_port(), "bazaar:inbox", &event.to_string());
    redis_publish(cluster.redis_port(), "bazaar:inbox", &event.to_string());

    // Assert: every member hears it, from shop-bot, once.
    let mut seq = 0;
    for (client, _) in &mut room {
        let message = client.recv_op("message").await;
        assert_eq!(message["user"], "shop-bot");
        assert_eq!(message["text"], "Prices just dropped");
        seq = message["seq"].as_u64().expect("seq");
        let again =
            tokio::time::timeout(Duration::from_millis(500), client.recv_op("message")).await;
        assert!(again.is_err(), "heard twice: {again:?}");
    }
    // It was stored, once, and a resume from any node finds it.
    let mut resumed = ChatClient::connect_to(&ws(cluster.url()), "back")
        .await
        .expect("connect");
    let joined = resumed.join("chat:deals", Some(seq - 1)).await;
    assert_eq!(
        joined["history"][0]["text"], "Prices just dropped",
        "{joined}"
    );
    assert_eq!(joined["history"].as_array().map(Vec::len), Some(1));
}

#[actix_web::test]
async fn a_service_posts_into_a_room_over_http_with_the_api_token() {
    // Arrange
    let cluster = Cluster::start(3);
    let mut room = members(&cluster, "chat:news", 3).await;
    let client = awc::Client::new();
    let url = format!("{}/api/rooms/chat:news/events", cluster.url());

    // Act: without the token, then with it.
    let refused = client
        .post(&url)
        .send_json(&json!({"user":"bot","text":"hi"}))
        .await
        .expect("post");
    let mut posted = client
        .post(&url)
        .bearer_auth(cluster.api_token())
        .send_json(&json!({"user":"bot","text":"the news"}))
        .await
        .expect("post");
    let bad = client
        .post(format!("{}/api/rooms/auction:1/events", cluster.url()))
        .bearer_auth(cluster.api_token())
        .send_json(&json!({"user":"bot","text":"hi"}))
        .await
        .expect("post");

    // Assert
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(posted.status().as_u16(), 201);
    let body: Value = posted.json().await.expect("json");
    for (client, _) in &mut room {
        let message = client.recv_op("message").await;
        assert_eq!(message["text"], "the news");
        assert_eq!(message["seq"], body["seq"]);
    }
}

/// Reads `client`'s messages until its socket closes; returns them and the
/// close code.
async fn messages_until_closed(client: &mut ChatClient) -> (Vec<(u64, String)>, Option<u16>) {
    let message = |frame: &Value| {
        (
            frame["seq"].as_u64().unwrap_or(0),
            frame["text"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let mut got: Vec<(u64, String)> = client
        .events
        .drain(..)
        .filter(|f| f["op"] == "message")
        .map(|f| message(&f))
        .collect();
    loop {
        match client.next_frame(Duration::from_secs(20)).await {
            Ok(frame) if frame["op"] == "message" => got.push(message(&frame)),
            Ok(_) => {}
            Err(Ended::Closed(code)) => return (got, code),
            Err(other) => panic!("{other:?}"),
        }
    }
}

/// The id of the node at `url`, as its `/healthz` says.
async fn node_at(url: &str) -> String {
    let (_, health) = health(url).await;
    health["node"].as_str().unwrap_or_default().to_owned()
}

/// `GET /api/nodes` through nginx, with the API token.
async fn api_nodes(cluster: &Cluster) -> Value {
    let mut listed = awc::Client::new()
        .get(format!("{}/api/nodes", cluster.url()))
        .bearer_auth(cluster.api_token())
        .send()
        .await
        .expect("nodes");
    listed.json().await.expect("json")
}

#[actix_web::test]
async fn a_draining_node_sends_its_clients_elsewhere_and_they_resume_without_loss() {
    // Arrange: two members on each of three nodes, and a sender on a node
    // that stays.
    let cluster = Cluster::start(3);
    let room = members(&cluster, "chat:drain", 7).await;
    let mut room: Vec<(String, ChatClient)> = room
        .into_iter()
        .map(|(client, joined)| (node_of(joined["conn"].as_str().unwrap_or_default()), client))
        .collect();
    let draining_node = room[0].0.clone();
    let mut draining = None;
    for (i, url) in cluster.node_urls().iter().enumerate() {
        if node_at(url).await == draining_node {
            draining = Some(i);
        }
    }
    let draining = draining.expect("the draining node's index");
    let sender_at = room
        .iter()
        .position(|(node, _)| *node != draining_node)
        .expect("a member elsewhere");
    let (_, mut sender) = room.remove(sender_at);
    let send = actix_web::rt::spawn(async move {
        let mut said = Vec::new();
        for n in 0..40 {
            let text = format!("drain {n}");
            let reply = sender
                .request(json!({"op":"say","topic":"chat:drain","text":text}))
                .await;
            assert_eq!(reply["status"], "ok", "{reply}");
            said.push(text);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        said
    });

    // Act: the node is told to stop while the conversation goes on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.terminate_node(draining);

    // Assert: its members are closed with 1001, reconnect through nginx to
    // another node, and resume from the last seq they saw.
    let mut stayed = Vec::new();
    let mut moved = Vec::new();
    for (node, mut client) in room {
        if node != draining_node {
            stayed.push(client);
            continue;
        }
        let (seen, code) = messages_until_closed(&mut client).await;
        assert_eq!(code, Some(1001), "closed as going away");
        let last = seen.last().map_or(0, |(seq, _)| *seq);
        let mut back = ChatClient::connect_to(&ws(cluster.url()), "back")
            .await
            .expect("reconnect through nginx");
        let joined = back.join("chat:drain", Some(last)).await;
        assert_ne!(
            node_of(joined["conn"].as_str().unwrap_or_default()),
            draining_node,
            "nginx sent it to another node"
        );
        let mut had: std::collections::BTreeMap<u64, String> = seen.into_iter().collect();
        for message in joined["history"].as_array().into_iter().flatten() {
            had.insert(
                message["seq"].as_u64().unwrap_or(0),
                message["text"].as_str().unwrap_or_default().to_owned(),
            );
        }
        moved.push((back, had));
    }
    assert!(!moved.is_empty(), "members were on the draining node");
    let said = send.await.expect("the sender finished");
    for mut client in stayed {
        let got = messages(&mut client, said.len()).await;
        let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, said.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for (mut client, mut had) in moved {
        let deadline = Instant::now() + Duration::from_secs(20);
        while had.len() < said.len() {
            assert!(
                Instant::now() < deadline,
                "a moved member has {} of {}",
                had.len(),
                said.len()
            );
            let frame = client.recv_op("message").await;
            had.insert(
                frame["seq"].as_u64().unwrap_or(0),
                frame["text"].as_str().unwrap_or_default().to_owned(),
            );
        }
        let texts: Vec<&str> = had.values().map(String::as_str).collect();
        assert_eq!(
            texts,
            said.iter().map(String::as_str).collect::<Vec<_>>(),
            "nothing lost, in order"
        );
    }
}

#[actix_web::test]
async fn a_signal_reaches_a_member_on_another_node_and_the_nodes_are_listed() {
    // Arrange: two members on different nodes.
    let cluster = Cluster::start(3);
    let mut room = members(&cluster, "chat:p2p", 2).await;
    let (ana_joined, bob_joined) = (room[0].1.clone(), room[1].1.clone());
    let (ana_conn, bob_conn) = (
        ana_joined["conn"].as_str().expect("conn").to_owned(),
        bob_joined["conn"].as_str().expect("conn").to_owned(),
    );
    assert_ne!(node_of(&ana_conn), node_of(&bob_conn), "nginx spread them");

    // Act: ana offers a direct talk to bob, and to nobody.
    let (first, rest) = room.split_at_mut(1);
    let (ana, bob) = (&mut first[0].0, &mut rest[0].0);
    let sent = ana
        .request(json!({"op":"signal","topic":"chat:p2p","to":bob_conn,"data":{"type":"offer","sdp":"v=0"}}))
        .await;
    let nobody = ana
        .request(json!({"op":"signal","topic":"chat:p2p","to":"c-00000000-1","data":{}}))
        .await;

    // Assert: bob gets it from ana's connection; nobody is refused.
    assert_eq!(sent["status"], "ok", "{sent}");
    let signal = bob.recv_op("signal").await;
    assert_eq!(signal["from"], ana_conn.as_str());
    assert_eq!(signal["data"]["type"], "offer");
    assert_eq!(nobody["body"]["code"], "not_in_topic", "{nobody}");

    // And /api/nodes lists the three nodes, each as its /healthz names it.
    let client = awc::Client::new();
    let refused = client
        .get(format!("{}/api/nodes", cluster.url()))
        .send()
        .await
        .expect("nodes");
    assert_eq!(refused.status().as_u16(), 401);
    let listed = api_nodes(&cluster).await;
    let ids: BTreeSet<&str> = listed["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let mut healthy = BTreeSet::new();
    for url in cluster.node_urls() {
        healthy.insert(node_at(&url).await);
    }
    assert_eq!(
        ids,
        healthy.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "{listed}"
    );
    assert_eq!(listed["bus"], "up");
    // Each node describes itself at its heartbeat: the two sockets show
    // within one.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = api_nodes(&cluster).await;
        let clients: u64 = listed["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["clients"].as_u64())
            .sum();
        if clients >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
