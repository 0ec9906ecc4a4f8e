//! The crawl benchmark: generated stores on loopback, a real `bazaar serve`
//! process with N local workers, one crawl timed from creation to completion.
//! With `--hosts` and `--delay-ms`, the stores are that many hosts, each
//! asking for that politeness delay, and the run says how close the crawl
//! came to the rate the delays allow.

use std::path::Path;
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
            let mut run = one_run(&exe, &sites, latency_ms, workers, bench.slots).await?;
            let (count, rate) = requests.rate();
            run.requests = count;
            let pace = allowed.map_or(String::new(), |allowed| {
                format!(
                    "  {rate:>6.0} requests/s at the stores, of {allowed:.0} the delays allow ({:.0}%)",
                    100.0 * rate / allowed
                )
            });
            println!(
                "latency {:>3} ms  workers {}×{}  {:>5} tasks in {:>6.2} s  {:>7.0} tasks/s  {:>7.0} game pages/s  peak RSS {} MiB{pace}",
                run.latency_ms, run.workers, bench.slots, run.tasks, run.seconds,
                run.tasks as f64 / run.seconds, run.pages as f64 / run.seconds, run.peak_rss_kib / 1024
            );
            runs.push(run);
        }
        handle.stop(false).await;
    }
    println!("\nlatency_ms,workers,slots,hosts,delay_ms,tasks,requests,seconds,tasks_per_s,pages_per_s,peak_rss_kib");
    for r in &runs {
        println!(
            "{},{},{},{},{},{},{},{:.3},{:.1},{:.1},{}",
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
            r.peak_rss_kib
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
    let token = std::fs::read_to_string(dir.path().join("api_token"))?
        .trim()
        .to_owned();
    let started = Instant::now();
    let mut resp = client
        .post(format!("{base}/api/crawls"))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("start crawl: {e}"))?;
    let body: Value = resp
        .json()
        .await
        .map_err(|e| anyhow::anyhow!("start crawl: {e}"))?;
    let id = body["id"].as_i64().context("no crawl id")?;
    let report = loop {
        let report = get_json(&client, &format!("{base}/api/crawls/{id}")).await?;
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
