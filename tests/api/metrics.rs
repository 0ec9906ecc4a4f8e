//! `/metrics` over a real server: the figures agree with the database and
//! the open sockets, the page is well-formed text format, and it is served
//! only to loopback or with the API token.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use entity::task_attempts;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};
use crate::on_both_backends;
use crate::worker_protocol::hold_one_task;

/// One sample line: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed strictly: a line that is not a comment or a
/// well-formed sample fails the test, and so does a family whose HELP or
/// TYPE is missing or repeated, or a sample outside its family.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut helps: Vec<String> = Vec::new();
        let mut family: Option<String> = None;
        for line in text.lines() {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let name = help.split(' ').next().expect("a name").to_owned();
                assert!(!helps.contains(&name), "HELP twice for {name}");
                helps.push(name);
            } else if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (name, kind) = declared.split_once(' ').expect("TYPE name kind");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert_eq!(
                    helps.last().map(String::as_str),
                    Some(name),
                    "HELP before TYPE"
                );
                let old = types.insert(name.to_owned(), kind.to_owned());
                assert!(old.is_none(), "TYPE twice for {name}");
                family = Some(name.to_owned());
            } else {
                assert!(!line.starts_with('#'), "unknown comment: {line}");
                let sample = parse_sample(line);
                let family = family.as_deref().expect("a sample after a TYPE");
                let own = match types[family].as_str() {
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| sample.name == format!("{family}{suffix}")),
                    _ => sample.name == family,
                };
                assert!(own, "{} is outside its family {family}", sample.name);
                samples.push(sample);
            }
        }
        assert_eq!(helps.len(), types.len(), "a HELP without a TYPE");
        Scrape { samples, types }
    }

    /// The value of the one sample with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == wanted)
            .collect();
        assert_eq!(found.len(), 1, "{name}{labels:?} in {:#?}", self.samples);
        found[0].value
    }

    fn series(&self, name: &str) -> impl Iterator<Item = &Sample> {
        let name = name.to_owned();
        self.samples.iter().filter(move |s| s.name == name)
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("name and value");
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {line}"));
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}').expect("labels end with }");
            (name, parse_labels(inner, line))
        }
        None => (series, BTreeMap::new()),
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name: {line}"
    );
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// `k="v",k2="v2"`, with `\\`, `\"` and `\n` escapes in the values.
fn parse_labels(mut text: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !text.is_empty() {
        let (key, rest) = text.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => panic!("bad escape: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        assert!(labels.insert(key.to_owned(), value).is_none(), "{line}");
        text = &rest[end + 1..];
        text = text.strip_prefix(',').unwrap_or(text);
    }
    labels
}

/// `GET /metrics` with these headers: the status, the content type and the
/// body.
async fn get_metrics(app: &TestApp, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut request = app.client.get(format!("{}/metrics", app.base));
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut resp = request.send().await.expect("GET /metrics");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.body().limit(4 << 20).await.expect("body");
    (
        resp.status().as_u16(),
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn scrape(app: &TestApp) -> Scrape {
    let (status, content_type, body) = get_metrics(app, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&body)
}

/// Scrapes until `name{labels}` reads `want`; the last scrape.
async fn scrape_until(app: &TestApp, name: &str, labels: &[(&str, &str)], want: f64) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let scrape = scrape(app).await;
        let got = scrape.value(name, labels);
        if got == want {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} stayed {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_scrape_after_a_crawl_agrees_with_the_database_and_the_sockets(backend: Backend) {
    // Arrange: a crawl by a worker whose scraper panics once, a page view,
    // and a chat client that said something.
    let app = spawn_app(backend, AppOptions::default()).await;
    let _worker = app.spawn_worker(
        "fragile",
        2,
        &[(
            "BAZAAR_FAULT_PANIC_ONCE_ON",
            "/demo/pixelbay/games/portal-2",
        )],
    );
    let id = app.start_crawl().await;
    app.wait_crawl(id, Duration::from_secs(60)).await;
    assert_eq!(app.get_html("/").await.0, 200);
    let mut chat = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    chat.join("chat:metrics", None).await;
    chat.say("chat:metrics", "hello").await;

    // Act: the restart reaches the server with the worker's next heartbeat.
    let scrape = scrape_until(&app, "bazaar_scraper_restarts", &[], 1.0).await;

    // Assert: what the database holds.
    for state in ["queued", "leased", "done", "dead", "cancelled"] {
        let rows = app
            .count(&format!(
                "SELECT COUNT(*) FROM tasks WHERE state = '{state}'"
            ))
            .await;
        assert_eq!(
            scrape.value("bazaar_tasks", &[("state", state)]),
            rows as f64,
            "{state}"
        );
    }
    for status in ["pending", "sending", "sent", "failed", "cancelled"] {
        let rows = app
            .count(&format!(
                "SELECT COUNT(*) FROM outbox WHERE status = '{status}'"
            ))
            .await;
        assert_eq!(
            scrape.value("bazaar_mails", &[("status", status)]),
            rows as f64,
            "{status}"
        );
    }
    assert_eq!(scrape.value("bazaar_messages_total", &[]), 1.0);
    assert_eq!(
        scrape.value("bazaar_bids_total", &[]),
        app.count("SELECT COUNT(*) FROM bids").await as f64
    );
    assert_task_durations_match_the_attempts(&app, &scrape).await;
    let (_, workers) = app.get_json("/api/workers").await;
    assert_eq!(workers["workers"][0]["scraper_restarts"], 1, "{workers}");

    // Assert: what this node sees.
    let open = "bazaar_open_connections";
    assert_eq!(scrape.value(open, &[("kind", "worker")]), 1.0);
    assert_eq!(scrape.value(open, &[("kind", "client")]), 1.0);
    assert_eq!(scrape.value("bazaar_topics", &[("kind", "chat")]), 1.0);
    assert_eq!(scrape.value("bazaar_topics", &[("kind", "auction")]), 0.0);
    assert_eq!(scrape.value("bazaar_leases_expired_total", &[]), 0.0);
    let http = "bazaar_http_request_duration_seconds_count";
    let home = [("method", "GET"), ("route", "/"), ("status", "2xx")];
    assert!(scrape.value(http, &home) >= 1.0);
    let polled = [
        ("method", "GET"),
        ("route", "/api/crawls/{id}"),
        ("status", "2xx"),
    ];
    assert!(scrape.value(http, &polled) >= 1.0);
    for sample in scrape.series(http) {
        let route = &sample.labels["route"];
        assert!(
            route == "unmatched" || !route.contains(&id.to_string()),
            "a raw path as a route: {route}"
        );
    }

    // Act: the chat client leaves.
    chat.close().await;

    // Assert: its connection and its room are gone from the figures.
    let scrape = scrape_until(&app, open, &[("kind", "client")], 0.0).await;
    assert_eq!(scrape.value(open, &[("kind", "worker")]), 1.0);
    scrape_until(&app, "bazaar_topics", &[("kind", "chat")], 0.0).await;
}
on_both_backends!(a_scrape_after_a_crawl_agrees_with_the_database_and_the_sockets);

/// The duration histogram against the attempts' own times. SQLite reads
/// times to the millisecond, so a duration within 2 ms of a bound may fall
/// on either side of it.
async fn assert_task_durations_match_the_attempts(app: &TestApp, scrape: &Scrape) {
    let name = "bazaar_task_attempt_duration_seconds";
    assert_eq!(scrape.types[name], "histogram");
    let seconds: Vec<f64> = task_attempts::Entity::find()
        .filter(task_attempts::Column::FinishedAt.is_not_null())
        .all(&app.db)
        .await
        .expect("attempts")
        .iter()
        .filter_map(|a| {
            let took = a.finished_at? - a.started_at;
            Some(took.num_microseconds()? as f64 / 1e6)
        })
        .collect();
    assert!(seconds.len() > 1, "the crawl made attempts");
    let finished = app
        .count("SELECT COUNT(*) FROM task_attempts WHERE finished_at IS NOT NULL")
        .await;
    assert_eq!(scrape.value(&format!("{name}_count"), &[]), finished as f64);
    let sum = scrape.value(&format!("{name}_sum"), &[]);
    assert!((sum - seconds.iter().sum::<f64>()).abs() < 0.002 * seconds.len() as f64);
    let at_most = |bound: f64| seconds.iter().filter(|&&s| s <= bound).count() as f64;
    let buckets: Vec<&Sample> = scrape.series(&format!("{name}_bucket")).collect();
    assert_eq!(buckets.last().expect("buckets").labels["le"], "+Inf");
    assert_eq!(buckets.last().expect("buckets").value, finished as f64);
    for bucket in &buckets[..buckets.len() - 1] {
        let bound: f64 = bucket.labels["le"].parse().expect("a bound");
        let range = at_most(bound - 0.002)..=at_most(bound + 0.002);
        assert!(
            range.contains(&bucket.value),
            "le={bound}: {} not in {range:?}",
            bucket.value
        );
    }
}

#[actix_web::test]
async fn a_lease_that_runs_out_is_counted_once_as_expired() {
    // Arrange: short leases, heartbeats too rare to save them, and a worker
    // spoken by hand that takes one task and then says nothing.
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            lease: "1s",
            heartbeat: "10s",
            ..Default::default()
        },
    )
    .await;
    let (_worker, _assign) = hold_one_task(&app).await;

    // Act: the lease runs out and the sweep gives the task back.
    let scrape = scrape_until(&app, "bazaar_leases_expired_total", &[], 1.0).await;

    // Assert: one attempt ended by expiry; the worker is still connected.
    let expired = app
        .count("SELECT COUNT(*) FROM task_attempts WHERE error LIKE 'lease expired%'")
        .await;
    assert_eq!(expired, 1);
    let open = "bazaar_open_connections";
    assert_eq!(scrape.value(open, &[("kind", "worker")]), 1.0);
}

#[actix_web::test]
async fn metrics_need_the_api_token_unless_asked_from_loopback_directly() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let bearer = format!("Bearer {}", app.api_token);
    let proxied = ("X-Forwarded-For", "203.0.113.7");

    // Act
    let direct = get_metrics(&app, &[]).await;
    let relayed = get_metrics(&app, &[proxied]).await;
    let relayed_with_token =
        get_metrics(&app, &[proxied, ("Authorization", bearer.as_str())]).await;
    let wrong_token = get_metrics(&app, &[("Authorization", "Bearer not-the-token")]).await;

    // Assert: loopback is served; a relayed request only with the token; a
    // wrong token never.
    assert_eq!(direct.0, 200, "{}", direct.2);
    assert_eq!(relayed.0, 403, "{}", relayed.2);
    let refusal: Value = serde_json::from_str(&relayed.2).expect("json");
    assert_eq!(refusal["error"]["code"], "forbidden");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("API token")),
        "{refusal}"
    );
    assert_eq!(relayed_with_token.0, 200, "{}", relayed_with_token.2);
    Scrape::parse(&relayed_with_token.2);
    assert_eq!(wrong_token.0, 401, "{}", wrong_token.2);
    assert!(!wrong_token.2.contains("bazaar_"), "{}", wrong_token.2);
}
