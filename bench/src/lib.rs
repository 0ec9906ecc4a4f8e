//! `bazaar bench <scenario>`: load generators that measure Bazaar end to end
//! on loopback, like redis-benchmark. Figures belong here, not in timed tests.

pub mod bids;
pub mod chat;
pub mod crawl;
pub mod floor;
pub mod idle;
pub mod mail;
pub mod pin;
mod prefill;
pub mod soak;
pub mod store;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use bazaar::config::Settings;
use bazaar::startup::raise_nofile_limit;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Crawl a generated store with 1, 2 and 4 local workers, with and
    /// without latency, and report pages and tasks per second.
    Crawl(crawl::CrawlBench),
    /// Chat rooms under load: messages delivered per second, latency from
    /// send to each member, loss, and the server's peak memory.
    Chat(chat::ChatBench),
    /// Many idle WebSocket connections: the server's memory per connection.
    Idle(idle::IdleBench),
    /// Bidders on one lot with watchers: accepted bids per second and the
    /// latency from a bid to its broadcast.
    Bids(bids::BidsBench),
    /// Digest mail for one crawl to N subscribers: the time to queue it and
    /// mails per second from the outbox to a local SMTP sink.
    Mail(mail::MailBench),
    /// Whether the server's memory stays flat: a crawl, then chat at a
    /// steady rate, with the server's RSS sampled throughout.
    ///
    /// The verdict is "flat" when the RSS grew over the second half of the
    /// chat (from the last sample at or before half of --duration to the
    /// sample at its end) by at most 4 MiB or 5 % of the RSS at the half,
    /// whichever is more; otherwise "growing". The first half is left out:
    /// caches, buffers and the allocator's arenas fill there.
    Soak(soak::SoakBench),
    /// Not a measurement but what one is compared with: a bare numbered
    /// broadcaster (join, say, fan-out; nothing stored or checked) for
    /// `bench chat --server` to measure, alone or several sharing rooms
    /// through Redis behind nginx, as a floor for this machine.
    Floor(floor::FloorBench),
}

/// Runs a scenario until it ends or Ctrl-C (or SIGTERM) stops it. A stop
/// drops the scenario, and with it the servers it started, which die with
/// their `ChildServer` (and their local workers with them).
pub async fn run(args: BenchArgs, _settings: &Settings) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("could not watch for SIGTERM")?;
    let scenario = async move {
        match args.scenario {
            Scenario::Crawl(bench) => crawl::run(bench).await,
            Scenario::Chat(bench) => chat::run(bench).await,
            Scenario::Idle(bench) => idle::run(bench).await,
            Scenario::Bids(bench) => bids::run(bench).await,
            Scenario::Mail(bench) => mail::run(bench).await,
            Scenario::Soak(bench) => soak::run(bench).await,
            Scenario::Floor(bench) => floor::run(bench).await,
        }
    };
    tokio::select! {
        done = scenario => done,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the servers it started are stopped"),
        _ = terminate.recv() => bail!("terminated; the servers it started are stopped"),
    }
}

/// A `bazaar serve` child process on a free loopback port with a temp data
/// dir, no local workers and no scheduled crawls; killed when dropped.
pub(crate) struct ChildServer {
    child: tokio::process::Child,
    pub base: String,
    pub pid: u32,
    _dir: tempfile::TempDir,
}

impl ChildServer {
    /// Starts the server with these extra `BAZAAR_*` variables, on `cpus`
    /// when given, and waits until it answers HTTP.
    pub async fn start(
        env: &[(&str, String)],
        cpus: Option<&pin::CpuSet>,
    ) -> anyhow::Result<ChildServer> {
        let dir = tempfile::tempdir().context("could not make a temp dir")?;
        ChildServer::start_in(dir, env, cpus).await
    }

    /// Like [`ChildServer::start`], with `dir` as the data dir: files the
    /// server reads as it starts (a sites file) can be written there first.
    pub async fn start_in(
        dir: tempfile::TempDir,
        env: &[(&str, String)],
        cpus: Option<&pin::CpuSet>,
    ) -> anyhow::Result<ChildServer> {
        let exe = std::env::current_exe().context("could not find the bazaar binary")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("serve")
            .env("BAZAAR_DATA_DIR", dir.path())
            .env("BAZAAR_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("BAZAAR_SERVER__PUBLIC_URL", &base)
            .env("BAZAAR_WORKERS__LOCAL", "0")
            .env("BAZAAR_CRAWL__EVERY", "0s")
            // All of a benchmark's sockets come from this machine, and may
            // be more than a node takes by default.
            .env("BAZAAR_SERVER__MAX_CONNECTIONS", "1000000")
            .env("BAZAAR_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "1000000")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // Its warnings only, unless whoever runs the benchmark asks for
        // more (`RUST_LOG=info` shows a retention pass at work).
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        if let Some(cpus) = cpus {
            cpus.apply_to(&mut cmd);
        }
        let mut child = cmd.spawn().context("could not start bazaar serve")?;
        let pid = child.id().unwrap_or(0);
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(5))
            .finish();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = client
                .get(format!("{base}/api/workers"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("bazaar serve exited with {status} before it came up");
            }
            if Instant::now() > deadline {
                bail!("the server did not come up within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(ChildServer {
            child,
            base,
            pid,
            _dir: dir,
        })
    }

    /// The server's data dir (its database and secrets).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS`, `VmHWM`), 0 if unknown.
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Raises the open-file limit for a run of `connections` sockets, or says
/// why it cannot hold them.
pub(crate) fn ensure_open_files(connections: usize) -> anyhow::Result<()> {
    let limit = raise_nofile_limit();
    if connections as u64 + 64 > limit {
        bail!(
            "{connections} connections need about {} open files, but this process may open only \
             {limit} (its RLIMIT_NOFILE hard limit); use fewer rooms or members, or raise the hard \
             limit",
            connections + 64
        );
    }
    Ok(())
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank; 0 when empty.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_uses_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
