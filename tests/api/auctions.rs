//! Live auction rooms over real sockets: accounts bid (directly and by
//! proxy), every watcher sees each accepted bid once and in order, lots open
//! and close on schedule, and the database agrees with what was said.

use std::time::Duration;

use bazaar::auction::store::{create_lot, Listing};
use bazaar::auction::{Increments, LotSpec};
use chrono::{TimeDelta, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::accounts::Visitor;
use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};

/// A lot from 10.00 EUR, opening in `opens_in` and ending `runs` later.
pub(crate) async fn lot(
    app: &TestApp,
    opens_in: TimeDelta,
    runs: TimeDelta,
    soft_close: TimeDelta,
    reserve_cents: Option<i64>,
) -> i64 {
    let starts_at = Utc::now() + opens_in;
    let listing = Listing {
        title: "A boxed <em>Zelda</em> cartridge".into(),
        description: "Mint.".into(),
        spec: LotSpec {
            currency: "EUR".into(),
            starting_cents: 1_000,
            reserve_cents,
            increments: Increments::default(),
            starts_at,
            ends_at: starts_at + runs,
            hard_end: starts_at + runs + TimeDelta::seconds(30),
            soft_close,
        },
    };
    create_lot(&app.db, &listing, None, Utc::now())
        .await
        .expect("lot")
        .id
}

/// The topic of a lot that opened a moment ago and runs for a minute.
pub(crate) async fn running_lot(app: &TestApp) -> String {
    let id = lot(
        app,
        TimeDelta::milliseconds(-100),
        TimeDelta::seconds(60),
        TimeDelta::zero(),
        None,
    )
    .await;
    format!("auction:{id}")
}

/// A logged-in account's socket.
pub(crate) async fn bidder(app: &TestApp, name: &str) -> ChatClient {
    let mut visitor = Visitor::new(app);
    let page = visitor.register(name, name, "correct horse").await;
    assert_eq!(page.status, 303, "{}", page.body);
    ChatClient::connect_with_cookie(app, &visitor.cookie_header())
        .await
        .expect("socket")
}

/// The next frame with `op`, skipping others.
pub(crate) async fn next(client: &mut ChatClient, op: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = client
            .next_frame(left.max(Duration::from_millis(1)))
            .await
            .unwrap_or_else(|end| panic!("socket ended waiting for {op}: {end:?}"));
        if frame["op"] == op {
            return frame;
        }
    }
}

pub(crate) async fn bid(
    client: &mut ChatClient,
    topic: &str,
    amount: i64,
    max: Option<i64>,
) -> Value {
    let mut frame = json!({"op": "bid", "topic": topic, "amount_cents": amount});
    if let Some(max) = max {
        frame["max_cents"] = json!(max);
    }
    client.request(frame).await
}

#[actix_web::test]
async fn a_whole_auction_with_a_proxy_war_ends_sold_to_the_highest_maximum() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let id = lot(
        &app,
        TimeDelta::milliseconds(800),
        TimeDelta::seconds(4),
        TimeDelta::zero(),
        None,
    )
    .await;
    let topic = format!("auction:{id}");
    let mut ana = bidder(&app, "ana").await;
    let mut bob = bidder(&app, "bob").await;
    let mut guest = ChatClient::connect(&app, Some("gus")).await.expect("guest");

    let joined = ana.join(&topic, None).await;
    assert_eq!(joined["lot"]["status"], "scheduled", "{joined}");
    assert_eq!(joined["lot"]["title"], "A boxed <em>Zelda</em> cartridge");
    assert!(joined["server_time"].is_string());
    assert!(
        joined["lot"].get("reserve_cents").is_none(),
        "the reserve is hidden"
    );
    bob.join(&topic, None).await;
    guest.join(&topic, None).await;

    // Too early: the lot is not open.
    let early = bid(&mut ana, &topic, 1_000, None).await;
    assert_eq!(early["body"]["code"], "lot_not_open", "{early}");
    // Guests watch; they cannot bid.
    let guest_bid = bid(&mut guest, &topic, 1_000, None).await;
    assert_eq!(guest_bid["body"]["code"], "not_logged_in", "{guest_bid}");

    let started = next(&mut guest, "started", Duration::from_secs(5)).await;
    assert_eq!(started["lot"]["status"], "running", "{started}");

    // Ana: 10.00 with a proxy up to 50.00. Bob: 30.00, beaten at once by
    // Ana's proxy. Bob: up to 60.00, leads at 51.00; Ana hears `outbid`.
    let first = bid(&mut ana, &topic, 1_000, Some(5_000)).await;
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(first["body"]["standing"], "leading");
    let second = bid(&mut bob, &topic, 3_000, None).await;
    assert_eq!(second["body"]["standing"], "outbid", "{second}");
    assert_eq!(second["body"]["lot"]["current_cents"], 3_100);
    assert_eq!(second["body"]["lot"]["leader_name"], "ana");
    let third = bid(&mut bob, &topic, 5_100, Some(6_000)).await;
    assert_eq!(third["body"]["standing"], "leading", "{third}");
    assert_eq!(third["body"]["lot"]["current_cents"], 5_100);
    let outbid = next(&mut ana, "outbid", Duration::from_secs(5)).await;
    assert_eq!(outbid["amount_cents"], 5_100, "{outbid}");

    // A leader who does not raise their maximum is told so.
    let again = bid(&mut bob, &topic, 5_200, None).await;
    assert_eq!(again["body"]["code"], "own_bid_is_highest", "{again}");
    // Bad amounts change nothing.
    for (amount, code) in [
        (-5, "invalid_amount"),
        (2_000_000_000_000, "invalid_amount"),
        (100, "bid_too_low"),
    ] {
        let refused = bid(&mut ana, &topic, amount, None).await;
        assert_eq!(refused["body"]["code"], code, "{amount}: {refused}");
    }
    let fractional = ana
        .request(json!({"op": "bid", "topic": topic, "amount_cents": 12.5}))
        .await;
    assert_eq!(fractional["status"], "error", "{fractional}");

    // The watcher saw three bid events, in seq order, then the end.
    let mut seqs = Vec::new();
    let finished = loop {
        let frame = guest
            .next_frame(Duration::from_secs(10))
            .await
            .expect("frames until the end");
        match frame["op"].as_str() {
            Some("bid") => seqs.push(frame["seq"].as_u64().expect("seq")),
            Some("finished") => break frame,
            _ => {}
        }
    };
    assert_eq!(seqs.len(), 3, "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(finished["outcome"], "sold", "{finished}");
    assert_eq!(finished["winner"], "bob");
    assert_eq!(finished["final_cents"], 5_100);
    assert!(finished["seq"].as_u64() > seqs.last().copied());

    // The database agrees: the winner, the price, and every row of the war.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM lots l JOIN users u ON u.id = l.winner_id \
             WHERE l.id = {id} AND u.name = 'bob' AND l.final_cents = 5100 AND l.outcome = 'sold'"
        ))
        .await,
        1
    );
    let rows = app
        .count(&format!("SELECT COUNT(*) FROM bids WHERE lot_id = {id}"))
        .await;
    assert!(rows >= 4, "every price move is a row: {rows}");
    // After the end, bids are refused.
    let late = bid(&mut bob, &topic, 9_000, None).await;
    assert_eq!(late["body"]["code"], "lot_not_open", "{late}");
}

#[actix_web::test]
async fn a_bid_near_the_end_extends_it_and_a_bid_after_the_end_is_refused() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let id = lot(
        &app,
        TimeDelta::milliseconds(-100),
        TimeDelta::milliseconds(2_100),
        TimeDelta::seconds(3),
        Some(2_000),
    )
    .await;
    let topic = format!("auction:{id}");
    let mut ana = bidder(&app, "ana").await;
    let joined = ana.join(&topic, None).await;
    let planned_end = joined["lot"]["ends_at"].as_str().expect("end").to_owned();
    if joined["lot"]["status"] != "running" {
        next(&mut ana, "started", Duration::from_secs(5)).await;
    }

    // Inside the 3 s window: the end moves to now + 3 s.
    let extended = bid(&mut ana, &topic, 1_500, None).await;
    assert_eq!(extended["status"], "ok", "{extended}");
    let new_end = extended["body"]["lot"]["ends_at"].as_str().expect("end");
    assert!(
        new_end > planned_end.as_str(),
        "{new_end} after {planned_end}"
    );
    assert_eq!(extended["body"]["lot"]["reserve_met"], false);

    // The reserve (20.00) is never met: the lot ends unsold.
    let finished = next(&mut ana, "finished", Duration::from_secs(10)).await;
    assert_eq!(finished["outcome"], "reserve_not_met", "{finished}");
    assert!(finished["winner"].is_null());
    let end = chrono::DateTime::parse_from_rfc3339(new_end).expect("rfc3339");
    assert!(Utc::now() >= end, "closed no earlier than the extended end");
    let after = bid(&mut ana, &topic, 5_000, None).await;
    assert_eq!(after["body"]["code"], "lot_not_open", "{after}");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM lots WHERE id = {id} AND outcome = 'reserve_not_met' AND winner_id IS NULL"
        ))
        .await,
        1
    );
}

#[actix_web::test]
async fn logging_out_takes_a_bidder_out_of_every_lot_in_every_tab() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let first = lot(
        &app,
        TimeDelta::seconds(60),
        TimeDelta::seconds(60),
        TimeDelta::zero(),
        None,
    )
    .await;
    let second = lot(
        &app,
        TimeDelta::seconds(60),
        TimeDelta::seconds(60),
        TimeDelta::zero(),
        None,
    )
    .await;
    let mut ana = Visitor::new(&app);
    assert_eq!(
        ana.register("ana", "Ana", "correct horse").await.status,
        303
    );
    let mut tabs = Vec::new();
    for _ in 0..2 {
        let mut tab = ChatClient::connect_with_cookie(&app, &ana.cookie_header())
            .await
            .expect("tab");
        tab.join(&format!("auction:{first}"), None).await;
        tab.join(&format!("auction:{second}"), None).await;
        tabs.push(tab);
    }
    let mut watcher = ChatClient::connect(&app, Some("wanda"))
        .await
        .expect("watcher");
    for id in [first, second] {
        let joined = watcher.join(&format!("auction:{id}"), None).await;
        let anas = joined["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter(|m| m["user"] == "Ana")
            .count();
        assert_eq!(anas, 2, "{joined}");
    }
    let csrf = crate::accounts::hidden(&ana.get("/account").await.body, "csrf").expect("token");
    assert_eq!(ana.post("/logout", &[("csrf", &csrf)]).await.status, 303);
    for tab in &mut tabs {
        let session = next(tab, "session", Duration::from_secs(5)).await;
        assert!(session["user"].is_null());
    }
    let mut left = Vec::new();
    while left.len() < 4 {
        let presence = next(&mut watcher, "presence", Duration::from_secs(5)).await;
        for leave in presence["leaves"].as_array().expect("leaves") {
            left.push(format!("{} {}", presence["topic"], leave["conn"]));
        }
    }
    left.sort();
    left.dedup();
    assert_eq!(left.len(), 4, "{left:?}");
}

/// Two server processes on one PostgreSQL database, bidders on both: the
/// database alone must keep the auction consistent.
#[actix_web::test]
async fn concurrent_bidders_through_two_servers_keep_one_consistent_auction() {
    let one = spawn_app(Backend::Postgres, AppOptions::default()).await;
    let two = one.spawn_sibling().await;
    let id = lot(
        &one,
        TimeDelta::milliseconds(-500),
        TimeDelta::seconds(60),
        TimeDelta::zero(),
        None,
    )
    .await;
    let topic = format!("auction:{id}");

    // Six bidders, alternating servers; their cookies work on both nodes.
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut visitor = Visitor::new(&one);
        let name = format!("bidder{i}");
        assert_eq!(
            visitor.register(&name, &name, "correct horse").await.status,
            303
        );
        let node = if i % 2 == 0 { &one } else { &two };
        let mut socket = ChatClient::connect_with_cookie(node, &visitor.cookie_header())
            .await
            .expect("socket");
        let joined = socket.join(&topic, None).await;
        if joined["lot"]["status"] != "running" {
            next(&mut socket, "started", Duration::from_secs(5)).await;
        }
        clients.push(socket);
    }

    // Each bids 15 times at about the minimum it last heard, some by proxy.
    let runs = clients.into_iter().enumerate().map(|(i, mut socket)| {
        let topic = topic.clone();
        async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            let mut guess = 1_000 + i as i64 * 10;
            for n in 0..15 {
                let max = (n % 4 == 0).then_some(guess + 300);
                let reply = bid(&mut socket, &topic, guess, max).await;
                if reply["status"] == "ok" {
                    accepted.push(reply["body"]["seq"].as_u64().expect("seq"));
                    guess = reply["body"]["lot"]["min_next_cents"]
                        .as_i64()
                        .expect("min");
                } else {
                    let code = reply["body"]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    assert!(
                        matches!(code.as_str(), "bid_too_low" | "own_bid_is_highest"),
                        "unexpected refusal {reply}"
                    );
                    refused += 1;
                    guess += 150;
                }
            }
            (accepted, refused)
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let mut ok_seqs: Vec<u64> = results.iter().flat_map(|(a, _)| a.clone()).collect();
    ok_seqs.sort_unstable();
    assert!(
        ok_seqs.len() >= 10,
        "enough bids were accepted: {results:?}"
    );

    // Every ok reply has its rows, every row had its ok reply (a silent
    // raise is an ok with no row), and rows rise in seq and in amount.
    let rows = one
        .db
        .query_all(sea_orm::Statement::from_string(
            one.db.get_database_backend(),
            format!(
                "SELECT seq, amount_cents, user_id FROM bids WHERE lot_id = {id} ORDER BY seq, ord"
            ),
        ))
        .await
        .expect("rows");
    let rows: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "seq").expect("seq"),
                r.try_get("", "amount_cents").expect("amount"),
                r.try_get("", "user_id").expect("user"),
            )
        })
        .collect();
    let mut row_seqs: Vec<u64> = rows.iter().map(|r| r.0 as u64).collect();
    row_seqs.dedup();
    for seq in &row_seqs {
        assert!(ok_seqs.contains(seq), "row seq {seq} had no ok reply");
    }
    let unique: std::collections::BTreeSet<u64> = ok_seqs.iter().copied().collect();
    assert_eq!(unique.len(), ok_seqs.len(), "no two ok replies share a seq");
    // Within one bid's rows a tie is possible (equal maximums: the earlier
    // bidder keeps the lead at that amount); the price each accepted bid
    // leaves strictly rises.
    assert!(
        rows.windows(2).all(|w| w[0].1 <= w[1].1),
        "amounts never fall in seq order: {rows:?}"
    );
    let prices: Vec<(i64, i64)> = row_seqs
        .iter()
        .map(|seq| {
            let last = rows.iter().rev().find(|r| r.0 as u64 == *seq).expect("row");
            (last.0, last.1)
        })
        .collect();
    assert!(
        prices
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
        "each accepted bid raises the price: {prices:?}"
    );
    // One leader: the lot's, who placed the last row.
    let leader = one
        .count(&format!("SELECT leader_id FROM lots WHERE id = {id}"))
        .await;
    assert_eq!(rows.last().map(|r| r.2), Some(leader));
    let version = one
        .count(&format!("SELECT version FROM lots WHERE id = {id}"))
        .await;
    assert_eq!(
        version as u64,
        ok_seqs.last().copied().unwrap_or_default(),
        "the last ok reply is the lot's version"
    );
}

#[actix_web::test]
async fn watchers_see_an_admin_cancel_the_lot() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let id = lot(
        &app,
        TimeDelta::seconds(60),
        TimeDelta::seconds(60),
        TimeDelta::zero(),
        None,
    )
    .await;
    let mut watcher = ChatClient::connect(&app, Some("wanda"))
        .await
        .expect("watcher");
    let joined = watcher.join(&format!("auction:{id}"), None).await;
    let seq = joined["seq"].as_u64().expect("seq");
    let mut admin = crate::auction_pages::account(&app, "root", true).await;
    let page = admin.get(&format!("/auctions/{id}")).await;
    let csrf = crate::accounts::hidden(&page.body, "csrf").expect("cancel form token");
    let cancelled = admin
        .post(&format!("/auctions/{id}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(cancelled.status, 303, "{}", cancelled.body);
    let event = next(&mut watcher, "lot", Duration::from_secs(5)).await;
    assert_eq!(event["lot"]["status"], "cancelled", "{event}");
    assert!(event["seq"].as_u64() > Some(seq));
}

#[actix_web::test]
async fn a_request_of_the_wrong_kind_for_a_topic_says_so_instead_of_join_first() {
    // Arrange: Ana is in a running lot and in a chat room.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let topic = running_lot(&app).await;
    let mut ana = bidder(&app, "ana").await;
    ana.join(&topic, None).await;
    ana.join("chat:lobby", None).await;

    // Act
    let said = ana
        .request(json!({"op": "say", "topic": topic, "text": "mine!"}))
        .await;
    let bid_in_chat = bid(&mut ana, "chat:lobby", 1_000, None).await;

    // Assert
    assert_eq!(said["body"]["code"], "bad_topic", "{said}");
    assert!(
        said["body"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("takes bids")),
        "{said}"
    );
    assert_eq!(bid_in_chat["body"]["code"], "bad_topic", "{bid_in_chat}");
}
