//! The bids benchmark: K accounts bid on one running lot as fast as their
//! replies come back (one bid in flight each, always at the minimum they
//! last heard), while W guests watch. It reports accepted bids per second
//! and the latency from sending a bid to each watcher receiving its `bid`
//! event.
//!
//! It starts its own server, or targets a running one (a cluster's nginx)
//! with `--server`: accounts, their sessions and the lot are made directly
//! in the server's database (with its session key), so nothing but bidding
//! and watching goes over the sockets.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_codec::Framed;
use anyhow::{bail, Context};
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use chrono::{TimeDelta, Utc};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::pin::Pinning;
use super::{percentile, proc_status_kib, raise_nofile_limit, ChildServer};
use bazaar::accounts::{store as accounts, LoginName};
use bazaar::auction::store::{create_lot, Listing};
use bazaar::auction::{Increments, LotSpec};
use bazaar::domain::user_name::UserName;
use bazaar::protocol::ErrorCode;

#[derive(Debug, Clone, Args)]
pub struct BidsBench {
    /// Accounts bidding.
    #[arg(long, default_value_t = 8)]
    bidders: usize,
    /// Guests watching.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Seconds to bid for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Bids per second attempted across all bidders; 0 bids as fast as
    /// replies come back.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Threads the watchers are spread over; 0 means one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Target this running server (a cluster's load balancer, say) instead
    /// of starting one; needs `--database-url` and `--session-key`.
    #[arg(long, requires_all = ["database_url", "session_key"])]
    server: Option<String>,
    /// The target server's database, where the accounts and the lot go.
    #[arg(long)]
    database_url: Option<String>,
    /// The file holding the target server's session key (`deploy/cluster.sh`
    /// writes it to DIR/session_key).
    #[arg(long)]
    session_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    pinning: Pinning,
}

type Socket = Framed<BoxedSocket, Codec>;

#[derive(Default)]
struct Stats {
    accepted: u64,
    refused: u64,
    /// When each accepted bid (by its seq) was sent.
    sent_at: HashMap<u64, Instant>,
    first_error: Option<String>,
}

async fn connect(
    client: &awc::Client,
    url: &str,
    cookie: Option<&str>,
    topic: &str,
) -> anyhow::Result<(Socket, Option<u64>, i64)> {
    let mut request = client.ws(url).max_frame_size(8 << 20);
    if let Some(cookie) = cookie {
        request = request.set_header(awc::http::header::COOKIE, cookie);
    }
    let (_, mut ws) = request
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("connect {url}: {e}"))?;
    let join = format!(r#"{{"op":"join","topic":"{topic}","ref":"j"}}"#);
    ws.send(Message::Text(join.into())).await?;
    while let Some(frame) = ws.next().await {
        if let Frame::Text(bytes) = frame? {
            let value: Value = serde_json::from_slice(&bytes)?;
            if value["ref"] == "j" {
                if value["status"] == "ok" {
                    let min = value["body"]["lot"]["min_next_cents"].as_i64().unwrap_or(0);
                    return Ok((ws, value["body"]["you"].as_u64(), min));
                }
                bail!("join {topic} refused: {value}");
            }
        }
    }
    bail!("the server closed the socket before answering the join")
}

/// Bids at the minimum whenever someone else leads; a leader waits, as
/// people do, rather than raise its own maximum.
async fn bidder_loop(
    mut ws: Socket,
    me: u64,
    topic: String,
    (end, pace, mut next_at): (Instant, Option<Duration>, Instant),
    mut min_next: i64,
    stats: Rc<RefCell<Stats>>,
) {
    let mut leader = None;
    let mut n = 0u64;
    while Instant::now() < end {
        if leader == Some(me) {
            // Wait for someone to take the lead.
            let Ok(Some(Ok(frame))) = tokio::time::timeout_at(end, ws.next()).await else {
                break;
            };
            if let Frame::Text(bytes) = frame {
                let text = std::str::from_utf8(&bytes).unwrap_or_default();
                if let Some(min) = number_after(text, r#""min_next_cents":"#) {
                    if min as i64 >= min_next {
                        min_next = min as i64;
                        leader = number_after(text, r#""leader":"#);
                    }
                }
            }
            continue;
        }
        if let Some(pace) = pace {
            // Until this bidder's next slot, keep up with the price.
            let slot = tokio::time::sleep_until(next_at.min(end));
            tokio::pin!(slot);
            loop {
                tokio::select! {
                    () = &mut slot => break,
                    frame = ws.next() => {
                        let Some(Ok(Frame::Text(bytes))) = frame else { continue };
                        let text = std::str::from_utf8(&bytes).unwrap_or_default();
                        if let Some(min) = number_after(text, r#""min_next_cents":"#) {
                            if min as i64 >= min_next {
                                min_next = min as i64;
                                leader = number_after(text, r#""leader":"#);
                            }
                        }
                    }
                }
            }
            next_at = (next_at + pace).max(Instant::now());
            if Instant::now() >= end {
                break;
            }
            if leader == Some(me) {
                continue;
            }
        }
        n += 1;
        let reference = format!("b{n}");
        let bid = format!(
            r#"{{"op":"bid","topic":"{topic}","amount_cents":{},"ref":"{reference}"}}"#,
            min_next.max(1)
        );
        let sent = Instant::now();
        if ws.send(Message::Text(bid.into())).await.is_err() {
            return;
        }
        // Until this bid's reply; events on the way update the minimum.
        loop {
            let Some(Ok(frame)) = ws.next().await else {
                return;
            };
            let Frame::Text(bytes) = frame else { continue };
            let text = std::str::from_utf8(&bytes).unwrap_or_default();
            if let Some(min) = number_after(text, r#""min_next_cents":"#) {
                if min as i64 >= min_next {
                    min_next = min as i64;
                    leader = number_after(text, r#""leader":"#);
                }
            }
            if !text.starts_with(r#"{"op":"reply""#) {
                continue;
            }
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if value["ref"] == reference.as_str() {
                let mut s = stats.borrow_mut();
                if value["status"] == "ok" {
                    s.accepted += 1;
                    if let Some(seq) = value["body"]["seq"].as_u64() {
                        s.sent_at.insert(seq, sent);
                    }
                    if let Some(min) = value["body"]["lot"]["min_next_cents"].as_i64() {
                        if min >= min_next {
                            min_next = min;
                            leader = value["body"]["lot"]["leader"].as_u64();
                        }
                    }
                } else {
                    s.refused += 1;
                    let code = ErrorCode::deserialize(&value["body"]["code"]).ok();
                    if !matches!(
                        code,
                        Some(ErrorCode::BidTooLow | ErrorCode::OwnBidIsHighest)
                    ) {
                        s.first_error.get_or_insert_with(|| value.to_string());
                    }
                    // Someone else moved the price: ask one step higher.
                    min_next += 1;
                }
                break;
            }
        }
    }
}

/// The digits right after the first `key` in `s`.
fn number_after(s: &str, key: &str) -> Option<u64> {
    let rest = &s[s.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Quiet that ends the wait for the joins' backlog, and the longest wait.
const SETTLED_AFTER: Duration = Duration::from_millis(200);
const SETTLE_MAX: Duration = Duration::from_secs(10);

/// When a watcher received the `bid` event of a seq.
type Seen = Vec<(u64, Instant)>;

async fn watcher_loop(mut ws: Socket, seen: Rc<RefCell<Seen>>, frames: Arc<AtomicU64>) {
    while let Some(Ok(frame)) = ws.next().await {
        frames.fetch_add(1, Ordering::Relaxed);
        match frame {
            Frame::Text(bytes) => {
                let now = Instant::now();
                // Only `bid` events are timed. Scanned, not parsed: the load
                // generator shares the machine with the server.
                let text = std::str::from_utf8(&bytes).unwrap_or_default();
                if text.starts_with(r#"{"op":"bid""#) || text.contains(r#""op":"lot""#) {
                    if let Some(seq) = number_after(text, r#""seq":"#) {
                        seen.borrow_mut().push((seq, now));
                    }
                }
            }
            Frame::Ping(p) => {
                let _ = ws.send(Message::Pong(p)).await;
            }
            Frame::Close(_) => return,
            _ => {}
        }
    }
}

/// The watchers, spread over threads of their own. One thread reading a
/// thousand sockets stamps the last copy of an event only after it has
/// read the others: that delay is the load generator's, not the server's.
struct Watchers {
    /// Frames received by all watchers.
    frames: Arc<AtomicU64>,
    stop: tokio::sync::watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<Seen>>,
}

impl Watchers {
    /// Connects `count` guests to `topic` over `threads` threads; returns
    /// once all have joined.
    async fn join(
        ws_base: &str,
        topic: &str,
        count: usize,
        threads: usize,
    ) -> anyhow::Result<Watchers> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let frames = Arc::new(AtomicU64::new(0));
        let mut joined = Vec::new();
        let mut handles = Vec::new();
        for t in 0..threads {
            let names: Vec<String> = (t..count)
                .step_by(threads)
                .map(|i| format!("{ws_base}/ws?name=w{i}"))
                .collect();
            let (topic, mut stopped, frames) = (topic.to_owned(), stopped.clone(), frames.clone());
            let (ready, is_ready) = tokio::sync::oneshot::channel::<Result<(), String>>();
            joined.push(is_ready);
            let handle = std::thread::Builder::new()
                .name(format!("watchers-{t}"))
                .spawn(move || {
                    actix_web::rt::System::new().block_on(async move {
                        let client = awc::Client::builder()
                            .connector(bazaar::net::connector().limit(0))
                            .timeout(Duration::from_secs(30))
                            .finish();
                        let mut sockets = Vec::with_capacity(names.len());
                        for url in &names {
                            match connect(&client, url, None, &topic).await {
                                Ok((ws, _, _)) => sockets.push(ws),
                                Err(e) => {
                                    let _ = ready.send(Err(e.to_string()));
                                    return Seen::new();
                                }
                            }
                        }
                        let seen = Rc::new(RefCell::new(Seen::new()));
                        let tasks: Vec<_> = sockets
                            .into_iter()
                            .map(|ws| {
                                actix_web::rt::spawn(watcher_loop(ws, seen.clone(), frames.clone()))
                            })
                            .collect();
                        let _ = ready.send(Ok(()));
                        let _ = stopped.wait_for(|stop| *stop).await;
                        for task in &tasks {
                            task.abort();
                        }
                        seen.take()
                    })
                })
                .context("could not start a watcher thread")?;
            handles.push(handle);
        }
        let watchers = Watchers {
            frames,
            stop,
            threads: handles,
        };
        for is_ready in joined {
            match is_ready.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bail!("a watcher could not join: {e}"),
                Err(_) => bail!("a watcher thread ended before its watchers joined"),
            }
        }
        Ok(watchers)
    }

    /// Waits until the watchers have read what joining sent them: the
    /// presence diffs telling everyone of the arrivals, which bids must not
    /// queue behind.
    async fn settle(&self) {
        let deadline = Instant::now() + SETTLE_MAX;
        let mut last = self.frames.load(Ordering::Relaxed);
        while Instant::now() < deadline {
            tokio::time::sleep(SETTLED_AFTER).await;
            let now = self.frames.load(Ordering::Relaxed);
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Stops watching; what every watcher saw.
    fn finish(self) -> Seen {
        let _ = self.stop.send(true);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect()
    }
}

pub async fn run(bench: BidsBench) -> anyhow::Result<()> {
    if bench.bidders == 0 {
        bail!("--bidders must be at least 1");
    }
    if !(bench.duration.is_finite() && bench.duration > 0.0) {
        bail!("--duration must be a positive number of seconds");
    }
    if !(bench.rate.is_finite() && bench.rate >= 0.0) {
        bail!("--rate must be 0 (as fast as possible) or a positive number");
    }
    let limit = raise_nofile_limit();
    let total = bench.bidders + bench.watchers;
    if total as u64 + 64 > limit {
        bail!("{total} connections need more open files than the {limit} this process may open");
    }
    let starts_server =
        bench.server.is_none() || bench.database_url.is_none() || bench.session_key.is_none();
    bench.pinning.apply(starts_server)?;
    let (child, base, db_url, key_file) =
        match (&bench.server, &bench.database_url, &bench.session_key) {
            (Some(server), Some(db_url), Some(key_file)) => (
                None,
                server.trim_end_matches('/').to_owned(),
                db_url.clone(),
                key_file.clone(),
            ),
            _ => {
                let child = ChildServer::start(
                    &[
                        ("BAZAAR_WS__RATE", "1000000".to_owned()),
                        ("BAZAAR_WS__BURST", "1000000".to_owned()),
                    ],
                    bench.pinning.server(),
                )
                .await?;
                let db_url = format!(
                    "sqlite://{}?mode=rwc",
                    child.data_dir().join("bazaar.db").display()
                );
                let key_file = child.data_dir().join("session_key");
                let base = child.base.clone();
                (Some(child), base, db_url, key_file)
            }
        };
    let db = bazaar::db::open(&db_url).await?;
    let key = std::fs::read_to_string(&key_file)
        .with_context(|| format!("could not read the session key {}", key_file.display()))?;
    let key = key.trim().as_bytes().to_vec();
    let now = Utc::now();
    let lot = create_lot(
        &db,
        &Listing {
            title: "Benchmark lot".into(),
            description: String::new(),
            spec: LotSpec {
                currency: "EUR".into(),
                starting_cents: 100,
                reserve_cents: None,
                // One cent steps: the price climbs slowly enough to last.
                increments: Increments::new(vec![bazaar::auction::Tier {
                    from_cents: 0,
                    step_cents: 1,
                }])
                .map_err(|e| anyhow::anyhow!(e))?,
                starts_at: now - TimeDelta::seconds(1),
                ends_at: now + TimeDelta::hours(1),
                hard_end: now + TimeDelta::hours(2),
                soft_close: TimeDelta::zero(),
            },
        },
        None,
        now,
    )
    .await
    .map_err(|e| anyhow::anyhow!("could not list the lot: {e}"))?;
    let topic = format!("auction:{}", lot.id);
    let mut cookies = Vec::new();
    // Names of their own per run: a running server's database keeps them.
    let run_id = lot.id;
    for i in 0..bench.bidders {
        let name = LoginName::parse(&format!("b{run_id}x{i}")).map_err(|e| anyhow::anyhow!(e))?;
        let shown = UserName::parse_guest(name.as_str()).map_err(|e| anyhow::anyhow!(e))?;
        let account = accounts::create_user(&db, &name, &shown, "benchmark password", false, now)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let session =
            accounts::start_session(&db, &key, account.id, TimeDelta::hours(1), now).await?;
        cookies.push(format!("bazaar_session={}", session.token));
    }
    // The Scheduler opens the lot within a tick.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = awc::Client::builder()
        .connector(bazaar::net::connector().limit(0))
        .timeout(Duration::from_secs(30))
        .finish();
    let ws_base = base.replacen("http://", "ws://", 1);
    let setup = std::time::Instant::now();
    let threads = match bench.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, bench.watchers.max(1));
    let watchers = Watchers::join(&ws_base, &topic, bench.watchers, threads).await?;
    let mut bidders = Vec::with_capacity(bench.bidders);
    for cookie in &cookies {
        let url = format!("{ws_base}/ws");
        let (ws, me, min) = connect(&client, &url, Some(cookie), &topic).await?;
        bidders.push((
            ws,
            me.context("a bidder's join reply names its account")?,
            min,
        ));
    }
    watchers.settle().await;
    // Each join is news to everyone already there, so this is what a crowd
    // arriving (everyone reconnecting after a restart) costs in frames.
    eprintln!(
        "{} bidders and {} watchers ({threads} threads) joined in {:.2} s, the watchers \
         reading {} frames meanwhile; bidding for {} s",
        bench.bidders,
        bench.watchers,
        setup.elapsed().as_secs_f64(),
        watchers.frames.load(Ordering::Relaxed),
        bench.duration
    );

    let stats = Rc::new(RefCell::new(Stats::default()));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(bench.duration);
    // At a rate, each bidder gets every n-th slot, spread over one period.
    let pace =
        (bench.rate > 0.0).then(|| Duration::from_secs_f64(bench.bidders as f64 / bench.rate));
    let bidding: Vec<_> = bidders
        .into_iter()
        .enumerate()
        .map(|(i, (ws, me, min))| {
            let first = t0
                + pace.map_or(Duration::ZERO, |p| {
                    p.mul_f64(i as f64 / bench.bidders as f64)
                });
            let timing = (end, pace, first);
            actix_web::rt::spawn(bidder_loop(
                ws,
                me,
                topic.clone(),
                timing,
                min,
                stats.clone(),
            ))
        })
        .collect();
    for task in bidding {
        let _ = task.await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // The last events reach the watchers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = watchers.finish();
    // A running server's memory is its own business (and a cluster's spread).
    let peak_rss_kib = child
        .as_ref()
        .map_or(0, |child| proc_status_kib(child.pid, "VmHWM"));
    if let Some(child) = child {
        child.stop().await;
    }

    let s = stats.take();
    let mut latencies: Vec<u64> = seen
        .iter()
        .filter_map(|(seq, at)| {
            let sent = s.sent_at.get(seq)?;
            Some(at.saturating_duration_since(*sent).as_micros() as u64)
        })
        .collect();
    latencies.sort_unstable();
    let expected = s.accepted * bench.watchers as u64;
    let ms = |us: u64| us as f64 / 1000.0;
    let rate = s.accepted as f64 / elapsed;
    let p50 = ms(percentile(&latencies, 50.0));
    let p99 = ms(percentile(&latencies, 99.0));
    let max = ms(latencies.last().copied().unwrap_or(0));
    let rate_text = if bench.rate > 0.0 {
        format!("{}/s tried", bench.rate)
    } else {
        "max".to_owned()
    };
    println!(
        "bidders {} watchers {} (rate {rate_text})  accepted {} ({rate:.0}/s) refused {}  \
         bid → watcher latency p50 {p50:.2} ms p99 {p99:.2} ms max {max:.2} ms \
         ({} of {expected} events timed)  peak RSS {} MiB",
        bench.bidders,
        bench.watchers,
        s.accepted,
        s.refused,
        latencies.len(),
        peak_rss_kib / 1024,
    );
    println!("\nbidders,watchers,seconds,accepted,refused,accepted_per_s,p50_ms,p99_ms,max_ms,events_timed,events_expected,peak_rss_kib");
    println!(
        "{},{},{elapsed:.3},{},{},{rate:.1},{p50:.3},{p99:.3},{max:.3},{},{expected},{peak_rss_kib}",
        bench.bidders,
        bench.watchers,
        s.accepted,
        s.refused,
        latencies.len(),
    );
    if let Some(e) = &s.first_error {
        eprintln!("first unexpected refusal: {e}");
    }
    Ok(())
}
