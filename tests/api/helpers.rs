//! `spawn_app()` and friends: each test gets its own server process, data dir,
//! port and database (a SQLite file, or a fresh database on a PostgreSQL
//! server this test binary starts once).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer};
use bazaar_bench::store::{self, GeneratedStore};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::Value;

/// The repository's root: the tests belong to `cli/`, one level down.
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from an `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[actix_web::test]
            async fn on_sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[actix_web::test]
            async fn on_postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// How to start the server under test.
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub local_workers: u32,
    pub slots: u32,
    /// A sites.toml text; `None` means the built-in demo stores.
    pub sites: Option<String>,
    pub lease: &'static str,
    pub heartbeat: &'static str,
    pub max_attempts: u32,
    pub env: Vec<(String, String)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            local_workers: 0,
            slots: 4,
            sites: None,
            lease: "4s",
            heartbeat: "1s",
            max_attempts: 4,
            env: Vec::new(),
        }
    }
}

impl AppOptions {
    /// The defaults, with the server logging JSON lines, as an operator
    /// following a request or a worker through the log would read them.
    pub fn json_logs() -> AppOptions {
        AppOptions {
            env: vec![("BAZAAR_LOG__FORMAT".into(), "json".into())],
            ..AppOptions::default()
        }
    }
}

/// A running server and what a test needs to reach it.
pub struct TestApp {
    pub base: String,
    pub ws: String,
    pub dir: tempfile::TempDir,
    pub db: DatabaseConnection,
    pub worker_token: String,
    pub api_token: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub client: awc::Client,
}

pub async fn spawn_app(backend: Backend, options: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let db_url = match backend {
        Backend::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bazaar.db").display()
        ),
        Backend::Postgres => postgres().create_database().await,
    };
    let mut env: Vec<(String, String)> = vec![
        ("BAZAAR_DATA_DIR".into(), dir.path().display().to_string()),
        ("BAZAAR_SERVER__BIND".into(), format!("127.0.0.1:{port}")),
        ("BAZAAR_SERVER__PUBLIC_URL".into(), base.clone()),
        ("BAZAAR_DATABASE__URL".into(), db_url.clone()),
        (
            "BAZAAR_WORKERS__LOCAL".into(),
            options.local_workers.to_string(),
        ),
        ("BAZAAR_WORKERS__SLOTS".into(), options.slots.to_string()),
        ("BAZAAR_WORKERS__LEASE".into(), options.lease.into()),
        ("BAZAAR_WORKERS__HEARTBEAT".into(), options.heartbeat.into()),
        ("BAZAAR_CRAWL__EVERY".into(), "0s".into()),
        ("BAZAAR_CRAWL__STALE_AFTER".into(), "100days".into()),
        (
            "BAZAAR_CRAWL__MAX_ATTEMPTS".into(),
            options.max_attempts.to_string(),
        ),
        ("BAZAAR_CRAWL__RETRY_BASE".into(), "200ms".into()),
        ("BAZAAR_CRAWL__RETRY_MAX".into(), "1s".into()),
        ("RUST_LOG".into(), "info,sqlx=warn".into()),
    ];
    if let Some(sites) = &options.sites {
        let path = dir.path().join("sites.toml");
        std::fs::write(&path, sites).expect("write sites");
        env.push((
            "BAZAAR_CRAWL__SITES_FILE".into(),
            path.display().to_string(),
        ));
    }
    env.extend(options.env.iter().cloned());
    let mut app = TestApp {
        ws: format!("ws://127.0.0.1:{port}"),
        base,
        db: Database::connect(db_url.as_str())
            .await
            .expect("connect to the test database"),
        dir,
        worker_token: String::new(),
        api_token: String::new(),
        env,
        child: None,
        client: awc::Client::builder()
            .timeout(Duration::from_secs(20))
            .finish(),
    };
    app.start().await;
    app.worker_token = read_secret(app.dir.path(), "worker_token");
    app.api_token = read_secret(app.dir.path(), "api_token");
    app
}

fn read_secret(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .expect("secret written")
        .trim()
        .to_owned()
}

impl TestApp {
    /// A second `bazaar serve` on its own port, sharing this one's database
    /// and data dir (so its secrets and session key): another node.
    pub async fn spawn_sibling(&self) -> TestApp {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut env = self.env.clone();
        for (key, value) in env.iter_mut() {
            match key.as_str() {
                "BAZAAR_SERVER__BIND" => *value = format!("127.0.0.1:{port}"),
                "BAZAAR_SERVER__PUBLIC_URL" => *value = base.clone(),
                _ => {}
            }
        }
        let mut sibling = TestApp {
            ws: format!("ws://127.0.0.1:{port}"),
            base,
            db: self.db.clone(),
            dir: tempfile::tempdir().expect("temp dir"),
            worker_token: self.worker_token.clone(),
            api_token: self.api_token.clone(),
            env,
            child: None,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(20))
                .finish(),
        };
        sibling.start().await;
        sibling
    }

    /// Starts the server process and waits until it answers.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_bazaar"))
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bazaar serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
            {
                if resp.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not start; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The environment the server runs with, for other commands on its data.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    /// Sends SIGTERM, as an orderly stop would, and waits for the process to
    /// exit; `None` if it did not within `timeout`.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Stops the server with SIGSTOP for `pause`, then lets it go on: a
    /// stall, as a swapping or overloaded machine gives, after which every
    /// timer that came due meanwhile fires at once.
    pub async fn freeze(&self, pause: Duration) {
        let pid = self.child.as_ref().expect("a running server").id() as i32;
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        tokio::time::sleep(pause).await;
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn worker_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("worker-{name}.log")))
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The first JSON log line that `matches`, waiting up to 5 s for the
    /// server to write it (see `AppOptions::json_logs`).
    pub async fn json_log_line(&self, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            let found = log
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|line| matches(line));
            if let Some(line) = found {
                return line;
            }
            assert!(Instant::now() < deadline, "no such line in:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get_html(path).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub async fn get_html(&self, path: &str) -> (u16, String) {
        let mut resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        let body = resp.body().limit(4 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Starts a crawl through the API and returns its id.
    pub async fn start_crawl(&self) -> i64 {
        let mut resp = self
            .client
            .post(format!("{}/api/crawls", self.base))
            .bearer_auth(&self.api_token)
            .send()
            .await
            .expect("POST /api/crawls");
        assert_eq!(resp.status().as_u16(), 201, "crawl not started");
        let body: Value = resp.json().await.expect("json");
        body["id"].as_i64().expect("crawl id")
    }

    /// Waits for a crawl to finish and returns its report.
    pub async fn wait_crawl(&self, id: i64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, report) = self.get_json(&format!("/api/crawls/{id}")).await;
            if report["status"] == "finished" {
                return report;
            }
            assert!(
                Instant::now() < deadline,
                "crawl {id} did not finish: {report}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `done` tasks of a crawl are done.
    pub async fn wait_done(&self, id: i64, done: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, report) = self.get_json(&format!("/api/crawls/{id}")).await;
            if report["tasks"]["done"].as_u64().unwrap_or(0) >= done {
                return;
            }
            assert!(Instant::now() < deadline, "crawl {id} stalled: {report}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a `bazaar worker` against this server.
    pub fn spawn_worker(&self, name: &str, slots: u32, env: &[(&str, &str)]) -> WorkerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bazaar"));
        command.arg("worker");
        self.start_worker(command, name, slots, env)
    }

    /// Starts `bazaar-worker`, the worker's binary of its own, against this
    /// server. It is the worker crate's, so only a build of the workspace
    /// (as `scripts/test` runs) puts it beside `bazaar`.
    pub fn spawn_standalone_worker(&self, name: &str, slots: u32) -> WorkerProcess {
        let binary = Path::new(env!("CARGO_BIN_EXE_bazaar")).with_file_name("bazaar-worker");
        assert!(
            binary.exists(),
            "{} is not built: run the tests with --workspace, or cargo build -p bazaar-worker",
            binary.display()
        );
        self.start_worker(Command::new(binary), name, slots, &[])
    }

    fn start_worker(
        &self,
        mut command: Command,
        name: &str,
        slots: u32,
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("worker-{name}.log")))
            .expect("log file");
        let child = command
            .args([
                "--server",
                &self.ws,
                "--name",
                name,
                "--slots",
                &slots.to_string(),
            ])
            .env("BAZAAR_WORKER_TOKEN", &self.worker_token)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bazaar worker");
        WorkerProcess::new(child)
    }

    /// A connection of its own to the server's database, for a test that
    /// holds a transaction open while it reads through `db`.
    pub async fn own_connection(&self) -> DatabaseConnection {
        let url = self
            .env
            .iter()
            .find(|(key, _)| key == "BAZAAR_DATABASE__URL")
            .map(|(_, url)| url.as_str())
            .expect("the database URL");
        Database::connect(url)
            .await
            .expect("connect to the test database")
    }

    /// Runs a query that yields one integer.
    pub async fn count(&self, sql: &str) -> i64 {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one(sea_orm::Statement::from_string(backend, sql.to_owned()))
            .await
            .expect("query")
            .expect("a row");
        // COUNT is BIGINT on PostgreSQL, INTEGER columns are not.
        row.try_get_by_index::<i64>(0)
            .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
            .expect("an integer")
    }

    /// Runs a query and returns every row, each column as text (integers
    /// and text columns only; NULL is the empty string).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all(sea_orm::Statement::from_string(backend, sql.to_owned()))
            .await
            .expect("query");
        rows.iter()
            .map(|row| {
                (0..row.column_names().len())
                    .map(|i| {
                        row.try_get_by_index::<Option<String>>(i)
                            .map(Option::unwrap_or_default)
                            .or_else(|_| {
                                row.try_get_by_index::<Option<i64>>(i)
                                    .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
                            })
                            .or_else(|_| {
                                row.try_get_by_index::<Option<i32>>(i)
                                    .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
                            })
                            .expect("an integer or text column")
                    })
                    .collect()
            })
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A worker process, killed when dropped.
pub struct WorkerProcess {
    child: Option<Child>,
}

impl WorkerProcess {
    pub fn new(child: Child) -> WorkerProcess {
        WorkerProcess { child: Some(child) }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit on its own.
    pub fn terminate_and_wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `bazaar ARGS` with `env` set and `stdin` as its input (a password,
/// as an operator types it); waits for it and returns its output.
pub fn run_bazaar(args: &[&str], env: &[(String, String)], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bazaar");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for bazaar")
}

/// A port nothing listens on, never the same twice in this test process:
/// the kernel may hand a just-released port to the next caller, and two tests
/// starting servers on one port would talk to each other's.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A generated store served by the test process, which counts the requests
/// in flight so politeness can be measured from the store's side.
pub struct TestStore {
    pub base: String,
    pub max_in_flight: Arc<AtomicUsize>,
    /// When each request arrived, in order.
    pub arrivals: Arc<std::sync::Mutex<Vec<Instant>>>,
    handle: actix_web::dev::ServerHandle,
}

/// The least time between two of `arrivals` in turn.
pub fn closest_starts(arrivals: &[Instant]) -> Duration {
    arrivals
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .min()
        .expect("two requests or more")
}

pub fn spawn_store(listings: usize, per_listing: usize, latency: Duration) -> TestStore {
    spawn_store_with(GeneratedStore {
        pages: listings,
        latency,
        per_listing,
        crawl_delay: None,
    })
}

/// A generated store, counting requests as `spawn_store` does.
pub fn spawn_store_with(generated: GeneratedStore) -> TestStore {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (now, max, seen) = (in_flight.clone(), max_in_flight.clone(), arrivals.clone());
    let server = HttpServer::new(move || {
        let (now, max, seen) = (now.clone(), max.clone(), seen.clone());
        App::new()
            .wrap_fn(move |req, srv| {
                seen.lock().expect("arrivals").push(Instant::now());
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(n, Ordering::SeqCst);
                let now = now.clone();
                let fut = actix_web::dev::Service::call(srv, req);
                async move {
                    let res = fut.await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    res
                }
            })
            .configure(|cfg| store::configure(cfg, generated))
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .expect("bind store");
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    TestStore {
        base,
        max_in_flight,
        arrivals,
        handle,
    }
}

impl TestStore {
    /// When request `n` (from 0) arrives, waiting up to a minute for it.
    pub async fn arrival(&self, n: usize) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(&at) = self.arrivals.lock().expect("arrivals").get(n) {
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "request {n} did not reach the store within a minute"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The least time between two requests that reached the store in turn.
    pub fn closest_starts(&self) -> Duration {
        closest_starts(&self.arrivals.lock().expect("arrivals"))
    }

    pub fn sites(&self, concurrency: u32) -> String {
        store::sites_toml(&self.base, concurrency)
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

/// The PostgreSQL server shared by this test binary.
pub struct Postgres {
    port: u16,
    next: AtomicUsize,
    /// Lives as long as the test process; it stops PostgreSQL when we exit.
    _watchdog: Child,
}

static POSTGRES: OnceLock<Postgres> = OnceLock::new();

pub fn postgres() -> &'static Postgres {
    POSTGRES.get_or_init(Postgres::start)
}

impl Postgres {
    /// initdb + postgres on a free port, as the `postgres` user when run as
    /// root (PostgreSQL refuses to run as root). A shell watchdog stops the
    /// server when this test process exits, and removes its folder unless
    /// PostgreSQL had died on its own: then its log is worth keeping.
    fn start() -> Postgres {
        let bin = PathBuf::from(
            std::env::var("BAZAAR_TEST_PG_BIN")
                .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        let root = tempfile::Builder::new()
            .prefix("bazaar-pg-")
            .tempdir()
            .expect("pg dir")
            .keep();
        let data = root.join("data");
        std::fs::create_dir_all(&data).expect("pg data dir");
        let as_root = unsafe { libc::geteuid() } == 0;
        let prefix = if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root)
                .status()
                .expect("chown");
            assert!(status.success(), "chown failed");
            "setpriv --reuid postgres --regid postgres --clear-groups ".to_owned()
        } else {
            String::new()
        };
        let initdb =
            format!(
            "{prefix}{}/initdb -D {} -U postgres -A trust --no-sync -E UTF8 >{}/initdb.log 2>&1",
            bin.display(), data.display(), root.display()
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(&initdb)
            .status()
            .expect("initdb");
        assert!(
            status.success(),
            "initdb failed; see {}/initdb.log",
            root.display()
        );
        let port = free_port();
        let script = format!(
            "{prefix}{bin}/postgres -D {data} -p {port} -k {root} -c listen_addresses=127.0.0.1 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
             >{root}/postgres.log 2>&1 & pg=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill -INT $pg; \
             wait $pg && rm -rf {root}",
            bin = bin.display(),
            data = data.display(),
            root = root.display(),
            parent = std::process::id()
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::null())
            .spawn()
            .expect("start postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres did not start; see {}/postgres.log",
                root.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Postgres {
            port,
            next: AtomicUsize::new(0),
            _watchdog: watchdog,
        }
    }

    /// A new, empty database; returns its URL.
    pub async fn create_database(&self) -> String {
        let name = format!(
            "bazaar_{}_{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::SeqCst)
        );
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        let db = loop {
            match Database::connect(admin.as_str()).await {
                Ok(db) => break db,
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "postgres refused connections: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        db.close().await.ok();
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}
