//! Rooms that do not outlive their use, over a real server: joins that fail
//! leave nothing running, one socket holds a bounded number of topics, and
//! `/rooms` pages through the rooms in use and lets empty old ones go.

use std::time::{Duration, Instant};

use bazaar::auction::store::{create_lot, Listing};
use bazaar::auction::{Increments, LotSpec};
use chrono::{TimeDelta, Utc};
use entity::{messages, rooms};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::chat_client::ChatClient;
use crate::cluster_helpers::{ws, Cluster, ClusterOptions};
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};
use crate::on_both_backends;

/// A sample of `/metrics`, read from its text line `name{labels} value`.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let (status, body) = app.get_html("/metrics").await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .expect("a number")
}

/// Scrapes until `series` reads `want`, or fails with what it read.
async fn metric_until(app: &TestApp, series: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = metric(app, series).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rooms `/rooms?page=N` lists, by name, in order.
async fn listed(app: &TestApp, page: u64) -> (Vec<String>, String) {
    let (status, html) = app.get_html(&format!("/rooms?page={page}")).await;
    assert_eq!(status, 200, "{html}");
    let names = html
        .split("<td><a href=\"/rooms/")
        .skip(1)
        .filter_map(|row| row.split('"').next())
        .map(str::to_owned)
        .collect();
    (names, html)
}

/// A running lot, so that joins of a real lot have something to find.
async fn running_lot(app: &TestApp) -> i64 {
    let starts_at = Utc::now() - TimeDelta::seconds(1);
    let listing = Listing {
        title: "A boxed cartridge".into(),
        description: "Mint.".into(),
        spec: LotSpec {
            currency: "EUR".into(),
            starting_cents: 1_000,
            reserve_cents: None,
            increments: Increments::default(),
            starts_at,
            ends_at: starts_at + TimeDelta::minutes(10),
            hard_end: starts_at + TimeDelta::minutes(20),
            soft_close: TimeDelta::zero(),
        },
    };
    create_lot(&app.db, &listing, None, Utc::now())
        .await
        .expect("lot")
        .id
}

#[actix_web::test]
async fn joins_of_lots_that_do_not_exist_leave_no_room_running() {
    // Arrange: a real lot with a watcher, and a guest allowed to ask fast.
    let options = AppOptions {
        env: vec![("BAZAAR_WS__BURST".into(), "1000".into())],
        ..AppOptions::default()
    };
    let app = spawn_app(Backend::Sqlite, options).await;
    let lot = running_lot(&app).await;
    let mut watcher = ChatClient::connect(&app, Some("watcher"))
        .await
        .expect("watcher");
    watcher.join(&format!("auction:{lot}"), None).await;
    let auction_rooms = "bazaar_rooms{kind=\"auction\"}";
    metric_until(&app, auction_rooms, 1.0).await;
    let (rooms_before, _) = listed(&app, 1).await;
    let mut guest = ChatClient::connect(&app, Some("prober"))
        .await
        .expect("guest");

    // Act: 300 joins of lots that do not exist.
    for n in 0..300 {
        let missing = lot + 1_000 + n;
        let reply = guest
            .request(json!({"op":"join","topic":format!("auction:{missing}")}))
            .await;
        assert_eq!(reply["body"]["code"], "no_such_topic", "{reply}");
    }

    // Assert: only the real lot's room runs, and the rooms list is as it
    // was; the guest can still join the real lot, which it could not if the
    // failures had counted against it.
    metric_until(&app, auction_rooms, 1.0).await;
    assert_eq!(metric(&app, "bazaar_topics{kind=\"auction\"}").await, 1.0);
    assert_eq!(listed(&app, 1).await.0, rooms_before);
    let joined = guest.join(&format!("auction:{lot}"), None).await;
    assert_eq!(joined["lot"]["id"], lot);
    assert_eq!(joined["members"].as_array().map(Vec::len), Some(2));
}

/// The topic channels some node of the cluster is subscribed to in Redis.
fn subscribed_channels(cluster: &Cluster) -> Vec<String> {
    let url = format!("redis://127.0.0.1:{}/", cluster.redis_port());
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_connection().expect("connect to redis");
    let mut channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("bazaar:topic:*")
        .query(&mut conn)
        .expect("PUBSUB CHANNELS");
    channels.sort();
    channels
}

#[actix_web::test]
async fn in_a_cluster_joins_of_lots_that_do_not_exist_leave_no_subscription() {
    // Arrange: two nodes; a member in a chat room keeps its channel.
    let options = ClusterOptions {
        env: vec![("BAZAAR_WS__BURST".into(), "1000".into())],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start_with(2, options);
    let mut watcher = ChatClient::connect_to(&ws(cluster.url()), "watcher")
        .await
        .expect("watcher");
    watcher.join("chat:control", None).await;
    let mut guest = ChatClient::connect_to(&ws(cluster.url()), "prober")
        .await
        .expect("guest");

    // Act
    for n in 1..=100 {
        let reply = guest
            .request(json!({"op":"join","topic":format!("auction:{}", 1_000_000 + n)}))
            .await;
        assert_eq!(reply["body"]["code"], "no_such_topic", "{reply}");
    }

    // Assert: Redis carries the chat room's channel and nothing else.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let channels = subscribed_channels(&cluster);
        if channels == ["bazaar:topic:chat:control"] {
            break;
        }
        assert!(Instant::now() < deadline, "still subscribed: {channels:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_lot_room_its_last_watcher_left_closes_and_a_later_join_finds_the_lot() {
    // Arrange
    let options = AppOptions {
        env: vec![("BAZAAR_WS__BURST".into(), "1000".into())],
        ..AppOptions::default()
    };
    let app = spawn_app(Backend::Sqlite, options).await;
    let lot = running_lot(&app).await;
    let topic = format!("auction:{lot}");
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join(&topic, None).await;
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");

    // Act: ana leaves and bob joins at once, over and over: each join may
    // arrive while the room ana emptied is closing.
    for round in 0..40 {
        ana.send(json!({"op":"leave","topic":topic})).await;
        let joined = bob.request(json!({"op":"join","topic":topic})).await;
        assert_eq!(joined["status"], "ok", "round {round}: {joined}");
        bob.send(json!({"op":"leave","topic":topic})).await;
        let joined = ana.request(json!({"op":"join","topic":topic})).await;
        assert_eq!(joined["status"], "ok", "round {round}: {joined}");
    }
    ana.close().await;

    // Assert: nobody is left, so no room runs.
    metric_until(&app, "bazaar_rooms{kind=\"auction\"}", 0.0).await;
}

#[actix_web::test]
async fn a_socket_past_its_topic_cap_is_refused_and_its_topics_still_work() {
    // Arrange: three topics a socket.
    let options = AppOptions {
        env: vec![("BAZAAR_CHAT__MAX_TOPICS_PER_SOCKET".into(), "3".into())],
        ..AppOptions::default()
    };
    let app = spawn_app(Backend::Sqlite, options).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    for topic in ["chat:one", "chat:two", "chat:three"] {
        ana.join(topic, None).await;
    }

    // Act
    let refused = ana.request(json!({"op":"join","topic":"chat:four"})).await;
    let again = ana.request(json!({"op":"join","topic":"chat:two"})).await;
    let said = ana.say("chat:three", "still here").await;
    ana.send(json!({"op":"join","topic":"chat:five"})).await;
    let unreferenced = ana.recv_op("error").await;

    // Assert: the fourth topic is refused with a code, with or without a
    // ref; joining a held topic again and speaking in one still work.
    assert_eq!(refused["status"], "error", "{refused}");
    assert_eq!(refused["body"]["code"], "too_many_topics");
    assert!(
        refused["body"]["message"]
            .as_str()
            .is_some_and(|m| m.contains('3')),
        "{refused}"
    );
    assert_eq!(unreferenced["code"], "too_many_topics");
    assert_eq!(again["status"], "ok", "{again}");
    assert_eq!(said["seq"], 1);
    let (rooms_now, _) = listed(&app, 1).await;
    assert!(!rooms_now.contains(&"four".to_owned()), "{rooms_now:?}");

    // Act: leaving one makes room for another.
    let left = ana.request(json!({"op":"leave","topic":"chat:one"})).await;
    assert_eq!(left["status"], "ok", "{left}");
    let joined = ana.join("chat:four", None).await;

    // Assert
    assert_eq!(joined["seq"], 0);
}

#[actix_web::test]
async fn a_join_with_the_largest_since_is_answered_and_the_room_numbers_on() {
    // Arrange: a room with two messages.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:far", None).await;
    ana.say("chat:far", "one").await;
    ana.say("chat:far", "two").await;
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");

    // Act
    let reply = bob
        .request(json!({"op":"join","topic":"chat:far","since":u64::MAX}))
        .await;
    let said = ana.say("chat:far", "three").await;

    // Assert: nothing was missed past every seq; the room goes on
    // numbering, and bob hears the next message.
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(reply["body"]["history"], json!([]));
    assert_eq!(reply["body"]["seq"], 2);
    assert_eq!(said["seq"], 3);
    let heard = bob.recv_op("message").await;
    assert_eq!(
        (heard["seq"].as_u64(), heard["text"].as_str()),
        (Some(3), Some("three"))
    );
}

on_both_backends!(the_rooms_page_lists_fifty_rooms_a_page_with_links_between_pages);
async fn the_rooms_page_lists_fifty_rooms_a_page_with_links_between_pages(backend: Backend) {
    // Arrange: 120 rooms opened just now.
    let app = spawn_app(backend, AppOptions::default()).await;
    let now = Utc::now();
    let names: Vec<String> = (0..120).map(|i| format!("room-{i:03}")).collect();
    rooms::Entity::insert_many(names.iter().map(|name| rooms::ActiveModel {
        name: Set(name.clone()),
        created_at: Set(now),
        seq_reserved: Set(0),
    }))
    .exec(&app.db)
    .await
    .expect("rooms");

    // Act
    let (first, first_html) = listed(&app, 1).await;
    let (last, last_html) = listed(&app, 3).await;
    let (past_the_end, _) = listed(&app, 99).await;
    let (status, default_page) = app.get_html("/rooms").await;

    // Assert: fifty a page, by name, and links both ways.
    assert_eq!(first, names[..50].to_vec());
    assert!(first_html.contains("<a rel=\"next\" href=\"/rooms?page=2\">"));
    assert!(!first_html.contains("rel=\"prev\""));
    assert!(first_html.contains("Page 1 of 3"));
    assert_eq!(last, names[100..].to_vec());
    assert!(last_html.contains("<a rel=\"prev\" href=\"/rooms?page=2\">"));
    assert!(!last_html.contains("rel=\"next\""));
    assert_eq!(past_the_end, last);
    assert_eq!(status, 200);
    assert!(default_page.contains("Page 1 of 3"));
}

on_both_backends!(an_empty_room_nobody_spoke_in_for_a_week_leaves_the_list);
async fn an_empty_room_nobody_spoke_in_for_a_week_leaves_the_list(backend: Backend) {
    // Arrange: four rooms opened eight days ago. Nobody ever spoke in
    // "quiet"; "stale" was last spoken in eight days ago, "chatty" just now;
    // bob is in "occupied".
    let app = spawn_app(backend, AppOptions::default()).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    for room in ["quiet", "stale", "chatty", "occupied"] {
        ana.join(&format!("chat:{room}"), None).await;
    }
    ana.say("chat:stale", "long ago").await;
    for room in ["quiet", "stale", "chatty", "occupied"] {
        let left = ana
            .request(json!({"op":"leave","topic":format!("chat:{room}")}))
            .await;
        assert_eq!(left["status"], "ok", "{left}");
    }
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");
    bob.join("chat:occupied", None).await;
    let week_ago = Utc::now() - TimeDelta::days(8);
    rooms::Entity::update_many()
        .col_expr(rooms::Column::CreatedAt, Expr::value(week_ago))
        .exec(&app.db)
        .await
        .expect("age the rooms");
    messages::Entity::update_many()
        .col_expr(messages::Column::At, Expr::value(week_ago))
        .filter(messages::Column::Topic.eq("chat:stale"))
        .exec(&app.db)
        .await
        .expect("age the message");
    let (before, _) = listed(&app, 1).await;
    let mut carol = ChatClient::connect(&app, Some("carol"))
        .await
        .expect("carol");
    carol.join("chat:chatty", None).await;
    carol.say("chat:chatty", "fresh").await;
    carol.close().await;

    // Act
    let (after, html) = listed(&app, 1).await;

    // Assert: only the room in use and the one spoken in lately are left,
    // and the page says for how long an empty room stays.
    assert_eq!(before, ["occupied"]);
    assert_eq!(after, ["chatty", "occupied"]);
    assert!(html.contains("over the last 7 days"), "{html}");

    // Act: someone opens the quiet room again.
    let mut dave = ChatClient::connect(&app, Some("dave")).await.expect("dave");
    dave.join("chat:quiet", None).await;

    // Assert: it is listed while someone is in it.
    let (reopened, _) = listed(&app, 1).await;
    assert_eq!(reopened, ["chatty", "occupied", "quiet"]);
}
