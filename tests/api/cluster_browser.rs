//! The admin dashboard across a cluster in real headless Chromium (issue 16,
//! test 6): opened on node A, it shows workers that connect to nodes B and
//! C, each with its node, and the crawl they run moving to finished, all
//! without reloading.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::admin_browser::{admin_page, progress};
use crate::browser_helpers::{Browser, Page};
use crate::cluster_admin::create_admin;
use crate::cluster_helpers::{health, Cluster, ClusterOptions};
use crate::helpers::spawn_store;

/// How long the page gets to show a node's change: its heartbeat (2 s),
/// then the dashboard's next event (1 s), on a machine busy with a cluster.
const SHOWN_WITHIN: Duration = Duration::from_secs(20);

/// The dashboard's worker table, one map per row from column heading to
/// cell text; empty while the table is hidden.
async fn worker_rows(page: &Page) -> Vec<BTreeMap<String, String>> {
    let rows = page
        .run(
            "const table = document.getElementById('workers-table');
             if (table.hidden) return [];
             const heads = [...table.tHead.rows[0].cells].map((c) => c.textContent.trim());
             return [...table.tBodies[0].rows].map((row) =>
               Object.fromEntries([...row.cells].map((c, i) => [heads[i], c.textContent.trim()])));",
        )
        .await;
    serde_json::from_value(rows).expect("rows of text cells")
}

/// Waits until the worker table satisfies `done`; returns its rows.
async fn rows_until(
    page: &Page,
    what: &str,
    done: impl Fn(&[BTreeMap<String, String>]) -> bool,
) -> Vec<BTreeMap<String, String>> {
    let deadline = Instant::now() + SHOWN_WITHIN;
    loop {
        let rows = worker_rows(page).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{what}; the table shows {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The row of the worker named `name`.
fn row<'a>(
    rows: &'a [BTreeMap<String, String>],
    name: &str,
) -> Option<&'a BTreeMap<String, String>> {
    rows.iter()
        .find(|r| r.get("Name").map(String::as_str) == Some(name))
}

/// A column of the row, as a number.
fn number(row: &BTreeMap<String, String>, column: &str) -> u64 {
    row.get(column)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number under {column} in {row:?}"))
}

#[actix_web::test]
async fn cluster_dashboard_on_node_a_shows_a_crawl_by_workers_on_b_and_c_live() {
    // Arrange: a store slow enough, and polite enough (two fetches at
    // once), that the crawl takes several of the dashboard's seconds.
    let store = spawn_store(3, 10, Duration::from_millis(300));
    let cluster = Cluster::start_with(
        3,
        ClusterOptions {
            sites: Some(store.sites(2)),
            env: Vec::new(),
        },
    );
    let urls = cluster.node_urls();
    let (a, b, c) = (&urls[0], &urls[1], &urls[2]);
    let mut ids = Vec::new();
    for url in [b, c] {
        let (status, body) = health(url).await;
        assert_eq!(status, 200, "{url}/healthz: {body}");
        ids.push(body["node"].as_str().expect("node id").to_owned());
    }
    let (node_b, node_c) = (&ids[0], &ids[1]);
    create_admin(&cluster, "root");
    let mut browser = Browser::start().await;
    let page = admin_page(a, &mut browser).await;
    assert_eq!(
        page.run("return location.origin;").await,
        Value::String(a.clone()),
        "the dashboard is node A's own, not nginx's"
    );
    assert_eq!(page.texts("#workers-count").await, ["0"]);
    // Set on this page load; a reload would lose it.
    page.run("window.bazaarMark = 'kept'; return null;").await;

    // Act: a worker connects to node B and another to node C.
    let _workers = [("w-b", b), ("w-c", c)].map(|(name, url)| cluster.spawn_worker(name, 2, url));

    // Assert: both appear on node A's dashboard, each with its node.
    let rows = rows_until(&page, "both workers listed", |rows| {
        row(rows, "w-b").is_some() && row(rows, "w-c").is_some()
    })
    .await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(row(&rows, "w-b").unwrap()["Node"], *node_b, "{rows:#?}");
    assert_eq!(row(&rows, "w-c").unwrap()["Node"], *node_c, "{rows:#?}");
    page.wait_for_text("#workers-count", "2").await;

    // Act: a crawl is started on node B.
    let mut resp = awc::Client::default()
        .post(format!("{b}/api/crawls"))
        .bearer_auth(cluster.api_token())
        .send()
        .await
        .expect("POST /api/crawls");
    assert_eq!(resp.status().as_u16(), 201, "crawl not started");
    let crawl = resp.json::<Value>().await.expect("json")["id"]
        .as_i64()
        .expect("crawl id");

    // Assert: node A's bar moves through the middle to the end, and the
    // workers show tasks in flight while it runs.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut seen_between, mut seen_in_flight) = (false, false);
    let total = loop {
        let (value, max) = progress(&page).await;
        let status = page.texts("#crawl-status").await.join("");
        if value > 0 && value < max {
            seen_between = true;
        }
        let rows = worker_rows(&page).await;
        if rows.iter().any(|r| number(r, "In flight") > 0) {
            seen_in_flight = true;
        }
        if status == "finished" && value == max && max > 1 {
            break max;
        }
        assert!(
            Instant::now() < deadline,
            "node A's dashboard shows {value}/{max} {status}; workers {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(seen_between, "the progress was shown while the crawl ran");
    assert!(seen_in_flight, "the workers' tasks in flight were shown");
    assert_eq!(page.texts("#crawl-link").await, [crawl.to_string()]);
    assert_eq!(total, 33, "3 listings and 30 games");

    // Assert: the workers' counts, as their nodes last described them,
    // add up to every task of the crawl.
    let rows = rows_until(&page, "every task counted as done by a worker", |rows| {
        rows.iter().map(|r| number(r, "Done")).sum::<u64>() == total
    })
    .await;
    assert!(
        rows.iter()
            .all(|r| number(r, "Failed") == 0 && number(r, "In flight") == 0),
        "{rows:#?}"
    );
    assert_eq!(
        page.run("return window.bazaarMark || null;").await,
        Value::String("kept".into()),
        "the page was not reloaded"
    );
    page.close().await;
}
