//! The crawl across a cluster: workers connected to different nodes crawl
//! one queue in PostgreSQL. What must hold whichever node a worker talks to
//! and whichever node dies: a site's politeness for the whole cluster
//! (measured at the store), one crawl completing once with its digest
//! queued once, one scheduler, no task lost or merged twice when a node is
//! killed, and no attempt wasted when a node drains.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::Value;

use crate::admin_fleet::HandWorker;
use crate::cluster_helpers::{health, running, ws, Cluster, ClusterOptions, ClusterWorker};
use crate::helpers::{spawn_store, TestStore};

/// Node settings for crawling in a test's time: a lost lease is noticed in
/// seconds, and a failed fetch is retried after a fraction of one.
const CRAWL_ENV: [(&str, &str); 4] = [
    ("BAZAAR_WORKERS__LEASE", "4s"),
    ("BAZAAR_WORKERS__HEARTBEAT", "1s"),
    ("BAZAAR_CRAWL__RETRY_BASE", "200ms"),
    ("BAZAAR_CRAWL__RETRY_MAX", "1s"),
];

/// What a hand-out may lose or gain on its way to the store (as in
/// politeness.rs), with room for a cluster's extra processes on a busy
/// machine: nginx, three nodes and PostgreSQL share its cores.
const JITTER: Duration = Duration::from_millis(100);

/// A generated store's site under its own name and store name, so that
/// several can be crawled at once, with its politeness.
fn site(store: &TestStore, name: &str, concurrency: u32, delay_ms: u64) -> String {
    store
        .sites(concurrency)
        .replace("name = \"gen\"", &format!("name = \"{name}\""))
        .replace("store = \"GenStore\"", &format!("store = \"{name}\""))
        .replace("delay_ms = 0", &format!("delay_ms = {delay_ms}"))
}

/// A cluster of three nodes crawling `sites`, with `env` over `CRAWL_ENV`.
fn cluster(sites: String, env: &[(&str, &str)]) -> Cluster {
    let env = CRAWL_ENV
        .iter()
        .chain(env)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Cluster::start_with(
        3,
        ClusterOptions {
            sites: Some(sites),
            env,
        },
    )
}

/// A worker of two slots on each of the three nodes, connected to it
/// directly: w1, w2 and w3.
fn worker_on_each_node(cluster: &Cluster) -> Vec<ClusterWorker> {
    ["w1", "w2", "w3"]
        .into_iter()
        .zip(cluster.node_urls())
        .map(|(name, url)| cluster.spawn_worker(name, 2, &url))
        .collect()
}

/// The database behind the nodes, read as an operator would with psql.
struct Truth(DatabaseConnection);

impl Truth {
    async fn of(cluster: &Cluster) -> Truth {
        Truth(
            Database::connect(cluster.postgres_url().as_str())
                .await
                .expect("connect to the cluster's database"),
        )
    }

    async fn execute(&self, sql: &str) {
        self.0
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Every row of `sql`, each column as text (`::text` in the query
    /// where a column is not); NULL is `None`.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let backend = self.0.get_database_backend();
        let rows = self
            .0
            .query_all(Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|row| {
                (0..row.column_names().len())
                    .map(|i| {
                        row.try_get_by_index::<Option<String>>(i)
                            .unwrap_or_else(|e| panic!("{sql}, column {i}: {e}"))
                    })
                    .collect()
            })
            .collect()
    }

    /// The first column of the first row of `sql`, if there is one.
    async fn text(&self, sql: &str) -> Option<String> {
        self.rows(sql)
            .await
            .into_iter()
            .next()?
            .into_iter()
            .next()?
    }

    /// A count (or any integer) that `sql` yields.
    async fn count(&self, sql: &str) -> i64 {
        let sql = format!("SELECT ({sql})::text");
        self.text(&sql)
            .await
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{sql} yielded no integer"))
    }
}

/// The API, through nginx as clients reach it.
struct Api {
    client: awc::Client,
    url: String,
    token: String,
}

impl Api {
    fn of(cluster: &Cluster) -> Api {
        Api {
            client: awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish(),
            url: cluster.url().to_owned(),
            token: cluster.api_token(),
        }
    }

    async fn start_crawl(&self) -> i64 {
        let mut resp = self
            .client
            .post(format!("{}/api/crawls", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("POST /api/crawls");
        assert_eq!(resp.status().as_u16(), 201, "crawl not started");
        let body: Value = resp.json().await.expect("json");
        body["id"].as_i64().expect("crawl id")
    }

    /// A GET's JSON body; `Null` when the request failed, as one may while
    /// a node goes away: callers poll.
    async fn get(&self, path: &str) -> Value {
        let Ok(mut resp) = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
        else {
            return Value::Null;
        };
        resp.json().limit(1 << 20).await.unwrap_or(Value::Null)
    }

    /// Waits until crawl `id` is finished; returns its report.
    async fn wait_crawl(&self, cluster: &Cluster, id: i64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let report = self.get(&format!("/api/crawls/{id}")).await;
            if report["status"] == "finished" {
                return report;
            }
            assert!(
                Instant::now() < deadline,
                "crawl {id} did not finish within {within:?}: {report}\n{}",
                logs(cluster)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `done` tasks of crawl `id` are done.
    async fn wait_done(&self, id: i64, done: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let report = self.get(&format!("/api/crawls/{id}")).await;
            if report["tasks"]["done"].as_u64().unwrap_or(0) >= done {
                return;
            }
            assert!(Instant::now() < deadline, "crawl {id} stalled: {report}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every node's log, for a failure message.
fn logs(cluster: &Cluster) -> String {
    (0..3)
        .map(|i| format!("--- node {i}:\n{}", cluster.log(i)))
        .collect()
}

/// Each node's id as its `/healthz` names it, by index.
async fn node_ids(cluster: &Cluster) -> Vec<String> {
    let mut ids = Vec::new();
    for url in cluster.node_urls() {
        let (status, body) = health(&url).await;
        assert_eq!(status, 200, "{url}/healthz: {body}");
        ids.push(body["node"].as_str().expect("node id").to_owned());
    }
    ids
}

/// A node whose workers hold leases now, and those workers' names: the
/// node to take away mid-crawl.
async fn node_holding_leases(cluster: &Cluster, truth: &Truth) -> (usize, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let holders = truth
            .rows("SELECT DISTINCT worker FROM tasks WHERE state = 'leased' ORDER BY worker")
            .await;
        let node = holders
            .iter()
            .filter_map(|row| row[0].as_deref())
            .find_map(|name| cluster.node_of_worker(name));
        if let Some(node) = node {
            let workers = ["w1", "w2", "w3"]
                .into_iter()
                .filter(|name| cluster.node_of_worker(name) == Some(node))
                .map(str::to_owned)
                .collect();
            return (node, workers);
        }
        assert!(
            Instant::now() < deadline,
            "no node's workers held a lease: {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three workers of two slots through nginx, as a fleet connects.
fn fleet(cluster: &Cluster) -> Vec<ClusterWorker> {
    ["w1", "w2", "w3"]
        .into_iter()
        .map(|name| cluster.spawn_worker(name, 2, cluster.url()))
        .collect()
}

/// How many times a worker's log says it connected.
fn connections(log: &str) -> usize {
    log.matches("connected worker=").count()
}

#[actix_web::test]
async fn cluster_crawl_by_workers_on_three_nodes_keeps_politeness_and_completes_once() {
    // Arrange: two stores. One takes 150 ms a page and allows 2 fetches at
    // once; the other answers at once and allows a start every 400 ms. A
    // worker of two slots on each node, connected to it directly: six
    // slots, and three nodes that each could fill a host on their own.
    let capped = spawn_store(3, 10, Duration::from_millis(150));
    let paced = spawn_store(1, 9, Duration::ZERO);
    let sites = site(&capped, "capped", 2, 0) + &site(&paced, "paced", 4, 400);
    let cluster = cluster(sites, &[]);
    let truth = Truth::of(&cluster).await;
    let api = Api::of(&cluster);
    truth
        .execute(
            "INSERT INTO subscriptions (email, topic, status, confirms_sent, armed, fired, \
             created_at, confirmed_at) \
             VALUES ('ops@example.com', 'digest', 'confirmed', 0, TRUE, 0, now(), now())",
        )
        .await;
    let _workers = worker_on_each_node(&cluster);

    // Act
    let id = api.start_crawl().await;
    let report = api.wait_crawl(&cluster, id, Duration::from_secs(90)).await;

    // Assert: every page once, by workers on more than one node.
    assert_eq!(report["tasks"]["done"], 43, "{report}");
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    assert_eq!(capped.arrivals.lock().expect("arrivals").len(), 33);
    assert_eq!(paced.arrivals.lock().expect("arrivals").len(), 10);
    let workers = truth
        .count("SELECT COUNT(DISTINCT worker) FROM task_attempts")
        .await;
    assert!(workers >= 2, "only {workers} worker(s) took tasks");

    // Assert: politeness held for the cluster, measured at the stores.
    assert_eq!(capped.max_in_flight.load(Ordering::SeqCst), 2);
    let closest = paced.closest_starts();
    assert!(
        closest >= Duration::from_millis(400) - JITTER,
        "two fetches of a host that asks for 400 ms came {closest:?} apart"
    );

    // Assert: the crawl finished once, its catalog merged once (the first
    // nine games are in both stores), and its digest queued once.
    assert_eq!(truth.count("SELECT COUNT(*) FROM crawls").await, 1);
    assert_eq!(truth.count("SELECT COUNT(*) FROM games").await, 30);
    assert_eq!(truth.count("SELECT COUNT(*) FROM offers").await, 39);
    let deadline = Instant::now() + Duration::from_secs(20);
    while truth
        .text("SELECT digested_at::text FROM crawls")
        .await
        .is_none()
    {
        assert!(Instant::now() < deadline, "no digest for crawl {id}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let digests = format!("SELECT COUNT(*) FROM outbox WHERE key LIKE 'digest:crawl-{id}:%'");
    assert_eq!(truth.count(&digests).await, 1);
}

#[actix_web::test]
async fn cluster_node_killed_mid_crawl_loses_no_task_and_doubles_no_offer() {
    // Arrange: 63 tasks at 300 ms a page, three workers through nginx.
    let store = spawn_store(3, 20, Duration::from_millis(300));
    let cluster = cluster(store.sites(6), &[]);
    let truth = Truth::of(&cluster).await;
    let api = Api::of(&cluster);
    let mut workers = fleet(&cluster);
    let id = api.start_crawl().await;
    api.wait_done(id, 10).await;
    let (killed, orphans) = node_holding_leases(&cluster, &truth).await;

    // Act: the node dies with its leases; nothing ends them but expiry.
    cluster.kill_node(killed);
    let report = api.wait_crawl(&cluster, id, Duration::from_secs(120)).await;

    // Assert: every task done once; every game once, offered once by the
    // store.
    assert_eq!(report["tasks"]["done"], 63, "{report}");
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    assert_eq!(
        truth
            .count("SELECT COUNT(*) FROM task_attempts WHERE outcome = 'done'")
            .await,
        63
    );
    assert_eq!(truth.count("SELECT COUNT(*) FROM crawls").await, 1);
    assert_eq!(truth.count("SELECT COUNT(*) FROM games").await, 60);
    assert_eq!(truth.count("SELECT COUNT(*) FROM offers").await, 60);
    let doubled = truth
        .count(
            "SELECT COUNT(*) FROM (SELECT game_id, store FROM offers \
             GROUP BY game_id, store HAVING COUNT(*) > 1) d",
        )
        .await;
    assert_eq!(doubled, 0);

    // Assert: the dead node's workers came back through nginx, to a node
    // that lives, and still run.
    for name in &orphans {
        let index = ["w1", "w2", "w3"]
            .iter()
            .position(|w| w == name)
            .expect("a worker of the fleet");
        let worker = &mut workers[index];
        assert!(worker.running(), "{name} exited:\n{}", worker.log());
        assert!(connections(&worker.log()) >= 2, "{}", worker.log());
        let now = cluster.node_of_worker(name);
        assert!(
            now.is_some_and(|node| node != killed),
            "{name} is on node {now:?}, not back on a live one"
        );
    }
}

#[actix_web::test]
async fn cluster_scheduler_killed_hands_the_role_over_and_the_next_crawl_runs_once() {
    // Arrange: a crawl every 30 s, of a store that takes a second to crawl;
    // the first one starts as the cluster comes up.
    let store = spawn_store(1, 3, Duration::ZERO);
    let cluster = cluster(store.sites(2), &[("BAZAAR_CRAWL__EVERY", "30s")]);
    let truth = Truth::of(&cluster).await;
    let api = Api::of(&cluster);
    let _worker = cluster.spawn_worker("w1", 2, cluster.url());
    let scheduled = "SELECT COUNT(*) FROM crawls WHERE trigger = 'schedule'";
    let finished = "SELECT COUNT(*) FROM crawls WHERE trigger = 'schedule' AND status = 'finished'";
    let deadline = Instant::now() + Duration::from_secs(30);
    while truth.count(finished).await < 1 {
        assert!(
            Instant::now() < deadline,
            "no scheduled crawl finished\n{}",
            logs(&cluster)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids = node_ids(&cluster).await;
    let holder = truth
        .text("SELECT node FROM roles WHERE name = 'scheduler'")
        .await
        .expect("a node holds the scheduler role");
    let old = ids
        .iter()
        .position(|id| *id == holder)
        .unwrap_or_else(|| panic!("{holder} is none of the nodes {ids:?}"));

    // Act
    cluster.kill_node(old);
    let killed_at = Instant::now();

    // Assert: a live node holds the role within 30 s.
    let successor = loop {
        let now = truth
            .text("SELECT node FROM roles WHERE name = 'scheduler' AND held_until > now()")
            .await;
        if let Some(node) = now.filter(|node| *node != holder) {
            break node;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "no node took the scheduler role from {holder} within 30 s\n{}",
            logs(&cluster)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ids.contains(&successor), "{successor} is none of {ids:?}");

    // Assert: /api/nodes names it as the one scheduler, once it lists roles.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let listed = api.get("/api/nodes").await;
        let nodes = listed["nodes"].as_array().cloned().unwrap_or_default();
        if !nodes.iter().any(|node| node.get("scheduler").is_some()) {
            break;
        }
        let schedulers: Vec<&Value> = nodes
            .iter()
            .filter(|node| node["scheduler"] == true)
            .map(|node| &node["id"])
            .collect();
        if schedulers == [&Value::from(successor.as_str())] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/api/nodes does not name {successor} alone: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Assert: the next scheduled crawl runs, to the end, and once.
    let deadline = killed_at + Duration::from_secs(60);
    while truth.count(finished).await < 2 {
        assert!(
            Instant::now() < deadline,
            "the next scheduled crawl did not run: {:?}\n{}",
            truth
                .rows("SELECT id::text, trigger, status, started_at::text FROM crawls")
                .await,
            logs(&cluster)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Longer than the schedule's check (every 5 s), shorter than the 30 s
    // to the crawl after it: a second scheduler would have started one.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(truth.count(scheduled).await, 2);
    assert_eq!(truth.count("SELECT COUNT(*) FROM crawls").await, 2);
    assert_eq!(
        truth
            .count("SELECT COUNT(*) FROM tasks WHERE state <> 'done'")
            .await,
        0
    );
}

#[actix_web::test]
async fn cluster_node_stopped_with_sigterm_drains_its_workers_and_wastes_no_attempt() {
    // Arrange: 63 tasks at 400 ms a page, so a worker holds fetches in
    // flight when its node is told to stop.
    let store = spawn_store(3, 20, Duration::from_millis(400));
    let cluster = cluster(store.sites(6), &[]);
    let truth = Truth::of(&cluster).await;
    let api = Api::of(&cluster);
    let mut workers = fleet(&cluster);
    let id = api.start_crawl().await;
    api.wait_done(id, 8).await;
    let (stopped, drained) = node_holding_leases(&cluster, &truth).await;
    let pid = cluster.node_pid(stopped);
    let mut before = Vec::new();
    for name in &drained {
        let sql = format!("SELECT COUNT(*) FROM task_attempts WHERE worker = '{name}'");
        before.push(truth.count(&sql).await);
    }

    // A worker spoken by hand on that node, holding nothing, to read what
    // the node says to its workers.
    let token = cluster.worker_token();
    let node_ws = ws(&cluster.node_urls()[stopped]);
    let mut watcher = HandWorker::connect_to(&node_ws, &token, "watcher", 0).await;

    // Act
    cluster.terminate_node(stopped);

    // Assert: the node tells its workers to drain and come back elsewhere.
    let drain = watcher.recv_op("drain").await;
    assert_eq!(drain["reconnect"], true, "{drain}");

    // Assert: while it drains, the node takes no new worker; nginx sends
    // them on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let upgrade = awc::Client::default()
        .ws(format!("{node_ws}/ws/worker"))
        .bearer_auth(&token)
        .connect()
        .await;
    if let Ok((resp, _)) = upgrade {
        panic!("node {stopped}, stopping, took a worker: {}", resp.status());
    }

    // Assert: it exits once its workers have delivered, and the crawl ends.
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(pid) {
        assert!(
            Instant::now() < deadline,
            "node {stopped} still runs 30 s after SIGTERM\n{}",
            cluster.log(stopped)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = api.wait_crawl(&cluster, id, Duration::from_secs(90)).await;
    assert_eq!(report["tasks"]["done"], 63, "{report}");

    // Assert: no attempt was wasted: each task leased once, done once.
    let wasted = truth
        .rows(
            "SELECT lease_token, worker, outcome, error FROM task_attempts \
             WHERE outcome IS DISTINCT FROM 'done'",
        )
        .await;
    assert!(wasted.is_empty(), "attempts not done: {wasted:?}");
    assert_eq!(truth.count("SELECT COUNT(*) FROM task_attempts").await, 63);
    assert_eq!(truth.count("SELECT COUNT(*) FROM offers").await, 60);

    // Assert: its workers came back on another node and took tasks there.
    for (name, before) in drained.iter().zip(before) {
        let index = ["w1", "w2", "w3"]
            .iter()
            .position(|w| w == name)
            .expect("a worker of the fleet");
        let log = workers[index].log();
        assert!(connections(&log) >= 2, "{name} did not come back:\n{log}");
        let now = cluster.node_of_worker(name);
        assert!(
            now.is_some_and(|node| node != stopped),
            "{name} is on node {now:?}, not on another"
        );
        let sql = format!("SELECT COUNT(*) FROM task_attempts WHERE worker = '{name}'");
        let after = truth.count(&sql).await;
        assert!(after > before, "{name} took no task after the drain");
    }

    // Assert: every worker still stops cleanly when told to.
    for worker in &mut workers {
        let status = worker.terminate_and_wait(Duration::from_secs(20));
        let log = worker.log();
        let status = status.unwrap_or_else(|| panic!("a worker did not stop:\n{log}"));
        assert!(status.success(), "{status}:\n{log}");
    }
}

#[actix_web::test]
async fn cluster_stalled_mid_crawl_still_spaces_a_hosts_fetches() {
    // Arrange: a store that answers at once and allows a start every
    // 300 ms, and a worker on each node.
    let store = spawn_store(2, 15, Duration::ZERO);
    let cluster = cluster(site(&store, "paced", 4, 300), &[]);
    let api = Api::of(&cluster);
    let _workers = worker_on_each_node(&cluster);
    let nodes: Vec<i32> = (0..3).map(|i| cluster.node_pid(i)).collect();
    let signal = |signal: i32| {
        for &pid in &nodes {
            unsafe { libc::kill(pid, signal) };
        }
    };

    // Act: four times, every node stops dead just before the next fetch
    // goes out (a delay after the last arrival, less the lead it was
    // leased with), for longer than the delay. Whichever node wakes
    // first finds the next start due too.
    let id = api.start_crawl().await;
    for n in [4, 10, 16, 22] {
        let last = store.arrival(n).await;
        tokio::time::sleep_until((last + Duration::from_millis(292)).into()).await;
        signal(libc::SIGSTOP);
        tokio::time::sleep(Duration::from_millis(450)).await;
        signal(libc::SIGCONT);
    }
    let report = api.wait_crawl(&cluster, id, Duration::from_secs(90)).await;

    // Assert: every page once, and still a delay between any two.
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    assert_eq!(store.arrivals.lock().expect("arrivals").len(), 32);
    let closest = store.closest_starts();
    assert!(
        closest >= Duration::from_millis(300) - JITTER,
        "two fetches of a host that asks for 300 ms came {closest:?} apart"
    );
}
