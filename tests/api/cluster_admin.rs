//! The admin pages across a cluster: three `bazaar serve` nodes behind nginx,
//! with an admin on the first node looking at and acting on workers
//! connected to the others, draining a node, and watching a killed one drop
//! off.

use std::time::{Duration, Instant};

use awc::ws::{CloseCode, CloseReason};
use serde_json::{json, Value};

use crate::accounts::{hidden, Visitor};
use crate::admin_fleet::HandWorker;
use crate::auction_pages::PASSWORD;
use crate::cluster_helpers::{ws, Cluster, ClusterOptions};
use crate::helpers::run_bazaar;

/// Makes an admin account the way an operator does, against the cluster's
/// database, and logs it in at `url`.
async fn admin_at<'a>(cluster: &Cluster, url: &str, name: &str) -> Visitor<'a> {
    create_admin(cluster, name);
    let mut admin = Visitor::at(url);
    let page = admin.login(name, PASSWORD).await;
    assert_eq!(page.status, 303, "log in {name}: {}", page.body);
    admin
}

/// Makes an admin account with `bazaar admin create-user`, against the
/// cluster's database; its password is `PASSWORD`.
pub(crate) fn create_admin(cluster: &Cluster, name: &str) {
    let env = [
        (
            "BAZAAR_DATABASE__URL".to_owned(),
            cluster.postgres_url().to_string(),
        ),
        (
            "BAZAAR_DATA_DIR".to_owned(),
            cluster.dir().join("admin-cli").display().to_string(),
        ),
    ];
    let made = run_bazaar(
        &["admin", "create-user", name, "--admin"],
        &env,
        &format!("{PASSWORD}\n"),
    );
    assert!(
        made.status.success(),
        "create-user {name}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// A GET of `url` with the API token: its status and JSON body.
async fn api_get(cluster: &Cluster, url: &str) -> (u16, Value) {
    let mut resp = awc::Client::default()
        .get(url)
        .bearer_auth(cluster.api_token())
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let body = resp.json().await.unwrap_or(Value::Null);
    (resp.status().as_u16(), body)
}

/// A POST to `url` with the API token: its status and JSON body.
async fn api_post(cluster: &Cluster, url: &str) -> (u16, Value) {
    let mut resp = awc::Client::default()
        .post(url)
        .bearer_auth(cluster.api_token())
        .send()
        .await
        .unwrap_or_else(|err| panic!("POST {url}: {err}"));
    let body = resp.json().await.unwrap_or(Value::Null);
    (resp.status().as_u16(), body)
}

/// The id a node gives itself.
async fn node_id(cluster: &Cluster, url: &str) -> String {
    let (status, body) = api_get(cluster, &format!("{url}/api/nodes")).await;
    assert_eq!(status, 200, "{body}");
    body["this"].as_str().expect("the node's id").to_owned()
}

/// Asks `url`'s `/api/admin/workers` until `done` holds for its list.
async fn workers_until(
    cluster: &Cluster,
    url: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = api_get(cluster, &format!("{url}/api/admin/workers")).await;
        assert_eq!(status, 200, "{body}");
        let workers = body["workers"].as_array().cloned().unwrap_or_default();
        if done(&workers) {
            return workers;
        }
        assert!(Instant::now() < deadline, "{what}: {workers:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The workers named `name` in a list.
fn named<'a>(workers: &'a [Value], name: &str) -> Vec<&'a Value> {
    workers.iter().filter(|w| w["name"] == name).collect()
}

/// The audit log through a node's API, oldest first, as action, object id
/// and detail.
async fn audit(cluster: &Cluster, url: &str) -> Vec<(String, String, String)> {
    let (status, body) = api_get(cluster, &format!("{url}/api/admin/audit")).await;
    assert_eq!(status, 200, "{body}");
    let mut rows: Vec<(String, String, String)> = body["items"]
        .as_array()
        .expect("audit rows")
        .iter()
        .map(|row| {
            let text = |key: &str| row[key].as_str().unwrap_or_default().to_owned();
            (text("action"), text("object_id"), text("detail"))
        })
        .collect();
    rows.reverse();
    rows
}

/// The table row whose id is `id` on a page.
fn row<'a>(page: &'a str, id: &str) -> Option<&'a str> {
    page.split(&format!("<tr id=\"{id}\">"))
        .nth(1)?
        .split("</tr>")
        .next()
}

#[actix_web::test]
async fn cluster_admin_pages_on_one_node_list_the_workers_and_rooms_of_every_node() {
    // Arrange: a worker on node B, one on node C, and a chat member on B.
    let cluster = Cluster::start(3);
    let urls = cluster.node_urls();
    let (a, b, c) = (&urls[0], &urls[1], &urls[2]);
    let (node_b, node_c) = (node_id(&cluster, b).await, node_id(&cluster, c).await);
    let token = cluster.worker_token();
    let on_b = HandWorker::connect_to(&ws(b), &token, "on-b", 1).await;
    let on_c = HandWorker::connect_to(&ws(c), &token, "on-c", 1).await;
    let mut chat = crate::chat_client::ChatClient::connect_to(&ws(b), "ana")
        .await
        .expect("chat on node B");
    chat.join("chat:lobby", None).await;
    let mut admin = admin_at(&cluster, a, "root").await;

    // Act: node A's API, once both nodes have described their workers.
    let workers = workers_until(&cluster, a, "both workers on node A's list", |w| {
        !named(w, "on-b").is_empty() && !named(w, "on-c").is_empty()
    })
    .await;

    // Assert: each with its node and its id there.
    let (listed_b, listed_c) = (named(&workers, "on-b")[0], named(&workers, "on-c")[0]);
    assert_eq!(listed_b["node"], node_b.as_str(), "{listed_b}");
    assert_eq!(listed_b["id"], on_b.id, "{listed_b}");
    assert_eq!(listed_b["version"], "by-hand");
    assert_eq!(listed_c["node"], node_c.as_str(), "{listed_c}");
    assert_eq!(listed_c["id"], on_c.id, "{listed_c}");

    // The public list, without a token, is the same.
    let mut public = awc::Client::default()
        .get(format!("{a}/api/workers"))
        .send()
        .await
        .expect("GET /api/workers");
    assert_eq!(public.status().as_u16(), 200);
    let public: Value = public.json().await.expect("json");
    let public = public["workers"].as_array().cloned().unwrap_or_default();
    for (name, node) in [("on-b", &node_b), ("on-c", &node_c)] {
        let listed = named(&public, name);
        assert_eq!(listed.len(), 1, "{name} in {public:#?}");
        assert_eq!(listed[0]["node"], node.as_str(), "{}", listed[0]);
    }

    // The page names each row's node, and its forms name it too.
    let page = admin.get("/admin/workers").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cells = row(&page.body, &format!("worker-{node_b}-{}", on_b.id))
        .unwrap_or_else(|| panic!("no row for on-b: {}", page.body));
    assert!(
        cells.contains(&format!("<td class=\"node\">{node_b}</td>")),
        "{cells}"
    );
    assert!(cells.contains("<td>on-b</td>"), "{cells}");
    assert!(
        cells.contains(&format!("name=\"node\" value=\"{node_b}\"")),
        "{cells}"
    );
    assert!(
        row(&page.body, &format!("worker-{node_c}-{}", on_c.id)).is_some(),
        "{}",
        page.body
    );

    // Rooms: node B's member, counted on node A's pages.
    let (_, rooms) = api_get(&cluster, &format!("{a}/api/admin/rooms")).await;
    let lobby = rooms["rooms"]
        .as_array()
        .and_then(|r| r.iter().find(|room| room["topic"] == "chat:lobby"))
        .unwrap_or_else(|| panic!("no lobby: {rooms}"));
    assert_eq!(lobby["members"], 1, "{lobby}");
    assert_eq!(lobby["nodes"], json!({ node_b.clone(): 1 }), "{lobby}");
    let page = admin.get("/admin/rooms").await.body;
    assert!(
        page.contains(&format!("<td class=\"nodes\">{node_b}: 1</td>")),
        "{page}"
    );

    // The dashboard counts every node's workers and the member.
    let dashboard = admin.get("/admin").await.body;
    assert!(
        dashboard.contains("<span id=\"workers-count\">2</span>"),
        "{dashboard}"
    );
    assert!(
        dashboard.contains(&format!("<td class=\"node\">{node_c}</td><td>on-c</td>")),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("<td data-node=\"members\">1</td>"),
        "{dashboard}"
    );

    // The nodes page: all three, one holding the scheduler role.
    let nodes = admin.get("/admin/nodes").await.body;
    for node in [&node_b, &node_c] {
        let cells = row(&nodes, &format!("node-{node}"))
            .unwrap_or_else(|| panic!("no row for node {node}: {nodes}"));
        assert!(
            cells.contains("<td data-field=\"workers\">1</td>"),
            "{cells}"
        );
        assert!(cells.contains(env!("CARGO_PKG_VERSION")), "{cells}");
        assert!(
            cells.contains("<td data-field=\"state\">serving</td>"),
            "{cells}"
        );
    }
    assert_eq!(nodes.matches("<tr id=\"node-").count(), 3, "{nodes}");
    assert_eq!(nodes.matches("holds the role").count(), 1, "{nodes}");
    assert!(nodes.contains("(this node)"), "{nodes}");
    chat.close().await;
}

#[actix_web::test]
async fn cluster_drain_and_disconnect_from_node_a_reach_workers_connected_to_node_b() {
    // Arrange: two hand workers on node B; the admin on node A.
    let cluster = Cluster::start(3);
    let urls = cluster.node_urls();
    let (a, b) = (&urls[0], &urls[1]);
    let node_b = node_id(&cluster, b).await;
    let token = cluster.worker_token();
    let mut drained = HandWorker::connect_to(&ws(b), &token, "drained", 1).await;
    let mut closed = HandWorker::connect_to(&ws(b), &token, "closed", 1).await;
    let mut admin = admin_at(&cluster, a, "root").await;
    workers_until(&cluster, a, "node B's workers on node A", |w| {
        !named(w, "drained").is_empty() && !named(w, "closed").is_empty()
    })
    .await;
    let page = admin.get("/admin/workers").await.body;
    let csrf = hidden(&page, "csrf").expect("a form token");

    // Act: Drain from node A's page.
    let done = admin
        .post(
            &format!("/admin/workers/{}/drain", drained.id),
            &[("csrf", &csrf), ("node", &node_b)],
        )
        .await;

    // Assert: the worker on node B is told to drain, and node A says
    // where the request went.
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/admin/workers?sent={node_b}").as_str())
    );
    drained.recv_op("drain").await;
    let page = admin.get(done.location.as_deref().unwrap()).await.body;
    assert!(
        page.contains(&format!("Your request went to node {node_b}")),
        "{page}"
    );
    workers_until(&cluster, a, "the drain shown on node A", |w| {
        named(w, "drained")
            .first()
            .is_some_and(|w| w["draining"] == true)
    })
    .await;

    // Act: Disconnect through node A's API.
    let (status, body) = api_post(
        &cluster,
        &format!(
            "{a}/api/admin/workers/{}/disconnect?node={node_b}",
            closed.id
        ),
    )
    .await;

    // Assert: node B closes the worker's socket with the admin's reason.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sent_to"], node_b.as_str(), "{body}");
    let reason = loop {
        match closed.next(Duration::from_secs(10)).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("node B left the worker connected"),
            Err(reason) => break reason,
        }
    };
    assert_eq!(
        reason,
        Some(CloseReason {
            code: CloseCode::Normal,
            description: Some("disconnected by an admin".to_owned()),
        })
    );
    workers_until(&cluster, a, "the closed worker off node A's list", |w| {
        named(w, "closed").is_empty()
    })
    .await;

    // Each action left one audit row, written by node A.
    assert_eq!(
        audit(&cluster, a).await,
        [
            (
                "worker.drain".to_owned(),
                drained.id.to_string(),
                format!("drained (sent to node {node_b})")
            ),
            (
                "worker.disconnect".to_owned(),
                closed.id.to_string(),
                format!("closed (sent to node {node_b})")
            ),
        ]
    );

    // A worker that is not on the node named is not found, and nothing is
    // sent or recorded.
    let (status, _) = api_post(
        &cluster,
        &format!("{a}/api/admin/workers/999/drain?node={node_b}"),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(audit(&cluster, a).await.len(), 2);
}

#[actix_web::test]
async fn cluster_a_killed_node_drops_off_the_nodes_page_within_30_seconds() {
    // Arrange: a worker on node C, listed on node A.
    let cluster = Cluster::start(3);
    let urls = cluster.node_urls();
    let (a, c) = (&urls[0], &urls[2]);
    let node_c = node_id(&cluster, c).await;
    let _on_c = HandWorker::connect_to(&ws(c), &cluster.worker_token(), "on-c", 1).await;
    let mut admin = admin_at(&cluster, a, "root").await;
    workers_until(&cluster, a, "node C's worker on node A", |w| {
        !named(w, "on-c").is_empty()
    })
    .await;
    assert!(admin
        .get("/admin/nodes")
        .await
        .body
        .contains(&format!("<tr id=\"node-{node_c}\">")));

    // Act
    cluster.kill_node(2);
    let killed = Instant::now();

    // Assert: gone from the nodes page, its worker with it.
    loop {
        let page = admin.get("/admin/nodes").await.body;
        if !page.contains(&format!("<tr id=\"node-{node_c}\">")) {
            assert_eq!(page.matches("<tr id=\"node-").count(), 2, "{page}");
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "node {node_c} still listed 30 s after it was killed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    workers_until(&cluster, a, "node C's worker off the list", |w| {
        named(w, "on-c").is_empty()
    })
    .await;
}

#[actix_web::test]
async fn cluster_drain_node_from_the_nodes_page_stops_that_node_taking_clients() {
    // Arrange
    let cluster = Cluster::start(3);
    let urls = cluster.node_urls();
    let (a, b) = (&urls[0], &urls[1]);
    let node_b = node_id(&cluster, b).await;
    let mut admin = admin_at(&cluster, a, "root").await;
    let page = admin.get("/admin/nodes").await.body;
    assert!(
        page.contains(&format!("action=\"/admin/nodes/{node_b}/drain\"")),
        "{page}"
    );
    let csrf = hidden(&page, "csrf").expect("a form token");

    // Act: without the form's token, then with it.
    let forged = admin
        .post(
            &format!("/admin/nodes/{node_b}/drain"),
            &[("csrf", "forged")],
        )
        .await;
    let done = admin
        .post(&format!("/admin/nodes/{node_b}/drain"), &[("csrf", &csrf)])
        .await;

    // Assert: refused, then sent, audited once, and shown.
    assert_eq!(forged.status, 403);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/admin/nodes?sent={node_b}").as_str())
    );
    assert_eq!(
        audit(&cluster, a).await,
        [(
            "node.drain".to_owned(),
            node_b.clone(),
            b.trim_start_matches("http://").to_owned()
        )]
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = admin.get("/admin/nodes").await.body;
        let cells = row(&page, &format!("node-{node_b}")).unwrap_or_default();
        if cells.contains("<td data-field=\"state\">draining</td>") {
            assert!(!cells.contains("/drain\""), "no second drain: {cells}");
            break;
        }
        assert!(Instant::now() < deadline, "node B never drained: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Node B turns new sockets away, clients' and workers', so that nginx
    // sends them elsewhere.
    let client = awc::Client::new()
        .ws(format!("{}/ws?name=late", ws(b)))
        .connect()
        .await;
    let worker = awc::Client::new()
        .ws(format!("{}/ws/worker", ws(b)))
        .bearer_auth(cluster.worker_token())
        .connect()
        .await;
    for (who, refused) in [("client", client), ("worker", worker)] {
        assert!(
            matches!(
                &refused,
                Err(awc::error::WsClientError::InvalidResponseStatus(status)) if status.as_u16() == 503
            ),
            "a new {who} socket on a drained node: {:?}",
            refused.map(|(resp, _)| resp.status())
        );
    }
    // Through the API, an unknown node is not found.
    let (status, _) = api_post(&cluster, &format!("{a}/api/admin/nodes/nosuch/drain")).await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn cluster_admin_actions_are_limited_per_admin_over_every_node_together() {
    // Arrange: three actions a minute, spread over two nodes.
    let cluster = Cluster::start_with(
        3,
        ClusterOptions {
            env: vec![(
                "BAZAAR_ACCOUNTS__ADMIN_ACTIONS_PER_MINUTE".to_owned(),
                "3".to_owned(),
            )],
            ..ClusterOptions::default()
        },
    );
    let urls = cluster.node_urls();
    let (a, b) = (&urls[0], &urls[1]);

    // Act
    let mut statuses = Vec::new();
    for (url, action) in [(a, "pause"), (b, "resume"), (a, "pause"), (b, "resume")] {
        let (status, _) = api_post(&cluster, &format!("{url}/api/admin/queue/{action}")).await;
        statuses.push(status);
    }

    // Assert: the fourth is refused, though each node saw only two, and
    // a refusal says when the minute ends.
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(audit(&cluster, a).await.len(), 3);
    let mut refused = awc::Client::default()
        .post(format!("{b}/api/admin/queue/pause"))
        .bearer_auth(cluster.api_token())
        .send()
        .await
        .expect("POST pause");
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
}
