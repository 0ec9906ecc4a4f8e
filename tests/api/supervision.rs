//! The fault drill (`BAZAAR_FAULT_PANIC_ONCE_IN`): each supervised actor
//! panics once, at its next piece of work, and the service it gives
//! carries on. Each test asserts what users see afterwards, and that the
//! restart was logged with the actor's name and counted in /metrics.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::accounts::{hidden, Visitor};
use crate::auctions::{bid, bidder, next, running_lot};
use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, spawn_store, AppOptions, Backend, TestApp};
use crate::smtp::{Received, SmtpSink};

/// 2 listing pages of 10 games: 22 tasks.
const LISTINGS: usize = 2;
const PER_LISTING: usize = 10;
const TASKS: i64 = (LISTINGS * (PER_LISTING + 1)) as i64;

fn drill(actor: &str) -> Vec<(String, String)> {
    vec![("BAZAAR_FAULT_PANIC_ONCE_IN".into(), actor.into())]
}

/// `bazaar_actor_restarts_total` for `actor`, as /metrics says it.
async fn restarts(app: &TestApp, actor: &str) -> u64 {
    let (status, text) = app.get_html("/metrics").await;
    assert_eq!(status, 200, "{text}");
    let line = format!("bazaar_actor_restarts_total{{actor=\"{actor}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line}in /metrics:\n{text}"))
}

/// Asserts the drill fired in `actor`: the panic is in the log under the
/// actor's name, and the restart is counted once.
async fn assert_restarted_once(app: &TestApp, actor: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while restarts(app, actor).await == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(restarts(app, actor).await, 1, "log:\n{}", app.log());
    let log = app.log();
    let panic = log
        .lines()
        .find(|l| l.contains("panic in an actor"))
        .unwrap_or_else(|| panic!("the panic is not in the log:\n{log}"));
    assert!(panic.contains(actor), "{panic}");
    assert!(panic.contains("fault drill"), "{panic}");
    assert!(
        log.lines()
            .any(|l| l.contains("actor restarted") && l.contains(actor)),
        "{log}"
    );
}

/// A crawl of a small store, with one worker, under the drill for `actor`:
/// every task is done once and every game is there.
async fn a_crawl_completes_after(actor: &str) {
    // Arrange
    let store = spawn_store(LISTINGS, PER_LISTING, Duration::from_millis(20));
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            sites: Some(store.sites(4)),
            env: drill(actor),
            ..Default::default()
        },
    )
    .await;
    let _worker = app.spawn_worker("steady", 4, &[]);

    // Act
    let id = app.start_crawl().await;
    let report = app.wait_crawl(id, Duration::from_secs(60)).await;

    // Assert
    assert_eq!(report["tasks"]["done"], TASKS, "{report}");
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM offers").await,
        (LISTINGS * PER_LISTING) as i64
    );
    assert_restarted_once(&app, actor).await;
}

#[actix_web::test]
async fn a_dispatcher_that_panics_is_restarted_and_the_crawl_completes() {
    a_crawl_completes_after("dispatcher").await;
}

#[actix_web::test]
async fn a_merger_that_panics_is_restarted_and_the_crawl_completes() {
    a_crawl_completes_after("merger").await;
}

#[actix_web::test]
async fn a_scheduler_that_panics_refuses_that_start_and_takes_the_next() {
    // Arrange
    let store = spawn_store(LISTINGS, PER_LISTING, Duration::from_millis(20));
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            sites: Some(store.sites(4)),
            local_workers: 1,
            env: drill("scheduler"),
            ..Default::default()
        },
    )
    .await;

    // Act: the first start is the message it panics on.
    let mut refused = app
        .client
        .post(format!("{}/api/crawls", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .expect("POST /api/crawls");
    let id = app.start_crawl().await;
    let report = app.wait_crawl(id, Duration::from_secs(60)).await;

    // Assert: told to try again, and the second start ran the crawl.
    assert_eq!(refused.status().as_u16(), 503);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("try again")),
        "{body}"
    );
    assert_eq!(report["tasks"]["done"], TASKS, "{report}");
    assert_eq!(app.count("SELECT COUNT(*) FROM crawls").await, 1);
    assert_restarted_once(&app, "scheduler").await;
}

#[actix_web::test]
async fn a_registry_that_panics_fails_one_join_and_keeps_its_rooms() {
    // Arrange: a room in use before the registry panics.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: drill("registry"),
            ..Default::default()
        },
    )
    .await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    let first = ana.request(json!({"op":"join","topic":"chat:lobby"})).await;

    // Act: the join it panicked on is asked again, and another arrives.
    ana.join("chat:lobby", None).await;
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    let joined = bob.join("chat:lobby", None).await;
    let said = ana.say("chat:lobby", "still here").await;

    // Assert
    assert_eq!(first["status"], "error", "{first}");
    assert_eq!(first["body"]["code"], "internal", "{first}");
    assert_eq!(
        joined["members"].as_array().map(Vec::len),
        Some(2),
        "{joined}"
    );
    assert_eq!(said["seq"], 1);
    let message = bob.recv_op("message").await;
    assert_eq!(message["text"], "still here");
    assert_restarted_once(&app, "registry").await;
}

#[actix_web::test]
async fn a_room_that_panics_refuses_that_say_and_numbers_on_without_a_gap() {
    // Arrange: two members in a room.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: drill("room"),
            ..Default::default()
        },
    )
    .await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:lobby", None).await;
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    bob.join("chat:lobby", None).await;

    // Act: the first say is the message the room panics on.
    let refused = ana
        .request(json!({"op":"say","topic":"chat:lobby","text":"lost"}))
        .await;
    let mut seqs = Vec::new();
    for text in ["one", "two", "three"] {
        seqs.push(ana.say("chat:lobby", text).await["seq"].clone());
    }

    // Assert: the sender heard; the room kept its members and numbers
    // 1, 2, 3 with nothing skipped or given twice.
    assert_eq!(refused["status"], "error", "{refused}");
    assert_eq!(refused["body"]["code"], "internal", "{refused}");
    assert_eq!(seqs, [json!(1), json!(2), json!(3)]);
    for (seq, text) in [(1, "one"), (2, "two"), (3, "three")] {
        let message = bob.recv_op("message").await;
        assert_eq!(
            (message["seq"].clone(), message["text"].clone()),
            (json!(seq), json!(text))
        );
    }
    let stored = app
        .rows("SELECT seq, text FROM messages WHERE topic = 'chat:lobby' ORDER BY seq")
        .await;
    assert_eq!(
        stored,
        [["1", "one"], ["2", "two"], ["3", "three"]].map(|r| r.map(String::from).to_vec())
    );
    // A member joining now starts from the same place.
    let mut cy = ChatClient::connect(&app, Some("cy")).await.expect("cy");
    assert_eq!(cy.join("chat:lobby", None).await["seq"], 3);
    assert_restarted_once(&app, "room").await;
}

#[actix_web::test]
async fn a_lot_room_that_panics_refuses_that_bid_and_takes_the_next_in_order() {
    // Arrange: a running lot, two bidders and a guest watching.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: drill("lot"),
            ..Default::default()
        },
    )
    .await;
    let topic = running_lot(&app).await;
    let mut ana = bidder(&app, "ana").await;
    let mut bob = bidder(&app, "bob").await;
    let mut guest = ChatClient::connect(&app, Some("gus")).await.expect("guest");
    for client in [&mut ana, &mut bob, &mut guest] {
        client.join(&topic, None).await;
    }

    // Act: the first bid is the message the room panics on.
    let refused = bid(&mut ana, &topic, 1_000, None).await;
    let first = bid(&mut ana, &topic, 1_000, None).await;
    let second = bid(&mut bob, &topic, 1_500, None).await;

    // Assert: the bidder heard; the next bids went through in order and
    // every watcher saw each once.
    assert_eq!(refused["status"], "error", "{refused}");
    assert_eq!(refused["body"]["code"], "internal", "{refused}");
    assert_eq!(first["body"]["standing"], "leading", "{first}");
    assert_eq!(second["body"]["standing"], "leading", "{second}");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = next(&mut guest, "bid", Duration::from_secs(5)).await;
        seen.push(event["lot"]["current_cents"].clone());
    }
    assert_eq!(seen, [json!(1_000), json!(1_500)]);
    assert_eq!(
        app.rows("SELECT amount_cents FROM bids ORDER BY seq").await,
        [["1000"], ["1500"]].map(|r| r.map(String::from).to_vec())
    );
    assert_restarted_once(&app, "lot").await;
}

#[actix_web::test]
async fn a_message_writer_that_panics_loses_no_message() {
    // Arrange
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: drill("writer"),
            ..Default::default()
        },
    )
    .await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:lobby", None).await;

    // Act: the first message's write is the one the writer panics on.
    let first = ana.say("chat:lobby", "one").await;
    let second = ana.say("chat:lobby", "two").await;

    // Assert: both answered once stored, in order.
    assert_eq!(
        (first["seq"].clone(), second["seq"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(
        app.rows("SELECT seq, text FROM messages ORDER BY seq")
            .await,
        [["1", "one"], ["2", "two"]].map(|r| r.map(String::from).to_vec())
    );
    assert_restarted_once(&app, "writer").await;
}

#[actix_web::test]
async fn a_session_hub_that_panics_still_signs_out_every_socket() {
    // Arrange: Ana signed in, with a socket in a room.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: drill("hub"),
            ..Default::default()
        },
    )
    .await;
    let mut ana = Visitor::new(&app);
    assert_eq!(
        ana.register("ana", "Ana", "correct horse").await.status,
        303
    );
    let mut tab = ChatClient::connect_with_cookie(&app, &ana.cookie_header())
        .await
        .expect("the cookie is an identity");
    tab.join("chat:lobby", None).await;

    // Act: the logout's notice is the message the hub panics on.
    let csrf = hidden(&ana.get("/account").await.body, "csrf").expect("token");
    assert_eq!(ana.post("/logout", &[("csrf", &csrf)]).await.status, 303);

    // Assert: the socket heard it all the same.
    let session = tab.recv_op("session").await;
    assert!(session["user"].is_null(), "{session}");
    assert_restarted_once(&app, "hub").await;
}

#[actix_web::test]
async fn a_mailer_that_panics_sends_each_mail_once() {
    // Arrange
    let sink = SmtpSink::start();
    let mut env = drill("mailer");
    for (key, value) in [
        ("BAZAAR_MAIL__TRANSPORT", "smtp".to_owned()),
        ("BAZAAR_MAIL__SMTP__HOST", "127.0.0.1".to_owned()),
        ("BAZAAR_MAIL__SMTP__PORT", sink.port.to_string()),
        ("BAZAAR_MAIL__SMTP__SECURITY", "none".to_owned()),
        ("BAZAAR_MAIL__TICK", "50ms".to_owned()),
        ("BAZAAR_MAIL__LEASE", "1s".to_owned()),
    ] {
        env.push((key.into(), value));
    }
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env,
            ..Default::default()
        },
    )
    .await;

    // Act: the Mailer panics after the round that sent the first mail.
    for email in ["ana@example.com", "bob@example.com"] {
        let mut visitor = Visitor::new(&app);
        let csrf = hidden(&visitor.get("/").await.body, "csrf").expect("token");
        let page = visitor
            .post("/subscribe", &[("csrf", &csrf), ("email", email)])
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        sink.wait_for(1).await;
    }
    sink.wait_for(2).await;
    // Longer than a lease: a mail the restart cut off would be sent again.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Assert
    let mut to: Vec<String> = sink
        .received()
        .iter()
        .map(|raw| Received::parse(raw).header("To").unwrap_or_default())
        .collect();
    to.sort();
    assert_eq!(to, ["ana@example.com", "bob@example.com"]);
    assert_eq!(
        app.rows("SELECT status, attempts FROM outbox ORDER BY id")
            .await,
        [["sent", "1"], ["sent", "1"]].map(|r| r.map(String::from).to_vec())
    );
    assert_restarted_once(&app, "mailer").await;
}
