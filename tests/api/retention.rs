//! Retention on a real server's database, on SQLite and PostgreSQL: a pass
//! keeps exactly what the settings say, to the millisecond at each limit;
//! `bazaar admin prune --dry-run` and `/admin/storage` show what it would
//! remove; the server's own passes are counted in `/metrics`; and a resume
//! from before what a room keeps says `truncated`.

use std::process::Command;
use std::time::{Duration, Instant};

use bazaar::config::RetentionSettings;
use bazaar::retention;
use chrono::{DateTime, DurationRound, NaiveTime, TimeDelta, Utc};
use entity::crawls::CrawlStatus;
use entity::outbox::{MailKind, MailStatus};
use entity::subscriptions::SubscriptionStatus;
use entity::tasks::{TaskKind, TaskState};
use entity::{
    audit_log, crawls, games, messages, outbox, price_points, sessions, subscriptions,
    task_attempts, tasks, users,
};
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use serde_json::Value;

use crate::auction_pages::account;
use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};
use crate::on_both_backends;

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

fn ms(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

async fn message(db: &DatabaseConnection, topic: &str, seq: i64, at: DateTime<Utc>) {
    messages::ActiveModel {
        topic: Set(topic.to_owned()),
        seq: Set(seq),
        user_name: Set("ana".to_owned()),
        text: Set(format!("message {seq}")),
        at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a message");
}

async fn game(db: &DatabaseConnection, now: DateTime<Utc>) -> i64 {
    games::ActiveModel {
        title: Set("Hollow Knight".to_owned()),
        norm_title: Set("hollow knight".to_owned()),
        ext_key: Set(None),
        best_cents: Set(Some(1299)),
        regular_cents: Set(Some(1499)),
        currency: Set(Some("EUR".to_owned())),
        discount_pct: Set(0),
        low_cents: Set(Some(999)),
        store_count: Set(3),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a game")
    .id
}

async fn point(db: &DatabaseConnection, game: i64, store: &str, cents: i64, at: DateTime<Utc>) {
    price_points::ActiveModel {
        game_id: Set(game),
        store: Set(store.to_owned()),
        price_cents: Set(cents),
        currency: Set("EUR".to_owned()),
        at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a price point");
}

async fn crawl(db: &DatabaseConnection, at: DateTime<Utc>) -> i64 {
    crawls::ActiveModel {
        status: Set(CrawlStatus::Finished),
        trigger: Set("schedule".to_owned()),
        started_at: Set(at),
        finished_at: Set(Some(at)),
        digested_at: Set(Some(at)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a crawl")
    .id
}

/// A task of `crawl` in `state`, with `attempts` attempt rows.
async fn task(db: &DatabaseConnection, crawl: i64, n: u32, state: TaskState, attempts: i32) -> i64 {
    let at = Utc::now();
    let id = tasks::ActiveModel {
        crawl_id: Set(crawl),
        kind: Set(TaskKind::Page),
        site: Set("pixelbay".to_owned()),
        url: Set(format!("http://127.0.0.1/demo/pixelbay/game/{n}")),
        host: Set("127.0.0.1".to_owned()),
        state: Set(state),
        attempts: Set(attempts),
        not_before: Set(at),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a task")
    .id;
    for attempt in 1..=attempts {
        task_attempts::ActiveModel {
            task_id: Set(id),
            attempt: Set(attempt),
            lease_token: Set(format!("t{id}-a{attempt}")),
            worker: Set("w1".to_owned()),
            started_at: Set(at),
            finished_at: Set(Some(at)),
            outcome: Set(Some("done".to_owned())),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("insert an attempt");
    }
    id
}

async fn mail(db: &DatabaseConnection, key: &str, status: MailStatus, created: DateTime<Utc>) {
    let sent = (status == MailStatus::Sent).then_some(created);
    outbox::ActiveModel {
        key: Set(key.to_owned()),
        kind: Set(MailKind::Digest),
        recipient: Set("ana@example.org".to_owned()),
        subject: Set("New prices".to_owned()),
        text_body: Set("Prices moved.".to_owned()),
        html_body: Set(None),
        headers: Set(serde_json::json!({})),
        status: Set(status.to_owned()),
        attempts: Set(1),
        next_attempt_at: Set(created),
        created_at: Set(created),
        sent_at: Set(sent),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a mail");
}

async fn subscription(
    db: &DatabaseConnection,
    email: &str,
    status: SubscriptionStatus,
    expires: DateTime<Utc>,
) {
    subscriptions::ActiveModel {
        email: Set(email.to_owned()),
        topic: Set("digest".to_owned()),
        game_id: Set(None),
        target_cents: Set(None),
        pending_target_cents: Set(None),
        status: Set(status.to_owned()),
        token_hash: Set(Some(format!("hash-{email}"))),
        token_expires_at: Set(Some(expires)),
        confirm_sent_at: Set(Some(expires)),
        confirms_sent: Set(1),
        armed: Set(true),
        fired: Set(0),
        created_at: Set(expires),
        confirmed_at: Set((status == SubscriptionStatus::Confirmed).then_some(expires)),
        unsubscribed_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a subscription");
}

async fn audit(db: &DatabaseConnection, at: DateTime<Utc>) {
    audit_log::ActiveModel {
        at: Set(at),
        user_id: Set(None),
        user_name: Set("root".to_owned()),
        action: Set("cancel_task".to_owned()),
        object_kind: Set("task".to_owned()),
        object_id: Set(Some("1".to_owned())),
        detail: Set(None),
        address: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert an audit row");
}

/// The server under test, with the background passes off: each test runs
/// its passes itself.
async fn quiet_app(backend: Backend, env: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("BAZAAR_RETENTION__EVERY".to_owned(), "0s".to_owned())];
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let options = AppOptions {
        env: all,
        ..AppOptions::default()
    };
    spawn_app(backend, options).await
}

/// One column of every row, as text.
async fn column(app: &TestApp, sql: &str) -> Vec<String> {
    app.rows(sql)
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

on_both_backends!(a_pass_keeps_exactly_what_the_settings_say);
async fn a_pass_keeps_exactly_what_the_settings_say(backend: Backend) {
    // Arrange: rows on both sides of every limit, to the millisecond.
    let app = quiet_app(backend, &[]).await;
    let db = &app.db;
    let settings = RetentionSettings {
        chat_messages: 3,
        chat_days: Some(30),
        prices_full_days: 90,
        crawls_kept: 2,
        outbox_days: 30,
        audit_days: 365,
        // Small batches: every rule runs several.
        batch: 2,
        ..RetentionSettings::default()
    };
    // Noon, so that every price day below is whole on one side of a limit.
    let now = Utc::now()
        .date_naive()
        .and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap())
        .and_utc();
    for seq in 1..=6 {
        message(db, "chat:busy", seq, now - TimeDelta::hours(7 - seq)).await;
    }
    for seq in 1..=3 {
        message(db, "chat:exact", seq, now - TimeDelta::hours(4 - seq)).await;
    }
    message(db, "chat:aged", 1, now - days(30) - ms(1)).await;
    message(db, "chat:aged", 2, now - days(30)).await;
    message(db, "chat:aged", 3, now - days(1)).await;
    // Over the count and past the age: it goes once, and counts once.
    message(db, "chat:both", 1, now - days(40)).await;
    for seq in 2..=4 {
        message(db, "chat:both", seq, now - TimeDelta::hours(5 - seq)).await;
    }

    let g = game(db, now).await;
    let cutoff = now - days(90);
    let day1 = (now - days(100))
        .duration_trunc(TimeDelta::days(1))
        .unwrap();
    let day2 = day1 + days(1);
    let hour = |day: DateTime<Utc>, h: i64| day + TimeDelta::hours(h);
    point(db, g, "pixelbay", 1999, hour(day1, 10)).await;
    point(db, g, "pixelbay", 1499, hour(day1, 12)).await;
    point(db, g, "pixelbay", 1799, hour(day1, 14)).await;
    point(db, g, "pixelbay", 1499, hour(day2, 10)).await;
    point(db, g, "pixelbay", 1499, hour(day2, 11)).await;
    point(db, g, "pixelbay", 3000, cutoff - TimeDelta::hours(1)).await;
    point(db, g, "pixelbay", 3500, cutoff - ms(1)).await;
    point(db, g, "pixelbay", 3600, cutoff).await;
    point(db, g, "pixelbay", 1399, now - days(1)).await;
    point(db, g, "pixelbay", 1299, now - TimeDelta::hours(1)).await;
    point(db, g, "gamevault", 2499, hour(day1, 10)).await;
    point(db, g, "retroshelf", 999, hour(day1, 9)).await;
    // The offer's latest point: the chart draws it up to now.
    point(db, g, "retroshelf", 1099, hour(day1, 15)).await;

    let old = crawl(db, now - days(3)).await;
    for (n, (state, attempts)) in [
        (TaskState::Done, 1),
        (TaskState::Done, 1),
        (TaskState::Done, 1),
        (TaskState::Cancelled, 0),
    ]
    .into_iter()
    .enumerate()
    {
        task(db, old, n as u32, state, attempts).await;
    }
    let dead = task(db, old, 9, TaskState::Dead, 2).await;
    let kept_crawl = crawl(db, now - days(2)).await;
    task(db, kept_crawl, 1, TaskState::Done, 1).await;
    let newest = crawl(db, now - days(1)).await;
    task(db, newest, 1, TaskState::Queued, 0).await;

    mail(db, "sent-old", MailStatus::Sent, now - days(30) - ms(1)).await;
    mail(db, "sent-at-limit", MailStatus::Sent, now - days(30)).await;
    mail(db, "cancelled-old", MailStatus::Cancelled, now - days(40)).await;
    mail(db, "failed-old", MailStatus::Failed, now - days(400)).await;
    mail(db, "queued-old", MailStatus::Pending, now - days(40)).await;

    let user = users::ActiveModel {
        name: Set("ana".to_owned()),
        display_name: Set("Ana".to_owned()),
        password_hash: Set("x".to_owned()),
        is_admin: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a user")
    .id;
    for (id, expires) in [("ended", now), ("open", now + ms(1))] {
        sessions::ActiveModel {
            id: Set(id.to_owned()),
            user_id: Set(user),
            csrf: Set("c".to_owned()),
            created_at: Set(now - days(30)),
            expires_at: Set(expires),
        }
        .insert(db)
        .await
        .expect("insert a session");
    }

    let grace = TimeDelta::from_std(retention::TOKEN_GRACE).unwrap();
    subscription(
        db,
        "gone@example.org",
        SubscriptionStatus::Pending,
        now - grace - ms(1),
    )
    .await;
    subscription(
        db,
        "waits@example.org",
        SubscriptionStatus::Pending,
        now - grace,
    )
    .await;
    subscription(
        db,
        "used@example.org",
        SubscriptionStatus::Confirmed,
        now - grace - ms(1),
    )
    .await;
    subscription(
        db,
        "fresh@example.org",
        SubscriptionStatus::Confirmed,
        now - grace,
    )
    .await;

    audit(db, now - days(365) - ms(1)).await;
    audit(db, now - days(365)).await;

    // Act
    let planned = retention::plan(db, &settings, now).await.expect("plan");
    let mut told: Vec<(&str, u64)> = Vec::new();
    let report = retention::pass_telling(
        db,
        &settings,
        now,
        || true,
        |table, rows| told.push((table, rows)),
    )
    .await
    .expect("pass");

    // Assert: what went, table by table, and the plan said so beforehand.
    assert_eq!(
        report.summary(),
        "messages=5 price_points=4 tasks=4 task_attempts=3 outbox=2 sessions=1 \
         subscriptions=1 confirmation_tokens=1 audit_log=1"
    );
    // Batch by batch (of 2), what was told as it went adds up to the same.
    assert!(told.len() > 9, "{told:?}");
    for removal in &report.removed {
        let told_rows: u64 = told
            .iter()
            .filter(|(table, _)| *table == removal.table)
            .map(|(_, rows)| rows)
            .sum();
        assert_eq!(told_rows, removal.rows, "{}", removal.table);
    }
    assert!(report.complete);
    assert_eq!(planned, report.removed);

    // Messages: the last 3 of a busy room, a room at exactly 3 whole, and
    // one exactly 30 days old kept; a room over both limits keeps its last 3.
    let left = column(
        &app,
        "SELECT topic || ':' || CAST(seq AS TEXT) FROM messages ORDER BY topic, seq",
    )
    .await;
    assert_eq!(
        left,
        [
            "chat:aged:2",
            "chat:aged:3",
            "chat:both:2",
            "chat:both:3",
            "chat:both:4",
            "chat:busy:4",
            "chat:busy:5",
            "chat:busy:6",
            "chat:exact:1",
            "chat:exact:2",
            "chat:exact:3"
        ]
    );

    // Prices: each old day keeps its lowest (the latest of equal ones),
    // the full window keeps everything, and an offer keeps its latest.
    let left = column(
        &app,
        "SELECT store || ' ' || CAST(price_cents AS TEXT) FROM price_points ORDER BY id",
    )
    .await;
    assert_eq!(
        left,
        [
            "pixelbay 1499",
            "pixelbay 1499",
            "pixelbay 3000",
            "pixelbay 3600",
            "pixelbay 1399",
            "pixelbay 1299",
            "gamevault 2499",
            "retroshelf 999",
            "retroshelf 1099"
        ]
    );
    let day2_kept = app
        .count(
            "SELECT COUNT(*) FROM price_points WHERE store = 'pixelbay' AND price_cents = 1499 \
             AND at = (SELECT MAX(at) FROM price_points WHERE price_cents = 1499)",
        )
        .await;
    assert_eq!(day2_kept, 1);

    // Crawls: the old crawl keeps its row, its dead task with its attempts,
    // and its counts; the two latest keep everything.
    let left = column(
        &app,
        "SELECT CAST(crawl_id AS TEXT) || ' ' || state FROM tasks ORDER BY id",
    )
    .await;
    assert_eq!(
        left,
        [
            format!("{old} dead"),
            format!("{kept_crawl} done"),
            format!("{newest} queued")
        ]
    );
    let attempts = app
        .count(&format!(
            "SELECT COUNT(*) FROM task_attempts WHERE task_id = {dead}"
        ))
        .await;
    assert_eq!(attempts, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM task_attempts").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM crawls").await, 3);
    let (status, report) = app.get_json(&format!("/api/crawls/{old}")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["tasks"]["done"], 3, "{report}");
    assert_eq!(report["tasks"]["cancelled"], 1, "{report}");
    assert_eq!(report["tasks"]["dead"], 1, "{report}");

    // Mail: failed and unsent mail stay, sent mail exactly at the limit too.
    let left = column(&app, "SELECT key FROM outbox ORDER BY key").await;
    assert_eq!(left, ["failed-old", "queued-old", "sent-at-limit"]);

    let left = column(&app, "SELECT id FROM sessions").await;
    assert_eq!(left, ["open"]);

    let left = column(
        &app,
        "SELECT email || ' ' || status || ' ' || COALESCE(token_hash, '-') \
         FROM subscriptions ORDER BY email",
    )
    .await;
    assert_eq!(
        left,
        [
            "fresh@example.org confirmed hash-fresh@example.org",
            "used@example.org confirmed -",
            "waits@example.org pending hash-waits@example.org"
        ]
    );

    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log").await, 1);

    // A second pass finds nothing more.
    let again = retention::pass(db, &settings, now, || true)
        .await
        .expect("pass");
    assert!(again.removed.iter().all(|r| r.rows == 0), "{again:?}");
}

on_both_backends!(a_pass_stopped_halfway_keeps_what_it_committed_and_the_next_goes_on);
async fn a_pass_stopped_halfway_keeps_what_it_committed_and_the_next_goes_on(backend: Backend) {
    // Arrange: 9 messages over a room's 2, in batches of 2.
    let app = quiet_app(backend, &[]).await;
    let now = Utc::now();
    for seq in 1..=11 {
        message(&app.db, "chat:cut", seq, now - TimeDelta::minutes(60 - seq)).await;
    }
    let settings = RetentionSettings {
        chat_messages: 2,
        batch: 2,
        ..RetentionSettings::default()
    };

    // Act: the role moves away after two batches.
    let asked = std::cell::Cell::new(0);
    let first = retention::pass(&app.db, &settings, now, || {
        asked.set(asked.get() + 1);
        asked.get() <= 2
    })
    .await
    .expect("pass");

    // Assert: two whole batches went, the oldest first; the next pass
    // takes the rest.
    assert!(!first.complete);
    assert_eq!(first.rows("messages"), 4);
    let oldest = app.count("SELECT MIN(seq) FROM messages").await;
    assert_eq!(oldest, 5);
    let second = retention::pass(&app.db, &settings, now, || true)
        .await
        .expect("pass");
    assert_eq!(second.rows("messages"), 5);
    let left = column(&app, "SELECT CAST(seq AS TEXT) FROM messages ORDER BY seq").await;
    assert_eq!(left, ["10", "11"]);
}

/// The line of `table` in `bazaar admin prune --dry-run`'s table: its rows
/// and what the next pass removes.
fn dry_run_line(out: &str, table: &str) -> (String, String) {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no {table} line in:\n{out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (
        words[1].to_owned(),
        words.last().expect("a count").to_string(),
    )
}

fn prune(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .args(["admin", "prune"])
        .args(args)
        .envs(app.env_vars())
        .output()
        .expect("run bazaar admin prune");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

on_both_backends!(the_dry_run_and_the_storage_page_show_what_a_pass_would_remove);
async fn the_dry_run_and_the_storage_page_show_what_a_pass_would_remove(backend: Backend) {
    // Arrange: a room over its 2 messages by 3, and an audit row past 365
    // days, on a running server.
    let app = quiet_app(backend, &[("BAZAAR_RETENTION__CHAT_MESSAGES", "2")]).await;
    let now = Utc::now();
    for seq in 1..=5 {
        message(
            &app.db,
            "chat:lobby",
            seq,
            now - TimeDelta::minutes(10 - seq),
        )
        .await;
    }
    audit(&app.db, now - days(400)).await;
    audit(&app.db, now - days(1)).await;
    let mut admin = account(&app, "root", true).await;

    // Act
    let (ok, out, err) = prune(&app, &["--dry-run"]);
    let page = admin.get("/admin/storage").await;
    let dashboard = admin.get("/admin").await;

    // Assert: both say what is stored and what would go; nothing went.
    assert!(ok, "{err}");
    assert_eq!(dry_run_line(&out, "messages"), ("5".into(), "3".into()));
    assert_eq!(dry_run_line(&out, "audit_log"), ("2".into(), "1".into()));
    assert_eq!(dry_run_line(&out, "price_points"), ("0".into(), "0".into()));
    assert!(out.contains("database: "), "{out}");
    // Every table's size is read, indexes included.
    let sizes: Vec<&str> = out
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("confirmation_tokens") && !l.starts_with("database: "))
        .collect();
    assert!(
        sizes.iter().all(|l| l.contains("KiB") || l.contains("MiB")),
        "{out}"
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<tr data-table=\"messages\"><th>messages</th><td class=\"rows\">5</td>"),
        "{}",
        page.body
    );
    let row = page
        .body
        .split("<tr data-table=\"messages\">")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("the messages row");
    assert!(row.contains("<td class=\"would-remove\">3</td>"), "{row}");
    assert!(dashboard.body.contains("href=\"/admin/storage\""));
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 5);

    // Act: a pass now, beside the running server.
    let (ok, out, err) = prune(&app, &[]);

    // Assert
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["messages", "3", "removed"]),
        "{out}"
    );
    assert!(
        err.contains("removed 1 audit rows older than 365 days"),
        "{err}"
    );
    let left = column(&app, "SELECT CAST(seq AS TEXT) FROM messages ORDER BY seq").await;
    assert_eq!(left, ["4", "5"]);
    let (_, out, _) = prune(&app, &["--dry-run"]);
    assert_eq!(dry_run_line(&out, "messages"), ("2".into(), "0".into()));
}

#[actix_web::test]
async fn prune_refuses_a_data_dir_without_a_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .args(["admin", "prune", "--dry-run"])
        .env("BAZAAR_DATA_DIR", dir.path())
        .env_remove("BAZAAR_DATABASE__URL")
        .output()
        .expect("run bazaar admin prune");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no database at"), "{err}");
    assert!(!dir.path().join("bazaar.db").exists());
}

/// `name{table="..."}` in a scrape of `/metrics`.
fn sample(scrape: &str, name: &str, table: Option<&str>) -> Option<f64> {
    let prefix = match table {
        Some(table) => format!("{name}{{table=\"{table}\"}} "),
        None => format!("{name} "),
    };
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

on_both_backends!(the_servers_passes_are_counted_in_metrics_and_logged);
async fn the_servers_passes_are_counted_in_metrics_and_logged(backend: Backend) {
    // Arrange: a server that prunes every second.
    let options = AppOptions {
        env: vec![
            ("BAZAAR_RETENTION__EVERY".into(), "1s".into()),
            ("BAZAAR_RETENTION__CHAT_MESSAGES".into(), "2".into()),
        ],
        ..AppOptions::default()
    };
    let app = spawn_app(backend, options).await;
    let now = Utc::now();

    // Act: rows past the limits appear.
    for seq in 1..=6 {
        message(
            &app.db,
            "chat:metered",
            seq,
            now - TimeDelta::minutes(10 - seq),
        )
        .await;
    }
    audit(&app.db, now - days(400)).await;
    audit(&app.db, now - days(500)).await;

    // Assert: a pass removes them, counts them and logs them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let scrape = loop {
        let (status, body) = app.get_html("/metrics").await;
        assert_eq!(status, 200, "{body}");
        let messages = sample(&body, "bazaar_retention_deleted_total", Some("messages"));
        let audit = sample(&body, "bazaar_retention_deleted_total", Some("audit_log"));
        if messages == Some(4.0) && audit == Some(2.0) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no pass counted; metrics:\n{body}\nlog:\n{}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        sample(&scrape, "bazaar_retention_deleted_total", Some("outbox")),
        Some(0.0)
    );
    let passes = sample(
        &scrape,
        "bazaar_retention_pass_duration_seconds_count",
        None,
    );
    assert!(passes.is_some_and(|n| n >= 1.0), "{scrape}");
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 2);
    // Messages stored ever, those removed included: a counter never drops.
    assert_eq!(sample(&scrape, "bazaar_messages_total", None), Some(6.0));
    let log = app.log();
    assert!(log.contains("retention pass removed messages=4"), "{log}");
    assert!(
        log.contains("removed 2 audit rows older than 365 days"),
        "{log}"
    );
}

fn seqs(history: &Value) -> Vec<u64> {
    history
        .as_array()
        .expect("history")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

on_both_backends!(a_resume_from_before_what_a_room_keeps_says_truncated);
async fn a_resume_from_before_what_a_room_keeps_says_truncated(backend: Backend) {
    // Arrange: a room of 10 messages pruned to its last 3, before anyone
    // opens it.
    let app = quiet_app(backend, &[]).await;
    let now = Utc::now();
    for seq in 1..=10 {
        message(
            &app.db,
            "chat:attic",
            seq,
            now - TimeDelta::minutes(20 - seq),
        )
        .await;
    }
    let settings = RetentionSettings {
        chat_messages: 3,
        ..RetentionSettings::default()
    };
    let report = retention::pass(&app.db, &settings, now, || true)
        .await
        .expect("pass");
    assert_eq!(report.rows("messages"), 7);
    let mut bob = ChatClient::connect(&app, Some("bob")).await.expect("bob");

    // Act: bob last saw seq 2, long gone.
    let resumed = bob.join("chat:attic", Some(2)).await;

    // Assert: what is kept, and that it is not all he missed.
    assert_eq!(seqs(&resumed["history"]), [8, 9, 10], "{resumed}");
    assert_eq!(resumed["truncated"], true, "{resumed}");
    bob.close().await;

    // A resume from what is kept misses nothing, and says so.
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    let resumed = ana.join("chat:attic", Some(8)).await;
    assert_eq!(seqs(&resumed["history"]), [9, 10], "{resumed}");
    assert!(resumed.get("truncated").is_none(), "{resumed}");
}
