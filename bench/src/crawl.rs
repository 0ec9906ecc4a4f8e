//! The crawl benchmark: generated stores on loopback, a real `bazaar serve`
//! process with N local workers, one crawl timed from creation to completion.
//! With `--hosts` and `--delay-ms`, the stores are that many hosts, each
//! asking for that politeness delay, and the run says how close the crawl
//! came to the rate the delays allow. With `--cluster N`, each run crawls
//! with a fresh cluster of N nodes behind nginx (`deploy/cluster.sh`), and
//! the workers are `bazaar worker` processes connected through nginx.
//! With `--store serial`, the store's listings link only to the next one,
//! and nginx serves it as static files, adding no latency of its own.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{ServerHandle, Service};
use actix_web::{App, HttpServer};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::pin::CpuSet;
use super::store::{self, GeneratedStore, SerialStore};
use super::{proc_status_kib, ChildServer};

#[derive(Debug, Args)]
pub struct CrawlBench {
    /// Game pages in the generated store.
    #[arg(long, default_value_t = 2000)]
    pages: usize,
    /// How the store's listings link to each other.
    #[arg(long, value_enum, default_value_t = Shape::Paginated)]
    store: Shape,
    /// The nginx that serves `--store serial`.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// Worker counts to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4])]
    workers: Vec<u32>,
    /// Slots per worker.
    #[arg(long, default_value_t = 8)]
    slots: u32,
    /// Store latencies to measure, in milliseconds per page [default: 0,50;
    /// with `--store serial`, which nginx serves as it is: 0].
    #[arg(long, value_delimiter = ',')]
    latency_ms: Vec<u64>,
    /// Hosts the game pages are spread over, each its own site.
    #[arg(long, default_value_t = 1)]
    hosts: usize,
    /// The politeness delay every host asks for, in milliseconds (0: none;
    /// then each host allows as many fetches at once as there are slots).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Crawl with a cluster of this many nodes behind nginx instead of one
    /// server, started afresh for each run (0: one `bazaar serve`).
    #[arg(long, default_value_t = 0)]
    cluster: usize,
    /// The script that starts and stops the cluster.
    #[arg(long, default_value = "deploy/cluster.sh")]
    cluster_script: PathBuf,
}

/// The generated store's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shape {
    /// 20 games per listing and a paginator (the first and last pages and
    /// five either side), served by this process with the latency asked
    /// for: the crawl finds many listings at once.
    Paginated,
    /// 40 games per listing and a link to the next listing only, served by
    /// nginx as static files: each listing is found on the one before.
    Serial,
}

impl Shape {
    /// Games per listing page.
    fn per_listing(self) -> usize {
        match self {
            Shape::Paginated => 20,
            Shape::Serial => 40,
        }
    }
}

struct Run {
    latency_ms: u64,
    /// Requests the stores saw (robots.txt is not fetched).
    requests: u64,
    workers: u32,
    tasks: u64,
    seconds: f64,
    peak_rss_kib: u64,
}

pub async fn run(bench: CrawlBench) -> anyhow::Result<()> {
    if bench.hosts == 0 {
        bail!("--hosts must be at least 1");
    }
    let latencies = match (bench.store, bench.latency_ms.is_empty()) {
        (Shape::Paginated, true) => vec![0, 50],
        (Shape::Serial, true) => vec![0],
        (Shape::Serial, false) if bench.latency_ms.iter().any(|&ms| ms > 0) => {
            bail!("--store serial is served by nginx as it is, with no latency: --latency-ms must be 0")
        }
        (_, false) => bench.latency_ms.clone(),
    };
    let exe = std::env::current_exe().context("could not find the bazaar binary")?;
    let per_listing = bench.store.per_listing();
    let listings = bench.pages.div_ceil(bench.hosts).div_ceil(per_listing);
    // With delays, the delays bound the rate: hosts × 1000 / delay_ms.
    let allowed = (bench.delay_ms > 0).then(|| bench.hosts as f64 * 1000.0 / bench.delay_ms as f64);
    // Every task but the listings is a game page.
    let pages = |run: &Run| {
        run.tasks
            .saturating_sub(run.tasks.div_ceil(per_listing as u64 + 1))
    };
    let mut runs = Vec::new();
    for &latency_ms in &latencies {
        let mut stores = match bench.store {
            Shape::Paginated => Stores::in_process(
                GeneratedStore {
                    pages: listings,
                    latency: Duration::from_millis(latency_ms),
                    per_listing,
                    crawl_delay: None,
                },
                bench.hosts,
            )?,
            Shape::Serial => {
                let store = SerialStore {
                    listings,
                    per_listing,
                };
                Stores::nginx(&bench.nginx, store, bench.hosts).await?
            }
        };
        let bases = stores.bases.clone();
        for &workers in &bench.workers {
            // Without a delay, each host may be fetched by every slot at once.
            let concurrency = if bench.delay_ms > 0 {
                4
            } else {
                workers * bench.slots
            };
            let sites = store::sites_toml_for(&bases, concurrency, bench.delay_ms);
            stores.reset();
            let mut run = if bench.cluster > 0 {
                let cluster = ClusterRun {
                    exe: &exe,
                    script: &bench.cluster_script,
                    nodes: bench.cluster,
                };
                cluster
                    .run(&sites, latency_ms, workers, bench.slots)
                    .await?
            } else {
                one_run(&sites, latency_ms, workers, bench.slots).await?
            };
            let (count, rate) = stores.requests()?;
            run.requests = count;
            let pace = allowed.map_or(String::new(), |allowed| {
                format!(
                    "  {rate:>6.0} requests/s at the stores, of {allowed:.0} the delays allow ({:.0}%)",
                    100.0 * rate / allowed
                )
            });
            let nodes = match bench.cluster {
                0 => String::new(),
                n => format!("{n} nodes  "),
            };
            println!(
                "{nodes}latency {:>3} ms  workers {}×{}  {:>5} tasks in {:>6.2} s  {:>7.0} tasks/s  {:>7.0} game pages/s  peak RSS {} MiB{pace}",
                run.latency_ms, run.workers, bench.slots, run.tasks, run.seconds,
                run.tasks as f64 / run.seconds, pages(&run) as f64 / run.seconds, run.peak_rss_kib / 1024
            );
            runs.push(run);
        }
        stores.stop().await;
    }
    println!("\nlatency_ms,workers,slots,hosts,delay_ms,tasks,requests,seconds,tasks_per_s,pages_per_s,peak_rss_kib,nodes");
    for r in &runs {
        println!(
            "{},{},{},{},{},{},{},{:.3},{:.1},{:.1},{},{}",
            r.latency_ms,
            r.workers,
            bench.slots,
            bench.hosts,
            bench.delay_ms,
            r.tasks,
            r.requests,
            r.seconds,
            r.tasks as f64 / r.seconds,
            pages(r) as f64 / r.seconds,
            r.peak_rss_kib,
            bench.cluster.max(1)
        );
    }
    Ok(())
}

/// Requests the stores saw, and when the first and the last arrived: the
/// pace a store sees, without the crawl's start and end around it.
#[derive(Default)]
struct Requests {
    // A std Mutex: held for a few instructions per request, never across an
    // await.
    seen: std::sync::Mutex<(u64, Option<Instant>, Option<Instant>)>,
}

impl Requests {
    fn arrived(&self) {
        if let Ok(mut seen) = self.seen.lock() {
            let now = Instant::now();
            seen.0 += 1;
            seen.1.get_or_insert(now);
            seen.2 = Some(now);
        }
    }

    fn reset(&self) {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = (0, None, None);
        }
    }

    /// How many requests, and how many a second from the first to the last.
    fn rate(&self) -> (u64, f64) {
        let Ok(seen) = self.seen.lock() else {
            return (0, 0.0);
        };
        let (count, first, last) = *seen;
        let span = first.zip(last).map(|(first, last)| last - first);
        (count, per_second(count, span.map(|d| d.as_secs_f64())))
    }
}

/// Requests a second, from the first of `count` to the last `seconds` later.
fn per_second(count: u64, seconds: Option<f64>) -> f64 {
    match seconds {
        Some(seconds) if count > 1 && seconds > 0.0 => (count - 1) as f64 / seconds,
        _ => 0.0,
    }
}

/// The generated stores a run crawls, one per host, and the requests they
/// see.
pub(super) struct Stores {
    pub bases: Vec<String>,
    server: StoreServer,
}

enum StoreServer {
    /// The paginated store, served by this process.
    InProcess {
        handle: ServerHandle,
        requests: Arc<Requests>,
    },
    /// The serial store's files, served by nginx.
    Nginx(Nginx),
}

impl Stores {
    /// `store` served by this process on `hosts` loopback ports.
    pub(super) fn in_process(store: GeneratedStore, hosts: usize) -> anyhow::Result<Stores> {
        let requests = Arc::new(Requests::default());
        let counter = requests.clone();
        let mut server = HttpServer::new(move || {
            let counter = counter.clone();
            App::new()
                .wrap_fn(move |req, srv| {
                    counter.arrived();
                    srv.call(req)
                })
                .configure(|cfg| store::configure(cfg, store))
        })
        .workers(1)
        // Ctrl-C is the benchmark's: it stops the whole run (`run`), not
        // just this store.
        .disable_signals();
        for _ in 0..hosts {
            server = server.bind("127.0.0.1:0")?;
        }
        let bases = server
            .addrs()
            .iter()
            .map(|addr| format!("http://{addr}"))
            .collect();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(Stores {
            bases,
            server: StoreServer::InProcess { handle, requests },
        })
    }

    /// `store` written to a temp dir and served by nginx on `hosts`
    /// loopback ports, each the same store.
    async fn nginx(exe: &Path, store: SerialStore, hosts: usize) -> anyhow::Result<Stores> {
        let nginx = Nginx::start(exe, store, hosts).await?;
        Ok(Stores {
            bases: nginx.bases(),
            server: StoreServer::Nginx(nginx),
        })
    }

    /// Counts requests from now on.
    fn reset(&mut self) {
        match &mut self.server {
            StoreServer::InProcess { requests, .. } => requests.reset(),
            StoreServer::Nginx(nginx) => nginx.reset(),
        }
    }

    /// Requests since `reset`, and how many a second from the first to the
    /// last.
    fn requests(&self) -> anyhow::Result<(u64, f64)> {
        match &self.server {
            StoreServer::InProcess { requests, .. } => Ok(requests.rate()),
            StoreServer::Nginx(nginx) => nginx.requests(),
        }
    }

    pub(super) async fn stop(self) {
        match self.server {
            StoreServer::InProcess { handle, .. } => handle.stop(false).await,
            // Stopped when dropped.
            StoreServer::Nginx(nginx) => drop(nginx),
        }
    }
}

/// nginx serving a [`SerialStore`] from a temp dir that holds its files,
/// config, pid file and logs; a child of this process, stopped by its PID
/// when dropped.
struct Nginx {
    child: std::process::Child,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    /// Where the access log stood at the last `reset`.
    logged: u64,
}

impl Nginx {
    async fn start(exe: &Path, store: SerialStore, hosts: usize) -> anyhow::Result<Nginx> {
        if !exe.is_file() {
            bail!(
                "nginx not found at {} (Debian's package nginx); --nginx names another",
                exe.display()
            );
        }
        let dir = tempfile::tempdir().context("could not make a temp dir")?;
        // Run as root, nginx's workers are another user, who must reach the
        // pages (they are public anyway).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .context("could not open the temp dir to nginx's workers")?;
        let root = dir.path().join("www");
        store
            .write(&root)
            .with_context(|| format!("could not write the store to {}", root.display()))?;
        let ports = (0..hosts)
            .map(|_| free_port())
            .collect::<anyhow::Result<Vec<u16>>>()?;
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx_conf(dir.path(), &ports))?;
        let log = dir.path().join("error.log");
        let stderr = std::fs::File::create(dir.path().join("stderr.log"))?;
        let child = std::process::Command::new(exe)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("could not start {}", exe.display()))?;
        let mut nginx = Nginx {
            child,
            dir,
            ports,
            logged: 0,
        };
        nginx.wait_ready().await?;
        Ok(nginx)
    }

    fn bases(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect()
    }

    /// Waits until every port serves the first listing; a refusal or an
    /// early exit is an error that quotes nginx's log.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(2))
            .finish();
        let deadline = Instant::now() + Duration::from_secs(10);
        for base in self.bases() {
            let url = format!("{base}/gen/list/1?probe=1");
            loop {
                if let Some(status) = self.child.try_wait()? {
                    bail!("nginx exited ({status}):\n{}", self.log());
                }
                match client.get(&url).send().await {
                    Ok(resp) if resp.status().is_success() => break,
                    Ok(resp) => bail!(
                        "nginx answered {url} with {}:\n{}",
                        resp.status(),
                        self.log()
                    ),
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(err) => bail!(
                        "nginx did not answer {url} within 10 s ({err}):\n{}",
                        self.log()
                    ),
                }
            }
        }
        Ok(())
    }

    /// What nginx said on stderr and in its error log.
    fn log(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.dir.path().join(name)).ok())
            .collect::<Vec<_>>()
            .join("")
    }

    fn access_log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    fn reset(&mut self) {
        self.logged = std::fs::metadata(self.access_log()).map_or(0, |m| m.len());
    }

    /// Requests logged since `reset` (a line each, the time it was served),
    /// and how many a second from the first to the last.
    fn requests(&self) -> anyhow::Result<(u64, f64)> {
        let path = self.access_log();
        let log = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let since = usize::try_from(self.logged).unwrap_or(usize::MAX);
        let text = String::from_utf8_lossy(log.get(since..).unwrap_or_default());
        let stamps: Vec<f64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        let count = stamps.len() as u64;
        let span = stamps.first().zip(stamps.last()).map(|(a, b)| b - a);
        Ok((count, per_second(count, span)))
    }
}

impl Drop for Nginx {
    /// Stops nginx by its PID: a fast shutdown, in which the master stops
    /// its workers; killed if it has not exited within 5 s.
    fn drop(&mut self) {
        // Exited already (and reaped): its PID may be another's by now.
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) on a child this process has not reaped, so the
        // PID is still its own.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        eprintln!("warning: nginx did not stop within 5 s; killed");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx's config for the serial store (`@DIR@` is the temp dir, and the
/// line with `@PORT@` is repeated for each port): one worker, as static
/// files at a few thousand requests a second take a sliver of a core; every
/// path in the temp dir; the store's files as `text/html`; and an access log
/// of the time each crawl request was served, to count them.
const NGINX_CONF: &str = r#"daemon off;
worker_processes 1;
pid "@DIR@/nginx.pid";
error_log "@DIR@/error.log" warn;
events { worker_connections 1024; }
http {
    default_type text/html;
    charset utf-8;
    log_format stamps $msec;
    # The bench's own probes (`?probe`) are not the crawl's requests.
    map $arg_probe $crawled {
        "" 1;
        default 0;
    }
    access_log "@DIR@/access.log" stamps if=$crawled;
    keepalive_requests 1000000;
    client_body_temp_path "@DIR@/client_body";
    proxy_temp_path "@DIR@/proxy";
    fastcgi_temp_path "@DIR@/fastcgi";
    uwsgi_temp_path "@DIR@/uwsgi";
    scgi_temp_path "@DIR@/scgi";
    server {
        listen 127.0.0.1:@PORT@;
        root "@DIR@/www";
        location / { try_files $uri =404; }
    }
}
"#;

fn nginx_conf(dir: &Path, ports: &[u16]) -> String {
    let dir = dir.display().to_string();
    NGINX_CONF
        .lines()
        .flat_map(|line| {
            if line.contains("@PORT@") {
                ports
                    .iter()
                    .map(|port| line.replace("@PORT@", &port.to_string()))
                    .collect()
            } else {
                vec![line.replace("@DIR@", &dir)]
            }
        })
        .map(|line| line + "\n")
        .collect()
}

async fn one_run(
    sites_toml: &str,
    latency_ms: u64,
    workers: u32,
    slots: u32,
) -> anyhow::Result<Run> {
    let server = start_crawl_server(sites_toml, workers, slots, &[], None).await?;
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let token = read_secret(server.data_dir(), "api_token")?;
    let (tasks, seconds) = time_crawl(&client, &server.base, &token).await?;
    let peak_rss_kib = proc_status_kib(server.pid, "VmHWM");
    server.stop().await;
    Ok(Run {
        latency_ms,
        requests: 0,
        workers,
        tasks,
        seconds,
        peak_rss_kib,
    })
}

/// A `bazaar serve` child with `workers` local workers of `slots` slots
/// that crawl the sites of `sites_toml`, and these extra `BAZAAR_*`
/// variables, on `cpus` when given; returned once every worker is connected.
pub(super) async fn start_crawl_server(
    sites_toml: &str,
    workers: u32,
    slots: u32,
    env: &[(&str, String)],
    cpus: Option<&CpuSet>,
) -> anyhow::Result<ChildServer> {
    let dir = tempfile::tempdir().context("could not make a temp dir")?;
    let sites = dir.path().join("sites.toml");
    std::fs::write(&sites, sites_toml)?;
    let mut env = env.to_vec();
    env.extend([
        ("BAZAAR_WORKERS__LOCAL", workers.to_string()),
        ("BAZAAR_WORKERS__SLOTS", slots.to_string()),
        ("BAZAAR_CRAWL__SITES_FILE", sites.display().to_string()),
    ]);
    let server = ChildServer::start_in(dir, &env, cpus).await?;
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = get_json(&client, &format!("{}/api/workers", server.base))
            .await
            .ok();
        let connected = ready
            .as_ref()
            .and_then(|v| v["workers"].as_array())
            .map_or(0, |w| w.len());
        if connected as u32 == workers {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("the server's {workers} workers did not connect within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a crawl through the API at `base` and waits for it to finish;
/// returns the tasks done and the seconds from its start to its end, as
/// the server recorded them.
///
/// The report is asked for four times a second: each one counts the
/// crawl's tasks by state in the database, which on PostgreSQL costs
/// milliseconds of its CPU once a crawl has thousands of tasks, and asked
/// for as fast as it answers it took a quarter of a core from the crawl
/// it measured. The times come from the crawl's row, not from when a
/// report first said it had finished.
pub(super) async fn time_crawl(
    client: &awc::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut resp = client
        .post(format!("{base}/api/crawls"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("start crawl: {e}"))?;
    let body: Value = resp
        .json()
        .await
        .map_err(|e| anyhow::anyhow!("start crawl: {e}"))?;
    let id = body["id"].as_i64().context("no crawl id")?;
    let report = loop {
        let report = get_json(client, &format!("{base}/api/crawls/{id}")).await?;
        if report["status"] == "finished" {
            break report;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the crawl did not finish within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let at = |field: &str| {
        report[field]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .with_context(|| format!("the report has no {field}: {report}"))
    };
    let seconds = (at("finished_at")? - at("started_at")?)
        .to_std()
        .context("the crawl finished before it started")?
        .as_secs_f64();
    let tasks = report["tasks"]["done"].as_u64().unwrap_or(0);
    let dead = report["tasks"]["dead"].as_u64().unwrap_or(0);
    if dead > 0 {
        eprintln!("warning: {dead} tasks died in this run");
    }
    Ok((tasks, seconds))
}

pub(super) fn read_secret(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// One run against a cluster: `deploy/cluster.sh up` with the run's sites
/// file, N worker processes through nginx (so round robin spreads them over
/// the nodes), one crawl, then `down`.
struct ClusterRun<'a> {
    exe: &'a Path,
    script: &'a Path,
    nodes: usize,
}

impl ClusterRun<'_> {
    async fn run(
        &self,
        sites_toml: &str,
        latency_ms: u64,
        workers: u32,
        slots: u32,
    ) -> anyhow::Result<Run> {
        // PostgreSQL, run as its own user when we are root, must be able to
        // reach the folder, which the script sees to under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("bazaar-bench-cluster-")
            .tempdir_in("/tmp")
            .context("could not make a temp dir")?;
        let sites = dir.path().join("sites.toml");
        std::fs::write(&sites, sites_toml)?;
        let port = free_port()?;
        let cluster = Cluster {
            script: self.script,
            dir: dir.path(),
        };
        let out = tokio::process::Command::new("bash")
            .arg(self.script)
            .args(["up", "--nodes", &self.nodes.to_string()])
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .env("BAZAAR_BIN", self.exe)
            .env("BAZAAR_CRAWL__SITES_FILE", &sites)
            .env("BAZAAR_CRAWL__EVERY", "0s")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("could not run {}", self.script.display()))?;
        if !out.status.success() {
            bail!(
                "{} up failed ({}):\n{}",
                self.script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let base = format!("http://127.0.0.1:{port}");
        let token = read_secret(dir.path(), "worker_token")?;
        let mut fleet = Vec::new();
        for i in 1..=workers {
            fleet.push(self.worker(dir.path(), &base, &token, i, slots)?);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 1..=workers {
            let log = dir
                .path()
                .join("logs")
                .join(format!("bench-worker-{i}.log"));
            while !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("connected worker=")
            {
                if Instant::now() > deadline {
                    bail!(
                        "worker {i} did not connect within 60 s; see {}",
                        log.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish();
        let api_token = read_secret(dir.path(), "api_token")?;
        let (tasks, seconds) = time_crawl(&client, &base, &api_token).await?;
        let peak_rss_kib = (1..=self.nodes)
            .filter_map(|i| {
                let pid = std::fs::read_to_string(dir.path().join(format!("pids/node-{i}.pid")));
                pid.ok()?.trim().parse().ok()
            })
            .map(|pid| proc_status_kib(pid, "VmHWM"))
            .max()
            .unwrap_or(0);
        drop(fleet);
        drop(cluster);
        Ok(Run {
            latency_ms,
            requests: 0,
            workers,
            tasks,
            seconds,
            peak_rss_kib,
        })
    }

    /// `bazaar worker` number `i` through nginx, logging into the cluster's
    /// logs; killed when dropped.
    fn worker(
        &self,
        dir: &Path,
        base: &str,
        token: &str,
        i: u32,
        slots: u32,
    ) -> anyhow::Result<tokio::process::Child> {
        let log = std::fs::File::create(dir.join("logs").join(format!("bench-worker-{i}.log")))?;
        tokio::process::Command::new(self.exe)
            .arg("worker")
            .args(["--server", &base.replacen("http", "ws", 1)])
            .args(["--name", &format!("bench-{i}")])
            .args(["--slots", &slots.to_string()])
            .env("BAZAAR_WORKER_TOKEN", token)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("could not start bazaar worker")
    }
}

/// A cluster `deploy/cluster.sh up` started in `dir`; `down` when dropped,
/// so that a failed run leaves nothing running.
struct Cluster<'a> {
    script: &'a Path,
    dir: &'a Path,
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        let down = std::process::Command::new("bash")
            .arg(self.script)
            .arg("down")
            .arg("--dir")
            .arg(self.dir)
            .stdin(Stdio::null())
            .output();
        match down {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: cluster.sh down failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(err) => eprintln!("warning: could not run cluster.sh down: {err}"),
        }
    }
}

async fn get_json(client: &awc::Client, url: &str) -> anyhow::Result<Value> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    if !resp.status().is_success() {
        bail!("{url}: {}", resp.status());
    }
    resp.json()
        .limit(1 << 20)
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The server's peak resident memory (VmHWM), in KiB.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_listens_on_every_port_and_keeps_its_paths_in_its_dir() {
        let conf = nginx_conf(Path::new("/tmp/bench-x"), &[8001, 8002]);
        assert!(conf.contains("listen 127.0.0.1:8001;\n"));
        assert!(conf.contains("listen 127.0.0.1:8002;\n"));
        assert!(!conf.contains('@'), "{conf}");
        // Every path is quoted, and in the dir.
        let paths = conf.matches("\"/").count();
        assert_eq!(paths, 9, "{conf}");
        assert_eq!(conf.matches("\"/tmp/bench-x/").count(), paths, "{conf}");
    }

    #[test]
    fn requests_a_second_run_from_the_first_to_the_last() {
        assert_eq!(per_second(11, Some(2.0)), 5.0);
        assert_eq!(per_second(1, Some(2.0)), 0.0);
        assert_eq!(per_second(5, None), 0.0);
    }
}
