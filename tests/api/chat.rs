//! Chat rooms over real sockets (docs/protocol.md §1): order, resume, presence
//! and the limits a connection lives under.

use std::time::Duration;

use serde_json::json;

use crate::chat_client::{ChatClient, Ended, MemberList};
use crate::helpers::{spawn_app, AppOptions, Backend};
use crate::on_both_backends;

#[actix_web::test]
async fn two_clients_chat_with_gap_free_order_and_see_each_other_arrive() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    let joined = ana.join("chat:lobby", None).await;
    assert_eq!(joined["seq"], 0);
    assert_eq!(joined["members"].as_array().map(Vec::len), Some(1));
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    let joined = bob.join("chat:lobby", None).await;
    let bob_conn = joined["conn"].as_str().expect("conn").to_owned();

    // Act
    let presence = ana.recv_op("presence").await;
    for i in 1..=5 {
        let said = ana.say("chat:lobby", &format!("message {i}")).await;
        assert_eq!(said["seq"], i);
    }

    // Assert: bob's arrival went out as a diff; bob gets every message in order.
    assert_eq!(
        presence["joins"],
        json!([{"conn": bob_conn, "user": "bob"}])
    );
    for i in 1..=5u64 {
        let m = bob.recv_op("message").await;
        assert_eq!(m["seq"], i);
        assert_eq!(m["user"], "ana");
        assert_eq!(m["text"], format!("message {i}"));
        assert_eq!(m["topic"], "chat:lobby");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE topic = 'chat:lobby'")
            .await,
        5
    );
}

on_both_backends!(a_client_that_drops_and_resumes_with_since_misses_nothing);
async fn a_client_that_drops_and_resumes_with_since_misses_nothing(backend: Backend) {
    // Arrange: bob has seen seq 1, then drops.
    let app = spawn_app(backend, AppOptions::default()).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:resume", None).await;
    ana.say("chat:resume", "before").await;
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    let seen = bob.join("chat:resume", None).await["seq"]
        .as_u64()
        .expect("seq");
    assert_eq!(seen, 1);
    bob.close().await;

    // Act: the room moves on while bob is away; bob resumes.
    for i in 0..7 {
        ana.say("chat:resume", &format!("while away {i}")).await;
    }
    let mut bob = ChatClient::connect(&app, Some("bob"))
        .await
        .expect("bob again");
    let resumed = bob.join("chat:resume", Some(seen)).await;

    // Assert: exactly the seven missed messages, in order.
    assert_eq!(seqs_of(&resumed["history"]), (2..=8).collect::<Vec<_>>());
    assert_eq!(resumed["seq"], 8);
    assert!(resumed.get("truncated").is_none(), "{resumed}");
}

on_both_backends!(members_see_a_message_before_it_is_stored_and_the_reply_waits_for_the_commit);
async fn members_see_a_message_before_it_is_stored_and_the_reply_waits_for_the_commit(
    backend: Backend,
) {
    // Arrange: more history than a room keeps in memory, so that a resume
    // from early on reads the database.
    let options = AppOptions {
        env: vec![("BAZAAR_WS__BURST".into(), "1000".into())],
        ..AppOptions::default()
    };
    let app = spawn_app(backend, options).await;
    let topic = "chat:durable";
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join(topic, None).await;
    for i in 1..=205 {
        ana.say(topic, &format!("stored {i}")).await;
    }
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    bob.join(topic, None).await;

    // Act: the database takes no message while ana says two more.
    let held = hold_message_writes(&app, backend).await;
    for text in ["held 1", "held 2"] {
        ana.send(json!({"op":"say","topic":topic,"text":text,"ref":text}))
            .await;
    }

    // Assert: bob has both at once, with the ids their rows will have...
    let first = bob.recv_op("message").await;
    let second = bob.recv_op("message").await;
    assert_eq!(
        (first["seq"].as_u64(), second["seq"].as_u64()),
        (Some(206), Some(207))
    );
    assert_eq!(second["text"], "held 2");
    assert!(first["id"].as_i64().is_some(), "{first}");
    // ...while the rows are not there and ana's replies wait.
    let stored = "SELECT COUNT(*) FROM messages WHERE topic = 'chat:durable'";
    assert_eq!(app.count(stored).await, 205);
    let early = tokio::time::timeout(Duration::from_millis(300), ana.recv_op("reply")).await;
    assert!(
        early.is_err(),
        "a say was answered before its commit: {early:?}"
    );
    // A resume from seq 3 reads the database and still gets 206 and 207.
    let mut carol = ChatClient::connect(&app, Some("carol"))
        .await
        .expect("carol");
    let resumed = carol.join(topic, Some(3)).await;
    assert_eq!(seqs_of(&resumed["history"]), (4..=207).collect::<Vec<_>>());

    // Act: the database takes writes again.
    held.rollback().await.expect("release the messages table");

    // Assert: each say is answered once stored, with the id bob was shown.
    for (reference, event) in [("held 1", &first), ("held 2", &second)] {
        let reply = ana.recv_op("reply").await;
        assert_eq!(reply["ref"], reference);
        assert_eq!(reply["status"], "ok", "{reply}");
        assert_eq!(reply["body"]["id"], event["id"]);
        assert_eq!(reply["body"]["seq"], event["seq"]);
    }
    let rows = app
        .rows("SELECT id, text FROM messages WHERE topic = 'chat:durable' AND seq = 207")
        .await;
    assert_eq!(
        rows,
        vec![vec![second["id"].to_string(), "held 2".to_owned()]]
    );
}

on_both_backends!(a_seq_seen_before_a_crash_is_never_given_to_another_message);
async fn a_seq_seen_before_a_crash_is_never_given_to_another_message(backend: Backend) {
    // Arrange: bob has seen seq 2, which the server had not stored yet...
    let mut app = spawn_app(backend, AppOptions::default()).await;
    let topic = "chat:crash";
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join(topic, None).await;
    ana.say(topic, "stored").await;
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    bob.join(topic, None).await;
    let held = hold_message_writes(&app, backend).await;
    ana.send(json!({"op":"say","topic":topic,"text":"seen, never stored","ref":"x"}))
        .await;
    let seen = bob.recv_op("message").await;
    assert_eq!(seen["seq"], 2);

    // ...when the server crashes.
    app.kill9();
    held.rollback().await.expect("release the messages table");
    app.start().await;

    // Act: bob resumes from what he saw; ana says something new.
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    let resumed = bob.join(topic, Some(2)).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join(topic, None).await;
    let said = ana.say(topic, "after the crash").await;

    // Assert: the new message is numbered above every seq seen, so bob gets it.
    let after = said["seq"].as_u64().expect("seq");
    assert!(after > 2, "seq {after} was already seen");
    assert!(resumed["seq"].as_u64() >= Some(2), "{resumed}");
    // The gap is no missed history to page through.
    assert!(resumed.get("truncated").is_none(), "{resumed}");
    let live = bob.recv_op("message").await;
    assert_eq!(
        (live["seq"].as_u64(), live["text"].as_str()),
        (Some(after), Some("after the crash"))
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE topic = 'chat:crash' AND seq = 2")
            .await,
        0
    );

    // And an orderly restart carries on with no gap at all.
    drop((ana, bob));
    assert!(app.terminate(Duration::from_secs(10)).await.is_some());
    app.start().await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    assert_eq!(ana.join(topic, None).await["seq"], after);
    assert_eq!(ana.say(topic, "next").await["seq"], after + 1);
}

/// A transaction that keeps the server from writing `messages` until it
/// ends; reads go on.
async fn hold_message_writes(
    app: &crate::helpers::TestApp,
    backend: Backend,
) -> sea_orm::DatabaseTransaction {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let txn = app.own_connection().await.begin().await.expect("begin");
    let sql = match backend {
        // A write that matches nothing still takes SQLite's one write lock.
        Backend::Sqlite => "UPDATE messages SET seq = seq WHERE 1 = 0",
        Backend::Postgres => "LOCK TABLE messages IN SHARE MODE",
    };
    txn.execute_unprepared(sql).await.expect("hold writes");
    txn
}

#[actix_web::test]
async fn bad_frames_get_clear_errors_and_the_connection_stays_open() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut c = ChatClient::connect(&app, Some("mallory"))
        .await
        .expect("connect");
    c.join("chat:lobby", None).await;

    c.send_text("{not json".into()).await;
    assert_eq!(c.recv_op("error").await["code"], "bad_frame");
    let reply = c.request(json!({"op":"shout","topic":"chat:lobby"})).await;
    assert_eq!(reply["body"]["code"], "unknown_op");
    let reply = c
        .request(json!({"op":"say","topic":"chat:lobby","text":42}))
        .await;
    assert_eq!(reply["body"]["code"], "bad_frame");
    let reply = c
        .request(json!({"op":"say","topic":"chat:lobby","text":"x".repeat(2001)}))
        .await;
    assert_eq!(reply["body"]["code"], "text_too_long");
    let reply = c
        .request(json!({"op":"join","topic":"chat:Bad Name"}))
        .await;
    assert_eq!(reply["body"]["code"], "bad_topic");
    let reply = c
        .request(json!({"op":"say","topic":"chat:elsewhere","text":"hi"}))
        .await;
    assert_eq!(reply["body"]["code"], "not_joined");
    let reply = c
        .request(json!({"op":"signal","topic":"chat:lobby","to":"c-999999","data":{"sdp":"x"}}))
        .await;
    assert_eq!(reply["body"]["code"], "not_in_topic");
    let big = format!(
        r#"{{"op":"say","topic":"chat:lobby","text":"{}"}}"#,
        "y".repeat(70_000)
    );
    c.send_text(big).await;
    assert_eq!(c.recv_op("error").await["code"], "frame_too_large");

    // Still open, and markup is stored and relayed as text, not interpreted.
    let said = c.say("chat:lobby", "<script>alert(1)</script>").await;
    assert_eq!(said["seq"], 1);
    let m = c.recv_op("message").await;
    assert_eq!(m["text"], "<script>alert(1)</script>");
}

#[actix_web::test]
async fn sockets_without_a_name_or_from_a_foreign_origin_are_refused() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    assert_eq!(
        ChatClient::connect(&app, None).await.err(),
        Some(Ended::Refused(401))
    );
    assert_eq!(
        ChatClient::connect(&app, Some("<b>x</b>")).await.err(),
        Some(Ended::Refused(401))
    );
    assert_eq!(
        ChatClient::connect_with(&app, Some("ana"), Some("http://evil.example"))
            .await
            .err(),
        Some(Ended::Refused(403))
    );
    assert!(ChatClient::connect_with(&app, Some("ana"), Some(&app.base))
        .await
        .is_ok());
}

/// Sends `request` on a fresh connection and reads until the server hangs up.
async fn raw_exchange(app: &crate::helpers::TestApp, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.replace("{addr}", addr).as_bytes())
        .await
        .expect("request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the server answers and hangs up in time")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_web::test]
async fn requests_that_are_not_websocket_handshakes_get_whole_answers() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;

    // Act: a page asked for with an upgrade to another protocol, the socket
    // asked for without the WebSocket headers, and a wrong version.
    let page = raw_exchange(
        &app,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await;
    let plain = app
        .client
        .get(format!("{}/ws?name=ana", app.base))
        .send()
        .await;
    let mut plain = plain.expect("GET /ws");
    let plain_body: serde_json::Value = plain.json().await.expect("json");
    let version = raw_exchange(
        &app,
        "GET /ws?name=ana HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 8\r\n\r\n",
    )
    .await;

    // Assert
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("</html>"), "the whole page: {page}");
    assert_eq!(plain.status().as_u16(), 400);
    assert_eq!(plain_body["error"]["code"], "bad_handshake");
    assert!(version.starts_with("HTTP/1.1 426"), "{version}");
    assert!(
        version.to_lowercase().contains("sec-websocket-version: 13"),
        "{version}"
    );
    assert!(version.contains("bad_handshake"), "{version}");
}

#[actix_web::test]
async fn a_flood_is_rate_limited_and_then_closed_with_1008() {
    // Arrange: 5 requests/s, a burst of 5, half a second of grace.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: vec![
                ("BAZAAR_WS__RATE".into(), "5".into()),
                ("BAZAAR_WS__BURST".into(), "5".into()),
                ("BAZAAR_WS__RATE_GRACE".into(), "500ms".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let mut c = ChatClient::connect(&app, Some("flooder"))
        .await
        .expect("connect");
    c.join("chat:lobby", None).await;

    // Act: far more than the rate, for longer than the grace.
    let mut limited = 0;
    let mut ended = None;
    for i in 0..400 {
        c.send(json!({"op":"ping","ref": format!("p{i}")})).await;
        match c.next_frame(std::time::Duration::from_secs(5)).await {
            Ok(frame) if frame["body"]["code"] == "rate_limited" => limited += 1,
            Ok(_) => {}
            Err(how) => {
                ended = Some(how);
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    // Assert: refusals first, then the close, with the policy code.
    assert!(limited > 0, "some requests were refused with rate_limited");
    assert_eq!(ended, Some(Ended::Closed(Some(1008))));
    let again = ChatClient::connect(&app, Some("flooder")).await;
    assert!(again.is_ok(), "the limit is per connection, not a ban");
}

/// Settings that let a test send as fast as it likes.
fn unlimited(mut env: Vec<(&str, &str)>) -> AppOptions {
    env.push(("BAZAAR_WS__RATE", "100000"));
    env.push(("BAZAAR_WS__BURST", "100000"));
    AppOptions {
        env: env
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..Default::default()
    }
}

fn seqs_of(messages: &serde_json::Value) -> Vec<u64> {
    messages
        .as_array()
        .expect("an array of messages")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

#[actix_web::test]
async fn presence_stays_right_when_one_user_has_several_tabs() {
    // Arrange: ana in two tabs, then bob.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana1 = ChatClient::connect(&app, Some("ana")).await.expect("ana1");
    let ana1_conn = ana1.join("chat:tabs", None).await["conn"]
        .as_str()
        .expect("conn")
        .to_owned();
    let mut ana2 = ChatClient::connect(&app, Some("ana")).await.expect("ana2");
    let ana2_conn = ana2.join("chat:tabs", None).await["conn"]
        .as_str()
        .expect("conn")
        .to_owned();
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    let joined = bob.join("chat:tabs", None).await;

    // Act: one of ana's tabs closes; then carol arrives.
    ana1.close().await;
    // Bob's list, kept as a client keeps it, until that tab is gone from it.
    let mut seen_by_bob = MemberList::of(&joined);
    let presence = loop {
        let presence = bob.recv_op("presence").await;
        seen_by_bob.apply(&presence);
        if seen_by_bob.user(&ana1_conn).is_none() {
            break presence;
        }
    };
    let mut carol = ChatClient::connect(&app, Some("carol"))
        .await
        .expect("carol");
    let carol_joined = carol.join("chat:tabs", None).await;

    // Assert
    assert_ne!(ana1_conn, ana2_conn);
    let anas: Vec<&serde_json::Value> = joined["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["user"] == "ana")
        .collect();
    assert_eq!(anas.len(), 2, "{joined}");
    assert_ne!(anas[0]["conn"], anas[1]["conn"]);
    assert_eq!(presence["topic"], "chat:tabs");
    assert_eq!(
        presence["leaves"],
        json!([{"conn": ana1_conn, "user": "ana"}])
    );
    assert_eq!(
        seen_by_bob.names(),
        ["ana", "bob"],
        "ana's other tab stays: {seen_by_bob:?}"
    );
    assert_eq!(seen_by_bob.user(&ana2_conn), Some("ana"));
    let members = &carol_joined["members"];
    let anas: Vec<&serde_json::Value> = members
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["user"] == "ana")
        .collect();
    assert_eq!(anas.len(), 1, "{members}");
    assert_eq!(anas[0]["conn"], ana2_conn.as_str());
    ana2.close().await;
}

#[actix_web::test]
async fn a_slow_consumer_is_closed_and_the_others_stay_fast() {
    // Arrange: a short outbound queue (16 of the messages), no rate
    // limit, large messages.
    let app = spawn_app(
        Backend::Sqlite,
        unlimited(vec![
            ("BAZAAR_WS__MAX_QUEUED_BYTES", "524288"),
            ("BAZAAR_CHAT__MAX_TEXT", "60000"),
        ]),
    )
    .await;
    let topic = "chat:slow";
    let mut slow = ChatClient::connect(&app, Some("slow")).await.expect("slow");
    slow.join(topic, None).await;
    let mut reader = ChatClient::connect(&app, Some("reader"))
        .await
        .expect("reader");
    reader.join(topic, None).await;
    let mut sender = ChatClient::connect(&app, Some("sender"))
        .await
        .expect("sender");
    sender.join(topic, None).await;
    let filler = "x".repeat(32_000);

    // Act: the slow client never reads while 300 large messages go out.
    let mut latencies = Vec::new();
    let mut seqs = Vec::new();
    for i in 0..300 {
        let text = format!("{i} {filler}");
        let started = std::time::Instant::now();
        sender.say(topic, &text).await;
        let m = reader.recv_op("message").await;
        latencies.push(started.elapsed());
        seqs.push(m["seq"].as_u64().expect("seq"));
        assert_eq!(m["text"], text);
        sender.events.clear();
    }
    let mut frames_before_close = 0;
    let ended = loop {
        match slow.next_frame(std::time::Duration::from_secs(10)).await {
            Ok(_) => frames_before_close += 1,
            Err(how) => break how,
        }
    };

    // Assert
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    let max = *latencies.last().expect("latencies");
    eprintln!("slow consumer: p99 {p99:?}, max {max:?}, slow got {frames_before_close} frames");
    assert!(p99 < std::time::Duration::from_millis(100), "p99 {p99:?}");
    assert!(max < std::time::Duration::from_millis(200), "max {max:?}");
    assert!(frames_before_close < 300, "{frames_before_close}");
    assert_eq!(ended, Ended::Closed(Some(1008)));
}

#[actix_web::test]
async fn older_history_pages_backwards_over_http() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, unlimited(vec![])).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:pages", None).await;
    for i in 1..=120 {
        ana.say("chat:pages", &format!("message {i}")).await;
        ana.events.clear();
    }

    // Act
    let (first_status, first) = app
        .get_json("/api/rooms/pages/messages?before=71&limit=50")
        .await;
    let (last_status, last) = app
        .get_json("/api/rooms/pages/messages?before=21&limit=50")
        .await;
    let (zero_status, _) = app
        .get_json("/api/rooms/pages/messages?before=21&limit=0")
        .await;
    let (bad_status, _) = app.get_json("/api/rooms/Bad%20Name/messages").await;
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    let joined = bob.join("chat:pages", None).await;

    // Assert
    assert_eq!(first_status, 200, "{first}");
    assert_eq!(seqs_of(&first["messages"]), (21..=70).collect::<Vec<_>>());
    assert_eq!(first["messages"][0]["text"], "message 21");
    assert_eq!(first["has_more"], true);
    assert_eq!(last_status, 200, "{last}");
    assert_eq!(seqs_of(&last["messages"]), (1..=20).collect::<Vec<_>>());
    assert_eq!(last["has_more"], false);
    assert_eq!(zero_status, 400);
    assert_eq!(bad_status, 400);
    assert_eq!(seqs_of(&joined["history"]), (71..=120).collect::<Vec<_>>());
    assert_eq!(joined["seq"], 120);
}

#[actix_web::test]
async fn typing_indicators_reach_others_and_expire_on_their_own() {
    // Arrange
    let app = spawn_app(
        Backend::Sqlite,
        unlimited(vec![("BAZAAR_CHAT__TYPING_TTL", "1s")]),
    )
    .await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:typing", None).await;
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    bob.join("chat:typing", None).await;

    // Act
    ana.send(json!({"op":"typing","topic":"chat:typing"})).await;
    let typing = bob.recv_op("typing").await;
    let shown = std::time::Instant::now();
    let stopped = bob.recv_op("typing").await;
    let lasted = shown.elapsed();

    // Assert
    assert_eq!(
        typing,
        json!({"op":"typing","topic":"chat:typing","users":["ana"]})
    );
    assert_eq!(
        stopped,
        json!({"op":"typing","topic":"chat:typing","users":[]})
    );
    assert!(lasted < std::time::Duration::from_secs(3), "{lasted:?}");
}

#[actix_web::test]
async fn a_frame_over_the_hard_limit_closes_with_1009() {
    // Arrange
    let app = spawn_app(
        Backend::Sqlite,
        unlimited(vec![
            ("BAZAAR_WS__HARD_FRAME_LIMIT", "65536"),
            ("BAZAAR_WS__SOFT_FRAME_LIMIT", "1024"),
        ]),
    )
    .await;
    let mut c = ChatClient::connect(&app, Some("big")).await.expect("big");
    c.join("chat:lobby", None).await;

    // Act
    let big = format!(
        r#"{{"op":"say","topic":"chat:lobby","text":"{}"}}"#,
        "z".repeat(100_000)
    );
    c.send_text(big).await;
    let ended = loop {
        match c.next_frame(std::time::Duration::from_secs(10)).await {
            Ok(_) => {}
            Err(how) => break how,
        }
    };

    // Assert
    assert_eq!(ended, Ended::Closed(Some(1009)));
}

#[actix_web::test]
async fn signal_is_relayed_only_to_a_member_of_the_topic() {
    // Arrange: ana and bob in chat:p2p, carol elsewhere.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    let ana_conn = ana.join("chat:p2p", None).await["conn"]
        .as_str()
        .expect("conn")
        .to_owned();
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    let bob_conn = bob.join("chat:p2p", None).await["conn"]
        .as_str()
        .expect("conn")
        .to_owned();
    let mut carol = ChatClient::connect(&app, Some("carol"))
        .await
        .expect("carol");
    let carol_conn = carol.join("chat:other", None).await["conn"]
        .as_str()
        .expect("conn")
        .to_owned();

    // Act
    let data = json!({"kind":"offer","sdp":"x"});
    let to_bob = ana
        .request(json!({"op":"signal","topic":"chat:p2p","to":bob_conn,"data":data}))
        .await;
    let relayed = bob.recv_op("signal").await;
    let to_carol = ana
        .request(json!({"op":"signal","topic":"chat:p2p","to":carol_conn,"data":data}))
        .await;

    // Assert
    assert_eq!(to_bob["status"], "ok", "{to_bob}");
    assert_eq!(relayed["from"], ana_conn.as_str());
    assert_eq!(relayed["data"], data);
    assert_eq!(relayed["topic"], "chat:p2p");
    assert_eq!(to_carol["status"], "error");
    assert_eq!(to_carol["body"]["code"], "not_in_topic");
    carol.send(json!({"op":"ping","ref":"p"})).await;
    let frame = carol
        .next_frame(std::time::Duration::from_secs(5))
        .await
        .expect("a frame");
    assert_eq!(frame["op"], "reply", "carol got no signal: {frame}");
}

on_both_backends!(many_clients_keep_per_topic_order);
async fn many_clients_keep_per_topic_order(backend: Backend) {
    // Arrange: ten clients in one room.
    let app = spawn_app(backend, unlimited(vec![])).await;
    let topic = "chat:crowd";
    let mut clients = Vec::new();
    for i in 0..10 {
        let mut c = ChatClient::connect(&app, Some(&format!("user{i}")))
            .await
            .expect("connect");
        c.join(topic, None).await;
        clients.push(c);
    }

    // Act: three of them say 20 messages each at the same time, while
    // everyone reads.
    let runs = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| async move {
            if i < 3 {
                for n in 0..20 {
                    c.say(topic, &format!("user{i} says {n}")).await;
                }
            }
            let mut seqs = Vec::new();
            for _ in 0..60 {
                seqs.push(c.recv_op("message").await["seq"].as_u64().expect("seq"));
            }
            seqs
        });
    let received = futures_util::future::join_all(runs).await;

    // Assert
    for (i, seqs) in received.iter().enumerate() {
        assert_eq!(seqs, &(1..=60).collect::<Vec<_>>(), "client {i}");
    }
}

#[actix_web::test]
async fn sigterm_closes_every_socket_with_1001_and_the_server_exits() {
    let mut app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:lobby", None).await;
    let mut idle = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    let said = ana.say("chat:lobby", "before the restart").await;
    assert_eq!(said["seq"], 1, "{said}");

    let (ana_end, idle_end, exit) = tokio::join!(
        async {
            loop {
                match ana.next_frame(Duration::from_secs(10)).await {
                    Ok(_) => continue,
                    Err(end) => break end,
                }
            }
        },
        async {
            loop {
                match idle.next_frame(Duration::from_secs(10)).await {
                    Ok(_) => continue,
                    Err(end) => break end,
                }
            }
        },
        async {
            // Let both sockets start waiting before the signal.
            tokio::time::sleep(Duration::from_millis(100)).await;
            app.terminate(Duration::from_secs(10)).await
        }
    );
    assert_eq!(ana_end, Ended::Closed(Some(1001)), "a member of a room");
    assert_eq!(idle_end, Ended::Closed(Some(1001)), "a socket in no room");
    let status = exit.unwrap_or_else(|| panic!("the server did not exit; log:\n{}", app.log()));
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        app.log()
    );
    // What was said before the signal is kept.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE text = 'before the restart'")
            .await,
        1
    );
}

/// One masked client frame, as a browser would send it.
fn client_frame(opcode: actix_http::ws::OpCode, fin: bool, payload: &[u8]) -> bytes::BytesMut {
    let mut frame = bytes::BytesMut::new();
    actix_http::ws::Parser::write_message(&mut frame, payload, opcode, fin, true);
    frame
}

/// A WebSocket to `/ws?name=raw` opened by hand, with `then` written in the
/// same write as the handshake, as a client that does not wait for the 101
/// sends it.
struct RawSocket {
    tcp: tokio::net::TcpStream,
    received: bytes::BytesMut,
}

impl RawSocket {
    async fn open(app: &crate::helpers::TestApp, then: &[u8]) -> RawSocket {
        use tokio::io::AsyncWriteExt;
        let addr = app.base.trim_start_matches("http://");
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut first = format!(
            "GET /ws?name=raw HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        first.extend_from_slice(then);
        tcp.write_all(&first).await.expect("handshake");
        let mut socket = RawSocket {
            tcp,
            received: bytes::BytesMut::new(),
        };
        let end = loop {
            if let Some(end) = socket.received.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            socket.read_more().await;
        };
        let head = String::from_utf8_lossy(&socket.received[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let _ = socket.received.split_to(end + 4);
        socket
    }

    async fn read_more(&mut self) {
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            self.tcp.read_buf(&mut self.received),
        )
        .await
        .expect("the server answers in time")
        .expect("read");
        assert!(n > 0, "the server hung up without a close frame");
    }

    async fn write(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.tcp.write_all(bytes).await.expect("write");
    }

    /// The next text frame as JSON, or `Err` with the close code.
    async fn next(&mut self) -> Result<serde_json::Value, u16> {
        use actix_http::ws::{OpCode, Parser};
        loop {
            match Parser::parse(&mut self.received, false, 1 << 20).expect("a valid server frame") {
                Some((_, OpCode::Text, payload)) => {
                    return Ok(serde_json::from_slice(&payload.unwrap_or_default()).expect("json"))
                }
                Some((_, OpCode::Close, payload)) => {
                    let payload = payload.expect("a close code");
                    return Err(u16::from_be_bytes([payload[0], payload[1]]));
                }
                Some(_) => {}
                None => self.read_more().await,
            }
        }
    }

    /// Frames up to the reply to `reference`.
    async fn until_reply(&mut self, reference: &str) -> Vec<serde_json::Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await.expect("open");
            let done = frame["op"] == "reply" && frame["ref"] == reference;
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }
}

#[actix_web::test]
async fn frames_may_arrive_behind_the_handshake_and_in_pieces_and_bad_text_closes_with_1007() {
    use actix_http::ws::OpCode;

    // Arrange: a join sent in the same write as the handshake.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let join = json!({"op": "join", "topic": "chat:raw", "ref": "1"}).to_string();
    let mut socket =
        RawSocket::open(&app, &client_frame(OpCode::Text, true, join.as_bytes())).await;
    let joined = socket.until_reply("1").await;

    // Act: a `say` in three continuation frames, then a text frame that is
    // not UTF-8.
    let text = "héllo in three pieces";
    let say = json!({"op": "say", "topic": "chat:raw", "text": text, "ref": "2"}).to_string();
    let (a, rest) = say.as_bytes().split_at(10);
    let (b, c) = rest.split_at(12);
    let mut pieces = client_frame(OpCode::Text, false, a);
    pieces.extend_from_slice(&client_frame(OpCode::Continue, false, b));
    pieces.extend_from_slice(&client_frame(OpCode::Continue, true, c));
    socket.write(&pieces).await;
    // The reply and the event race each other; both must come.
    let mut said = socket.until_reply("2").await;
    while !said.iter().any(|f| f["op"] == "message") {
        said.push(socket.next().await.expect("open"));
    }
    socket
        .write(&client_frame(OpCode::Text, true, &[b'"', 0xff, 0xfe, b'"']))
        .await;
    let ended = loop {
        if let Err(code) = socket.next().await {
            break code;
        }
    };

    // Assert
    assert_eq!(joined.last().expect("reply")["status"], "ok");
    let reply = said.iter().find(|f| f["op"] == "reply").expect("reply");
    assert_eq!(reply["status"], "ok");
    let message = said
        .iter()
        .find(|f| f["op"] == "message")
        .unwrap_or_else(|| panic!("the message event in {said:?}"));
    assert_eq!(message["text"], text);
    assert_eq!(message["user"], "raw");
    assert_eq!(ended, 1007);
}

#[actix_web::test]
async fn a_frame_declared_over_the_hard_limit_closes_before_it_arrives() {
    // Arrange
    let app = spawn_app(
        Backend::Sqlite,
        unlimited(vec![("BAZAAR_WS__HARD_FRAME_LIMIT", "65536")]),
    )
    .await;
    let mut socket = RawSocket::open(&app, &[]).await;

    // Act: a masked text frame header declaring 1 GiB, and its first bytes.
    let mut header = vec![0x80 | 0x1, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    header.extend_from_slice(&[b'x'; 1024]);
    socket.write(&header).await;
    let ended = loop {
        if let Err(code) = socket.next().await {
            break code;
        }
    };

    // Assert: refused on its header, not after a gigabyte was buffered.
    assert_eq!(ended, 1009);
}

#[actix_web::test]
async fn a_say_sent_just_before_the_close_is_stored() {
    use actix_http::ws::OpCode;

    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let join = json!({"op": "join", "topic": "chat:last", "ref": "1"}).to_string();
    let say = json!({"op": "say", "topic": "chat:last", "text": "last words", "ref": "2"});
    let mut frames = client_frame(OpCode::Text, true, join.as_bytes());
    frames.extend_from_slice(&client_frame(
        OpCode::Text,
        true,
        say.to_string().as_bytes(),
    ));
    frames.extend_from_slice(&client_frame(OpCode::Close, true, &1000u16.to_be_bytes()));

    // Act: join, say and close in one write, as a script piping a line and
    // `/quit` into a client does.
    let mut socket = RawSocket::open(&app, &frames).await;
    let ended = loop {
        if let Err(code) = socket.next().await {
            break code;
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let stored = loop {
        let (status, page) = app.get_json("/api/rooms/last/messages").await;
        assert_eq!(status, 200);
        let texts: Vec<String> = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["text"].as_str().expect("text").to_owned())
            .collect();
        if !texts.is_empty() || std::time::Instant::now() > deadline {
            break texts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Assert
    assert_eq!(ended, 1000);
    assert_eq!(stored, vec!["last words".to_owned()]);
}

#[actix_web::test]
async fn a_crowd_arriving_at_once_is_told_in_a_few_diffs_and_every_list_ends_right() {
    // Arrange: someone already in the room, and a crowd with sockets open.
    const CROWD: usize = 30;
    const LEAVING: usize = 10;
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut host = ChatClient::connect(&app, Some("host")).await.expect("host");
    let host_list = MemberList::of(&host.join("chat:crowd", None).await);
    let mut crowd = Vec::new();
    for i in 0..CROWD {
        let name = format!("guest{i}");
        crowd.push(ChatClient::connect(&app, Some(&name)).await.expect("guest"));
    }

    // Act: they all join at once; then a third of them leave at once.
    let replies =
        futures_util::future::join_all(crowd.iter_mut().map(|c| c.join("chat:crowd", None))).await;
    let mut lists: Vec<MemberList> = replies.iter().map(MemberList::of).collect();
    let staying = crowd.split_off(LEAVING);
    lists.drain(..LEAVING);
    for leaving in crowd {
        leaving.close().await;
    }

    // Assert: the host hears all of it in far fewer diffs than changes, and
    // the host and everyone who stayed end with the same, right list.
    let mut expected: Vec<String> = (LEAVING..CROWD).map(|i| format!("guest{i}")).collect();
    expected.push("host".to_owned());
    expected.sort();
    let mut host_list = host_list;
    let mut diffs = 0;
    while host_list.names() != expected {
        host_list.apply(&host.recv_op("presence").await);
        diffs += 1;
    }
    assert!(
        diffs < CROWD + LEAVING,
        "{diffs} diffs for {} changes: not coalesced",
        CROWD + LEAVING
    );
    for (mut client, mut list) in staying.into_iter().zip(lists) {
        // Each joined partway through; the diffs after its reply finish
        // its list.
        while list.names() != expected {
            list.apply(&client.recv_op("presence").await);
        }
        assert_eq!(list, host_list);
    }
}
