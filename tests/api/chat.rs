//! Chat rooms over real sockets (PROTOCOL §1): order, resume, presence and
//! the limits a connection lives under.

use serde_json::json;

use crate::chat_client::{ChatClient, Ended};
use crate::helpers::{spawn_app, AppOptions, Backend};

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

#[actix_web::test]
async fn a_client_that_drops_and_resumes_with_since_misses_nothing() {
    // Arrange: bob has seen seq 1, then drops.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
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
    let seqs: Vec<u64> = resumed["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (2..=8).collect::<Vec<_>>());
    assert_eq!(resumed["seq"], 8);
    assert!(resumed.get("truncated").is_none(), "{resumed}");
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
