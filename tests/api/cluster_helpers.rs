//! `Cluster`: PostgreSQL, Redis, N `bazaar serve` nodes and nginx in front
//! of them, started by `deploy/cluster.sh` in a temp dir exactly as an
//! operator starts them, and stopped by it when dropped. Independent of
//! `spawn_app`: a cluster is the script's, not this test process's.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, WorkerProcess};

/// The script under test, from this checkout.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/cluster.sh");

/// Settings every node gets beyond the script's own: no crawl unless a
/// test starts one, so nodes sit quiet.
const NODE_ENV: [(&str, &str); 3] = [
    ("BAZAAR_CRAWL__EVERY", "0s"),
    ("BAZAAR_CRAWL__STALE_AFTER", "100days"),
    ("RUST_LOG", "info,sqlx=warn"),
];

/// How to start a cluster beyond its node count.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// A sites.toml text for every node; `None` means the demo stores.
    pub sites: Option<String>,
    /// More `BAZAAR_*` settings for every node, over `NODE_ENV`.
    pub env: Vec<(String, String)>,
}

/// A running cluster in its own folder.
pub struct Cluster {
    /// `None` once dropped or kept for a failed test's post-mortem.
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    url: String,
    nodes: usize,
    /// What the nodes get beyond `NODE_ENV`, again on every `start`.
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Runs `cluster.sh up` with this test build's binary and returns once
    /// nginx passes `/healthz` through to every node. Panics with the
    /// script's message when it fails, which names any missing package.
    pub fn start(nodes: usize) -> Cluster {
        Cluster::start_with(nodes, ClusterOptions::default())
    }

    /// `start`, with a sites file and settings of the test's own.
    pub fn start_with(nodes: usize, options: ClusterOptions) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("bazaar-cluster-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut env = options.env;
        if let Some(sites) = &options.sites {
            let path = dir.path().join("sites.toml");
            std::fs::write(&path, sites).expect("write sites.toml");
            env.push((
                "BAZAAR_CRAWL__SITES_FILE".into(),
                path.display().to_string(),
            ));
        }
        let mut cluster = Cluster {
            path: dir.path().to_owned(),
            dir: Some(dir),
            url: format!("http://127.0.0.1:{port}"),
            nodes,
            env,
        };
        let out = cluster.script(&[
            "up",
            "--nodes",
            &nodes.to_string(),
            "--port",
            &port.to_string(),
        ]);
        if !out.status.success() {
            // The script stopped what it started; only its logs are left.
            let kept = cluster.dir.take().map(tempfile::TempDir::keep);
            panic!(
                "deploy/cluster.sh up failed ({}); logs in {}:\n{}",
                out.status,
                kept.unwrap_or_default().display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        cluster
    }

    /// nginx's URL, the one clients use.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Each node's own URL, bypassing nginx; node `i` is `node_urls()[i]`.
    pub fn node_urls(&self) -> Vec<String> {
        (0..self.nodes)
            .map(|i| format!("http://127.0.0.1:{}", self.port(&node(i))))
            .collect()
    }

    /// The API token every node shares.
    pub fn api_token(&self) -> String {
        self.read("api_token")
    }

    /// The token workers present to any node.
    pub fn worker_token(&self) -> String {
        self.read("worker_token")
    }

    /// The database every node shares.
    pub fn postgres_url(&self) -> String {
        self.setting("database_url")
    }

    pub fn redis_port(&self) -> u16 {
        self.port("redis")
    }

    /// The PID of node `i` (counted from 0; the script calls it node-{i+1}).
    pub fn node_pid(&self, i: usize) -> i32 {
        self.pid(&node(i)).expect("node PID recorded")
    }

    /// Every part the script recorded as started, by name.
    pub fn pids(&self) -> Vec<(String, i32)> {
        let mut parts = vec!["postgres".to_owned(), "redis".to_owned()];
        parts.extend((0..self.nodes).map(node));
        parts.push("nginx".to_owned());
        parts
            .into_iter()
            .filter_map(|name| self.pid(&name).map(|pid| (name, pid)))
            .collect()
    }

    /// SIGKILL to node `i`, as a crash would; returns once it is gone.
    pub fn kill_node(&self, i: usize) {
        signal_and_wait(self.node_pid(i), libc::SIGKILL);
    }

    /// SIGTERM to node `i`, as an orderly stop would; returns at once, so
    /// that a test can watch the node leave.
    pub fn terminate_node(&self, i: usize) {
        unsafe { libc::kill(self.node_pid(i), libc::SIGTERM) };
    }

    /// Starts node `i` again on its port and waits for its `/healthz`.
    pub fn start_node(&self, i: usize) {
        self.run_ok(&["start", &node(i)]);
    }

    /// SIGKILL to Redis; returns once it is gone.
    pub fn kill_redis(&self) {
        signal_and_wait(
            self.pid("redis").expect("redis PID recorded"),
            libc::SIGKILL,
        );
    }

    /// Starts Redis again on the port it had.
    pub fn start_redis(&self) {
        self.run_ok(&["start", "redis"]);
    }

    /// What node `i` has logged so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.path.join("logs").join(format!("{}.log", node(i))))
            .unwrap_or_default()
    }

    /// The folder everything lives in.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// Starts `bazaar worker --server server` (nginx's URL or a node's)
    /// with the cluster's worker token, logging to `logs/worker-{name}.log`.
    /// It works from the cluster's folder, so `processes_of` finds it.
    pub fn spawn_worker(&self, name: &str, slots: u32, server: &str) -> ClusterWorker {
        let log_path = self.path.join("logs").join(format!("worker-{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("worker log file");
        let child = Command::new(env!("CARGO_BIN_EXE_bazaar"))
            .args([
                "worker",
                "--server",
                &ws(server),
                "--name",
                name,
                "--slots",
                &slots.to_string(),
            ])
            .current_dir(&self.path)
            .env("BAZAAR_WORKER_TOKEN", self.worker_token())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bazaar worker");
        ClusterWorker {
            process: WorkerProcess::new(child),
            log: log_path,
        }
    }

    /// The node worker `name` is connected to now, by what the nodes
    /// logged: the live one that saw it connect more often than leave.
    /// `None` while it is between nodes.
    pub fn node_of_worker(&self, name: &str) -> Option<usize> {
        // The fields after the name keep `w1` from matching `w10`.
        let needle = format!("name={name} ");
        (0..self.nodes).find(|&i| {
            // A killed node's log still shows the workers it had.
            if !self.pid(&node(i)).is_some_and(running) {
                return false;
            }
            let log = self.log(i);
            let lines = |what: &str| {
                log.lines()
                    .filter(|line| line.contains(what) && line.contains(&needle))
                    .count()
            };
            lines("worker connected") > lines("worker disconnected")
        })
    }

    fn script(&self, args: &[&str]) -> Output {
        let mut command = Command::new("bash");
        command
            .arg(SCRIPT)
            .args(args)
            .arg("--dir")
            .arg(&self.path)
            .env("BAZAAR_BIN", env!("CARGO_BIN_EXE_bazaar"))
            .envs(NODE_ENV)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // scripts/test says where PostgreSQL is; the script has its own name
        // for it.
        if let Ok(pg) = std::env::var("BAZAAR_TEST_PG_BIN") {
            command.env("BAZAAR_PG_BIN", pg);
        }
        command.output().expect("run deploy/cluster.sh")
    }

    fn run_ok(&self, args: &[&str]) {
        let out = self.script(args);
        assert!(
            out.status.success(),
            "deploy/cluster.sh {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path.join(file))
            .unwrap_or_else(|e| panic!("{file} in {}: {e}", self.path.display()))
            .trim()
            .to_owned()
    }

    /// A `name value` line of one of the script's files.
    fn lookup(&self, file: &str, key: &str) -> Option<String> {
        self.read(file).lines().find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == key).then(|| value.to_owned())
        })
    }

    fn setting(&self, key: &str) -> String {
        self.lookup("settings", key)
            .unwrap_or_else(|| panic!("no {key} in the cluster's settings"))
    }

    fn port(&self, part: &str) -> u16 {
        self.lookup("ports", part)
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port recorded for {part}"))
    }

    fn pid(&self, part: &str) -> Option<i32> {
        std::fs::read_to_string(self.path.join("pids").join(format!("{part}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else {
            return;
        };
        let out = self.script(&["down"]);
        if !out.status.success() {
            eprintln!(
                "deploy/cluster.sh down failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if std::thread::panicking() {
            eprintln!("the cluster's logs are kept in {}", dir.keep().display());
        }
    }
}

/// A `bazaar worker` process started by `Cluster::spawn_worker`, killed
/// when dropped, with its log.
pub struct ClusterWorker {
    process: WorkerProcess,
    log: PathBuf,
}

impl ClusterWorker {
    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        self.process.running()
    }

    pub fn terminate_and_wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.terminate_and_wait(timeout)
    }
}

/// The script's name for node `i`.
fn node(i: usize) -> String {
    format!("node-{}", i + 1)
}

/// Whether `pid` is a live process: a zombie has ended, only its parent
/// has not collected it yet.
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z')
        })
        .unwrap_or(false)
}

fn signal_and_wait(pid: i32, signal: i32) {
    unsafe { libc::kill(pid, signal) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        assert!(
            Instant::now() < deadline,
            "PID {pid} outlived signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live processes that belong to what was run in `dir`: they name it on
/// their command line or in their environment, work inside it, or are
/// children of one of `pids`.
pub fn processes_of(dir: &Path, pids: &[i32]) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let parents: HashSet<i32> = pids.iter().copied().collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| running(pid))
        .filter_map(|pid| {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(proc.join("environ")).unwrap_or_default();
            let cwd = std::fs::read_link(proc.join("cwd")).unwrap_or_default();
            let parent = std::fs::read_to_string(proc.join("stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(") ")?
                        .1
                        .split(' ')
                        .nth(1)?
                        .parse::<i32>()
                        .ok()
                });
            let names_dir = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(&dir);
            let ours = names_dir(&cmdline)
                || names_dir(&environ)
                || cwd.starts_with(&dir)
                || parent.is_some_and(|p| parents.contains(&p));
            ours.then(|| {
                format!(
                    "{pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                )
            })
        })
        .collect()
}

/// The node a connection is on: the middle part of `c-<node>-<n>`.
pub fn node_of(conn: &str) -> String {
    conn.split('-').nth(1).unwrap_or_default().to_owned()
}

/// The WebSocket base of an `http://` URL.
pub fn ws(url: &str) -> String {
    url.replacen("http", "ws", 1)
}

/// A node's `/healthz`: its status and body.
pub async fn health(url: &str) -> (u16, serde_json::Value) {
    let mut resp = awc::Client::default()
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (resp.status().as_u16(), body)
}
