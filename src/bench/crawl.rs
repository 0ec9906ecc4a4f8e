//! The crawl benchmark: generated stores on loopback, a real `bazaar serve`
//! process with N local workers, one crawl timed from creation to completion.
//! With `--hosts` and `--delay-ms`, the stores are that many hosts, each
//! asking for that politeness delay, and the run says how close the crawl
//! came to the rate the delays allow. With `--cluster N`, each run crawls
//! with a fresh cluster of N nodes behind nginx (`deploy/cluster.sh`), and
//! the workers are `bazaar worker` processes connected through nginx.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Service;
use actix_web::{App, HttpServer};
use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;

use super::store::{self, GeneratedStore};

#[derive(Debug, Args)]
pub struct CrawlBench {
    /// Game pages in the generated store.
    #[arg(long, default_value_t = 2000)]
    pages: usize,
    /// Worker counts to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4])]
    workers: Vec<u32>,
    /// Slots per worker.
    #[arg(long, default_value_t = 8)]
    slots: u32,
    /// Store latencies to measure, in milliseconds per page.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 50])]
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

/// Games per generated listing page.
const PER_LISTING: usize = 20;

struct Run {
    latency_ms: u64,
    /// Requests the stores saw (robots.txt is not fetched).
    requests: u64,
    workers: u32,
    tasks: u64,
    pages: u64,
    seconds: f64,
    peak_rss_kib: u64,
}

pub async fn run(bench: CrawlBench) -> anyhow::Result<()> {
    if bench.hosts == 0 {
        bail!("--hosts must be at least 1");
    }
    let exe = std::env::current_exe().context("could not find the bazaar binary")?;
    // With delays, the delays bound the rate: hosts × 1000 / delay_ms.
    let allowed = (bench.delay_ms > 0).then(|| bench.hosts as f64 * 1000.0 / bench.delay_ms as f64);
    let mut runs = Vec::new();
    for &latency_ms in &bench.latency_ms {
        let store = GeneratedStore {
            pages: bench.pages.div_ceil(bench.hosts).div_ceil(PER_LISTING),
            latency: Duration::from_millis(latency_ms),
            per_listing: PER_LISTING,
            crawl_delay: None,
        };
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
        .workers(1);
        for _ in 0..bench.hosts {
            server = server.bind("127.0.0.1:0")?;
        }
        let bases: Vec<String> = server
            .addrs()
            .iter()
            .map(|addr| format!("http://{addr}"))
            .collect();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        for &workers in &bench.workers {
            // Without a delay, each host may be fetched by every slot at once.
            let concurrency = if bench.delay_ms > 0 {
                4
            } else {
                workers * bench.slots
            };
            let sites = store::sites_toml_for(&bases, concurrency, bench.delay_ms);
            requests.reset();
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
                one_run(&exe, &sites, latency_ms, workers, bench.slots).await?
            };
            let (count, rate) = requests.rate();
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
                run.tasks as f64 / run.seconds, run.pages as f64 / run.seconds, run.peak_rss_kib / 1024
            );
            runs.push(run);
        }
        handle.stop(false).await;
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
            r.pages as f64 / r.seconds,
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
        match *seen {
            (count, Some(first), Some(last)) if count > 1 && last > first => {
                (count, (count - 1) as f64 / (last - first).as_secs_f64())
            }
            (count, ..) => (count, 0.0),
        }
    }
}

async fn one_run(
    exe: &Path,
    sites_toml: &str,
    latency_ms: u64,
    workers: u32,
    slots: u32,
) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir().context("could not make a temp dir")?;
    let sites = dir.path().join("sites.toml");
    std::fs::write(&sites, sites_toml)?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(exe)
        .arg("serve")
        .env("BAZAAR_DATA_DIR", dir.path())
        .env("BAZAAR_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("BAZAAR_SERVER__PUBLIC_URL", &base)
        .env("BAZAAR_WORKERS__LOCAL", workers.to_string())
        .env("BAZAAR_WORKERS__SLOTS", slots.to_string())
        .env("BAZAAR_CRAWL__EVERY", "0s")
        .env("BAZAAR_CRAWL__SITES_FILE", &sites)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("could not start bazaar serve")?;
    let pid = child.id().unwrap_or(0);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = get_json(&client, &format!("{base}/api/workers")).await.ok();
        let connected = ready
            .as_ref()
            .and_then(|v| v["workers"].as_array())
            .map_or(0, |w| w.len());
        if connected as u32 == workers {
            break;
        }
        if Instant::now() > deadline {
            bail!("the server or its {workers} workers did not come up within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = read_secret(dir.path(), "api_token")?;
    let (tasks, seconds) = time_crawl(&client, &base, &token).await?;
    let peak_rss_kib = peak_rss(pid);
    let _ = child.kill().await;
    Ok(Run {
        latency_ms,
        requests: 0,
        workers,
        tasks,
        pages: tasks.saturating_sub(tasks.div_ceil(PER_LISTING as u64 + 1)),
        seconds,
        peak_rss_kib,
    })
}

/// Starts a crawl through the API at `base` and waits for it to finish;
/// returns the tasks done and the seconds from its start to its end.
async fn time_crawl(client: &awc::Client, base: &str, token: &str) -> anyhow::Result<(u64, f64)> {
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let tasks = report["tasks"]["done"].as_u64().unwrap_or(0);
    let dead = report["tasks"]["dead"].as_u64().unwrap_or(0);
    if dead > 0 {
        eprintln!("warning: {dead} tasks died in this run");
    }
    Ok((tasks, seconds))
}

fn read_secret(dir: &Path, name: &str) -> anyhow::Result<String> {
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
            .map(peak_rss)
            .max()
            .unwrap_or(0);
        drop(fleet);
        drop(cluster);
        Ok(Run {
            latency_ms,
            requests: 0,
            workers,
            tasks,
            pages: tasks.saturating_sub(tasks.div_ceil(PER_LISTING as u64 + 1)),
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
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
