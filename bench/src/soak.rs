//! The soak benchmark: one `bazaar serve` through a crawl of a generated
//! store and then a long chat at a steady rate, its resident memory (VmRSS)
//! sampled throughout, to tell whether the memory stays flat once the
//! server has warmed up.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use url::Url;

use super::chat::{self, Load, Plan};
use super::crawl::{read_secret, start_crawl_server, time_crawl, Stores};
use super::pin::Pinning;
use super::store::{self, GeneratedStore};
use super::{ensure_open_files, proc_status_kib};

#[derive(Debug, Clone, Args)]
pub struct SoakBench {
    /// Game pages in the generated store, crawled once before the chat.
    #[arg(long, default_value_t = 10_000)]
    pages: usize,
    /// Local workers that crawl.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Slots per worker.
    #[arg(long, default_value_t = 8)]
    slots: u32,
    /// Messages per second in all, spread evenly over the rooms.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Rooms, `chat:bench-<i>`, with one sender each.
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// Members (WebSocket connections) per room, its sender included.
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Seconds of chat.
    #[arg(long, default_value_t = 3600.0)]
    duration: f64,
    /// Seconds between samples of the server's RSS during the chat (at most
    /// half of --duration, so that a sample marks the half).
    #[arg(long, default_value_t = 60.0)]
    sample_secs: f64,
    /// Exit with an error when the RSS grew by more than this many KiB
    /// over the second half of the chat.
    #[arg(long, value_name = "N")]
    max_growth_kib: Option<u64>,
    #[command(flatten)]
    pinning: Pinning,
}

/// Games per listing page of the generated store.
const PER_LISTING: usize = 20;
/// Messages a sender may have in flight: at a steady rate, far more than a
/// healthy server ever leaves unanswered.
const WINDOW: usize = 100;
/// Bytes of text per message.
const TEXT_BYTES: usize = 32;

impl SoakBench {
    fn validate(&self) -> anyhow::Result<()> {
        if self.pages == 0 {
            bail!("--pages must be at least 1");
        }
        if self.workers == 0 || self.slots == 0 {
            bail!("--workers and --slots must be at least 1");
        }
        if self.rooms == 0 || self.members == 0 {
            bail!("--rooms and --members must be at least 1");
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            bail!("--rate must be a positive number of messages per second");
        }
        if !(self.duration.is_finite() && self.duration > 0.0) {
            bail!("--duration must be a positive number of seconds");
        }
        if !(self.sample_secs.is_finite() && self.sample_secs > 0.0) {
            bail!("--sample-secs must be a positive number of seconds");
        }
        if self.sample_secs > self.duration / 2.0 {
            bail!(
                "--sample-secs ({}) must be at most half of --duration ({}), so that a sample \
                 marks the start of the second half",
                self.sample_secs,
                self.duration
            );
        }
        Ok(())
    }

    /// When the chat's samples are taken, in seconds from its start: every
    /// `sample_secs`, and at its end.
    fn sample_times(&self) -> Vec<f64> {
        let mut times: Vec<f64> = (1..)
            .map(|k| k as f64 * self.sample_secs)
            .take_while(|&t| t < self.duration - 1e-9)
            .collect();
        times.push(self.duration);
        times
    }
}

/// The most the RSS may grow over the second half of the chat and still be
/// called flat: 4 MiB, or 5 % of the RSS at the half if that is more. Small
/// servers get a floor that the allocator's arenas and SQLite's page cache
/// can fill without a leak; large ones a share of what they hold.
fn allowed_growth_kib(rss_at_half_kib: u64) -> u64 {
    (4 * 1024).max(rss_at_half_kib / 20)
}

/// The server's SQLite database and its log on disk, in KiB: what
/// retention keeps in bounds.
fn database_kib(data_dir: &std::path::Path) -> u64 {
    ["bazaar.db", "bazaar.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(data_dir.join(name)).ok())
        .map(|m| m.len() / 1024)
        .sum()
}

/// One sample of the server during the chat.
struct Sample {
    secs: f64,
    rss_kib: u64,
}

/// The RSS over the second half: the sample at the end less the last one
/// at or before half the duration (`samples` ends with the end's).
fn second_half(samples: &[Sample], duration: f64) -> Option<(u64, i64)> {
    let half = samples
        .iter()
        .rev()
        .find(|s| s.secs <= duration / 2.0 + 1e-9)?;
    let end = samples.last()?;
    Some((half.rss_kib, end.rss_kib as i64 - half.rss_kib as i64))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub async fn run(bench: SoakBench) -> anyhow::Result<()> {
    bench.validate()?;
    let total = bench.rooms * bench.members;
    ensure_open_files(total)?;
    bench.pinning.apply(true)?;

    let listings = bench.pages.div_ceil(PER_LISTING);
    let stores = Stores::in_process(
        GeneratedStore {
            pages: listings,
            latency: Duration::ZERO,
            per_listing: PER_LISTING,
            crawl_delay: None,
        },
        1,
    )?;
    // Every slot may fetch from the one host at once.
    let sites = store::sites_toml_for(&stores.bases, bench.workers * bench.slots, 0);
    let server = start_crawl_server(
        &sites,
        bench.workers,
        bench.slots,
        &chat::unthrottled(),
        bench.pinning.server(),
    )
    .await?;
    let pid = server.pid;
    let rss = || match proc_status_kib(pid, "VmRSS") {
        0 => bail!("could not read the server's VmRSS from /proc/{pid}/status"),
        kib => Ok(kib),
    };
    let rss_before = rss()?;
    eprintln!("server up (PID {pid}), RSS {}", mib(rss_before));

    // Phase 1: the crawl.
    let games = listings * PER_LISTING;
    eprintln!(
        "crawling {games} game pages on {} listings with {}×{} slots",
        listings, bench.workers, bench.slots
    );
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let token = read_secret(server.data_dir(), "api_token")?;
    let (tasks, crawl_secs) = time_crawl(&client, &server.base, &token).await?;
    stores.stop().await;
    let crawled = (tasks as usize).saturating_sub(listings);
    let rss_after_crawl = rss()?;
    eprintln!(
        "crawl done: {crawled} of {games} game pages in {crawl_secs:.2} s; RSS {}",
        mib(rss_after_crawl)
    );

    // Phase 2: the chat.
    let members = chat::join(&Url::parse(&server.base)?, bench.rooms, bench.members, 1).await?;
    eprintln!(
        "{total} members joined; chatting at {} messages/s for {} s, a sample every {} s",
        bench.rate, bench.duration, bench.sample_secs
    );
    let plan = Plan::new(
        bench.duration,
        bench.rate / bench.rooms as f64,
        WINDOW,
        TEXT_BYTES,
        bench.rooms,
        false,
    );
    let load = Load::start(members, plan);
    let mut samples = Vec::new();
    let mut db_samples = Vec::new();
    for secs in bench.sample_times() {
        tokio::time::sleep_until(load.t0() + Duration::from_secs_f64(secs)).await;
        let rss_kib = rss()?;
        let (sent, delivered) = load.progress();
        let db_kib = database_kib(server.data_dir());
        eprintln!(
            "{secs:>7.0} s  sent {sent:>9}  delivered {delivered:>10}  RSS {}  database {}",
            mib(rss_kib),
            mib(db_kib)
        );
        db_samples.push(db_kib);
        samples.push(Sample { secs, rss_kib });
    }
    let s = load.finish(bench.members).await;
    let peak = proc_status_kib(pid, "VmHWM");
    server.stop().await;
    let db_first = db_samples.first().copied().unwrap_or(0);
    let db_end = db_samples.last().copied().unwrap_or(0);

    let first = samples.first().map_or(0, |s| s.rss_kib);
    let end = samples.last().map_or(0, |s| s.rss_kib);
    let (at_half, growth) =
        second_half(&samples, bench.duration).context("no sample at the half")?;
    let allowed = allowed_growth_kib(at_half);
    let growth_pct = 100.0 * growth as f64 / at_half as f64;
    let verdict = if growth <= allowed as i64 {
        "flat"
    } else {
        "growing"
    };

    println!(
        "crawl {crawled} of {games} game pages in {crawl_secs:.2} s  chat {} rooms × {} members at \
         {} messages/s for {} s: sent {} delivered {} loss {} seq gaps {}  RSS before {}, \
         after the crawl {}, first chat sample {}, peak {}, end {}  second half {growth:+} KiB \
         ({growth_pct:+.1}%, flat up to {allowed} KiB): {verdict}  database at the first chat sample \
         {}, at the end {}",
        bench.rooms,
        bench.members,
        bench.rate,
        bench.duration,
        s.sent,
        s.deliveries,
        s.loss_text(bench.members),
        s.gaps,
        mib(rss_before),
        mib(rss_after_crawl),
        mib(first),
        mib(peak),
        mib(end),
        mib(db_first),
        mib(db_end),
    );
    println!("\npages,crawled,crawl_seconds,rooms,members,rate,duration,sent,delivered,loss,seq_gaps,rss_before_kib,rss_after_crawl_kib,rss_first_chat_kib,rss_peak_kib,rss_end_kib,second_half_growth_kib,second_half_growth_pct,verdict,database_first_chat_kib,database_end_kib,unanswered");
    println!(
        "{games},{crawled},{crawl_secs:.3},{},{},{},{},{},{},{},{},{rss_before},{rss_after_crawl},{first},{peak},{end},{growth},{growth_pct:.2},{verdict},{db_first},{db_end},{}",
        bench.rooms,
        bench.members,
        bench.rate,
        bench.duration,
        s.sent,
        s.deliveries,
        s.loss_csv(bench.members),
        s.gaps,
        s.unanswered(),
    );
    s.warn_if_unhealthy(bench.members, "chat");
    if let Some(max) = bench.max_growth_kib {
        if growth > max as i64 {
            bail!(
                "the server's RSS grew by {growth} KiB over the second half of the chat, \
                 more than --max-growth-kib {max}"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench() -> SoakBench {
        SoakBench {
            pages: 100,
            workers: 1,
            slots: 1,
            rate: 10.0,
            rooms: 1,
            members: 1,
            duration: 10.0,
            sample_secs: 2.0,
            max_growth_kib: None,
            pinning: Pinning::default(),
        }
    }

    #[test]
    fn samples_every_interval_and_at_the_end() {
        assert_eq!(bench().sample_times(), [2.0, 4.0, 6.0, 8.0, 10.0]);
        let odd = SoakBench {
            duration: 7.0,
            ..bench()
        };
        assert_eq!(odd.sample_times(), [2.0, 4.0, 6.0, 7.0]);
    }

    #[test]
    fn the_second_half_runs_from_the_last_sample_at_the_half() {
        let samples: Vec<Sample> = [(2.0, 100), (4.0, 110), (6.0, 120), (7.0, 150)]
            .into_iter()
            .map(|(secs, rss_kib)| Sample { secs, rss_kib })
            .collect();
        // Half of 7 s is 3.5 s: the sample at 2 s opens the second half.
        assert_eq!(second_half(&samples, 7.0), Some((100, 50)));
        assert_eq!(second_half(&samples[1..], 8.0), Some((110, 40)));
    }

    #[test]
    fn flat_allows_four_mib_or_five_percent() {
        assert_eq!(allowed_growth_kib(20 * 1024), 4096);
        assert_eq!(allowed_growth_kib(200 * 1024), 10 * 1024);
    }

    #[test]
    fn rejects_impossible_options() {
        assert!(bench().validate().is_ok());
        assert!(SoakBench {
            sample_secs: 6.0,
            ..bench()
        }
        .validate()
        .is_err());
        assert!(SoakBench {
            rate: 0.0,
            ..bench()
        }
        .validate()
        .is_err());
        assert!(SoakBench {
            pages: 0,
            ..bench()
        }
        .validate()
        .is_err());
        assert!(SoakBench {
            members: 0,
            ..bench()
        }
        .validate()
        .is_err());
    }
}
