//! A cluster as `deploy/cluster.sh` runs it: nginx in front of several nodes
//! on one PostgreSQL and one Redis. What the script and nginx promise:
//! round robin over every node, a dead node skipped, and nothing left
//! running after `down`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster_helpers::{processes_of, running, Cluster};

/// A GET's status, the node nginx says answered, and the JSON body.
async fn get(client: &awc::Client, url: &str) -> (u16, Option<String>, Value) {
    let mut resp = client.get(url).send().await.expect("GET");
    let node = resp
        .headers()
        .get("x-bazaar-node")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (resp.status().as_u16(), node, body)
}

/// The `host:port` nginx names a node by.
fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

#[actix_web::test]
async fn a_cluster_of_three_nodes_comes_up_behind_nginx_and_goes_down_without_leftovers() {
    // Arrange
    let cluster = Cluster::start(3);
    let client = awc::Client::default();

    // Act: through nginx, and at each node directly.
    let mut answered = BTreeSet::new();
    for _ in 0..9 {
        let (status, node, _) = get(&client, &format!("{}/healthz", cluster.url())).await;
        assert_eq!(status, 200);
        answered.insert(node.expect("nginx names the node that answered"));
    }
    let mut resp = client
        .post(format!("{}/api/crawls", cluster.url()))
        .bearer_auth(cluster.api_token())
        .send()
        .await
        .expect("POST /api/crawls");
    assert_eq!(resp.status().as_u16(), 201, "the shared API token works");
    let crawl: Value = resp.json().await.expect("json");

    // Assert: round robin reached every node; each answers on its own and
    // sees the crawl another one started (one database).
    let nodes: BTreeSet<String> = cluster.node_urls().iter().map(|u| address(u)).collect();
    assert_eq!(answered, nodes);
    for url in cluster.node_urls() {
        let (status, _, _) = get(&client, &format!("{url}/healthz")).await;
        assert_eq!(status, 200, "{url}/healthz");
        let (status, _, seen) = get(&client, &format!("{url}/api/crawls/{}", crawl["id"])).await;
        assert_eq!((status, &seen["id"]), (200, &crawl["id"]), "{url}");
    }

    // Act: down.
    let pids = cluster.pids();
    assert_eq!(
        pids.len(),
        6,
        "postgres, redis, three nodes, nginx: {pids:?}"
    );
    let dir = cluster.dir().to_owned();
    drop(cluster);

    // Assert: every recorded process is gone, and none of theirs is left.
    for (name, pid) in &pids {
        assert!(!running(*pid), "{name} (PID {pid}) outlived down");
    }
    let pids: Vec<i32> = pids.iter().map(|(_, pid)| *pid).collect();
    let left = processes_of(&dir, &pids);
    assert!(left.is_empty(), "left running after down: {left:#?}");
}

#[actix_web::test]
async fn nginx_sends_nothing_to_a_killed_node_and_uses_it_again_once_it_is_back() {
    // Arrange
    let cluster = Cluster::start(3);
    let client = awc::Client::default();
    let killed = address(&cluster.node_urls()[1]);

    // Act
    cluster.kill_node(1);
    let mut answered = Vec::new();
    for _ in 0..9 {
        let (status, node, _) = get(&client, &format!("{}/healthz", cluster.url())).await;
        answered.push((status, node.unwrap_or_default()));
    }

    // Assert: no request failed or was answered by the dead node; after
    // the first that tried it (nginx names both nodes it tried), the rest
    // went elsewhere.
    for (status, node) in &answered {
        assert_eq!(*status, 200, "{answered:?}");
        assert_ne!(
            node.rsplit(", ").next(),
            Some(killed.as_str()),
            "{answered:?}"
        );
    }
    let tried = answered.iter().filter(|(_, node)| node.contains(&killed));
    assert!(tried.count() <= 1, "{answered:?}");

    // Act: the node comes back on its port.
    cluster.start_node(1);

    // Assert: once its fail_timeout (5s) passes, nginx tries it again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, node, _) = get(&client, &format!("{}/healthz", cluster.url())).await;
        assert_eq!(status, 200);
        if node.as_deref() == Some(killed.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "nginx never used {killed} again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn redis_killed_comes_back_on_the_port_the_nodes_know() {
    // Arrange
    let cluster = Cluster::start(1);
    let port = cluster.redis_port();

    // Act
    cluster.kill_redis();
    // The kernel closes a killed process's sockets as it reaps it; give
    // that a moment rather than race it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    cluster.start_redis();

    // Assert
    assert!(refused, "redis still listened after the kill");
    assert_eq!(redis_ping(port), "+PONG\r\n");
    assert_eq!(cluster.redis_port(), port);
}

/// One PING in Redis's wire protocol, and its reply.
fn redis_ping(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(b"PING\r\n").expect("send PING");
    let mut reply = [0u8; 16];
    let n = stream.read(&mut reply).expect("read the reply");
    String::from_utf8_lossy(&reply[..n]).into_owned()
}
