//! The chat benchmark: R rooms of M members each (separate WebSockets), S of
//! them sending `say` at a rate or as fast as a window of messages in flight
//! allows; every member times each message from its send to its arrival.
//!
//! The load generator shares the machine with the server, so it stays lean:
//! one thread, one task per connection, and frames are scanned for the few
//! fields needed (`seq`, the send time embedded in the text) rather than
//! parsed.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use actix_codec::Framed;
use anyhow::{bail, Context};
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use url::Url;

use super::pin::{cpu_seconds, Pinning};
use super::{ensure_open_files, percentile, prefill, proc_status_kib, ChildServer};

#[derive(Debug, Clone, Args)]
pub struct ChatBench {
    /// Target this running server (http:// or ws://) instead of starting one.
    #[arg(long)]
    server: Option<Url>,
    /// Rooms, `chat:bench-<i>`.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Members (WebSocket connections) per room, senders included.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Members per room that send.
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Messages per second per sender; 0 sends as fast as the window allows.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Messages a sender may have in flight (sent, its own copy not yet back).
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Bytes of text per message (at least the embedded send time).
    #[arg(long, default_value_t = 32)]
    text_bytes: usize,
    /// Before the server starts, fills its database with this many
    /// year-old messages in a room nobody joins; past what
    /// `retention.chat_messages` keeps, its first retention pass removes
    /// them while the load runs.
    #[arg(long, default_value_t = 0)]
    old_messages: u64,
    #[command(flatten)]
    pinning: Pinning,
}

impl ChatBench {
    fn validate(&self) -> anyhow::Result<()> {
        if self.rooms == 0 || self.members == 0 {
            bail!("--rooms and --members must be at least 1");
        }
        if self.senders == 0 || self.senders > self.members {
            bail!(
                "--senders must be between 1 and --members ({})",
                self.members
            );
        }
        if self.window == 0 {
            bail!("--window must be at least 1");
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            bail!("--rate must be 0 (as fast as possible) or a positive number");
        }
        if !(self.duration.is_finite() && self.duration > 0.0) {
            bail!("--duration must be a positive number of seconds");
        }
        if self.old_messages > 0 && self.server.is_some() {
            bail!("--old-messages fills the database of a server this benchmark starts, not --server's");
        }
        Ok(())
    }
}

/// How long to wait after the sending window for the last deliveries.
const DRAIN: Duration = Duration::from_secs(10);
/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 32;

#[derive(Default)]
pub(super) struct Stats {
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    pub deliveries: u64,
    pub gaps: u64,
    /// Empty unless the plan keeps them.
    latencies_us: Vec<u64>,
    last_delivery: Option<Instant>,
    senders_active: usize,
    closed: usize,
    pub first_error: Option<String>,
}

impl Stats {
    /// Messages the server had neither accepted nor refused when the run
    /// ended.
    pub(super) fn unanswered(&self) -> u64 {
        self.sent.saturating_sub(self.acked + self.rejected)
    }

    /// Copies missing of the messages the server accepted; `None` while
    /// some were unanswered, since their copies may or may not have come
    /// and only per-message accounting could tell.
    pub(super) fn loss(&self, members: usize) -> Option<i64> {
        (self.unanswered() == 0)
            .then(|| (self.acked * members as u64) as i64 - self.deliveries as i64)
    }

    /// `loss` for a report line: the count, or why there is none.
    pub(super) fn loss_text(&self, members: usize) -> String {
        match self.loss(members) {
            Some(n) => n.to_string(),
            None => format!("unknown ({} says unanswered)", self.unanswered()),
        }
    }

    /// `loss` for a CSV line: empty when unknown.
    pub(super) fn loss_csv(&self, members: usize) -> String {
        self.loss(members).map_or(String::new(), |n| n.to_string())
    }

    /// Says on stderr what went wrong in the `what` (a run, a chat): the
    /// first error seen, and any loss, seq gap or refused message.
    pub(super) fn warn_if_unhealthy(&self, members: usize, what: &str) {
        if let Some(e) = &self.first_error {
            eprintln!("first error: {e}");
        }
        if self.loss(members) != Some(0) || self.gaps != 0 || self.rejected != 0 {
            eprintln!(
                "warning: unhealthy {what} (loss {}, {} seq gaps, {} says rejected)",
                self.loss_text(members),
                self.gaps,
                self.rejected
            );
        }
    }
}

/// What a frame from the server is, as far as this benchmark cares.
#[derive(Debug, PartialEq)]
enum Event {
    /// A chat message: its `seq`, and the send time (ns) and sender id when
    /// this benchmark sent it.
    Message {
        seq: Option<u64>,
        sent_ns: Option<u64>,
        sender: Option<u64>,
    },
    Reply {
        ok: bool,
    },
    Other,
}

/// The digits right after `key` in `s`.
fn number_after(s: &str, key: &str) -> Option<u64> {
    let rest = &s[s.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn scan(frame: &str) -> Event {
    if frame.contains(r#""op":"message""#) {
        let (sent_ns, sender) = match frame.find(r#""text":"t="#) {
            Some(at) => {
                let text = &frame[at + 8..];
                (number_after(text, "t="), number_after(text, " s="))
            }
            None => (None, None),
        };
        Event::Message {
            seq: number_after(frame, r#""seq":"#),
            sent_ns,
            sender,
        }
    } else if frame.contains(r#""op":"reply""#) {
        Event::Reply {
            ok: frame.contains(r#""status":"ok""#),
        }
    } else {
        Event::Other
    }
}

/// The text of a message: the send time and sender first, padded to `bytes`.
fn message_text(sent_ns: u128, sender: usize, bytes: usize) -> String {
    let mut text = format!("t={sent_ns} s={sender} ");
    while text.len() < bytes {
        text.push('x');
    }
    text
}

type Socket = Framed<BoxedSocket, Codec>;

async fn connect_and_join(client: &awc::Client, url: Url, topic: String) -> anyhow::Result<Socket> {
    let (_, mut ws) = client
        .ws(url.as_str())
        .max_frame_size(8 << 20)
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("connect {url}: {e}"))?;
    let join = format!(r#"{{"op":"join","topic":"{topic}","ref":"j"}}"#);
    ws.send(Message::Text(join.into())).await?;
    while let Some(frame) = ws.next().await {
        if let Frame::Text(bytes) = frame? {
            let text = std::str::from_utf8(&bytes)?;
            if text.contains(r#""ref":"j""#) {
                if scan(text) == (Event::Reply { ok: true }) {
                    return Ok(ws);
                }
                bail!("join {topic} refused: {text}");
            }
        }
    }
    bail!("the server closed the socket before answering the join")
}

pub(super) struct Member {
    ws: Socket,
    topic: String,
    /// This member's sender id, if it sends.
    sender: Option<usize>,
}

/// What the members do: from `t0` to `end`, each sender says a message
/// every `period` (or as fast as its window allows).
pub(super) struct Plan {
    t0: Instant,
    end: Instant,
    period: Option<Duration>,
    window: usize,
    text_bytes: usize,
    senders: usize,
    /// Whether to keep every delivery's latency: a long run at a steady
    /// rate would keep millions it does not report.
    keep_latencies: bool,
}

impl Plan {
    /// Starting now, for `duration` seconds, `rate` messages a second per
    /// sender (0: as fast as the window allows).
    pub(super) fn new(
        duration: f64,
        rate: f64,
        window: usize,
        text_bytes: usize,
        senders: usize,
        keep_latencies: bool,
    ) -> Plan {
        let t0 = Instant::now();
        Plan {
            t0,
            end: t0 + Duration::from_secs_f64(duration),
            period: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            window,
            text_bytes,
            senders,
            keep_latencies,
        }
    }
}

async fn member_loop(mut m: Member, plan: Rc<Plan>, stats: Rc<RefCell<Stats>>) {
    let mut sending = m.sender.is_some();
    let mut in_flight = 0usize;
    // Senders at a rate start spread over one period, as independent
    // people would, rather than all in the same instant.
    let mut next_send = match (plan.period, m.sender) {
        (Some(period), Some(id)) => plan.t0 + period.mul_f64(id as f64 / plan.senders as f64),
        _ => plan.t0,
    };
    let mut last_seq: Option<u64> = None;
    let error = loop {
        let can_send = sending && in_flight < plan.window;
        tokio::select! {
            biased;
            frame = m.ws.next() => match frame {
                None => break None,
                Some(Err(e)) => break Some(e.to_string()),
                Some(Ok(Frame::Close(reason))) => break Some(format!("closed by the server: {reason:?}")),
                Some(Ok(Frame::Ping(p))) => {
                    let _ = m.ws.send(Message::Pong(p)).await;
                }
                Some(Ok(Frame::Text(bytes))) => {
                    let now = Instant::now();
                    let Ok(text) = std::str::from_utf8(&bytes) else { continue };
                    let mut s = stats.borrow_mut();
                    match scan(text) {
                        Event::Message { seq, sent_ns, sender } => {
                            if let (Some(seq), Some(last)) = (seq, last_seq) {
                                s.gaps += seq.saturating_sub(last + 1);
                            }
                            last_seq = seq.or(last_seq);
                            if let Some(sent_ns) = sent_ns {
                                s.deliveries += 1;
                                if plan.keep_latencies {
                                    let now_ns = (now - plan.t0).as_nanos() as u64;
                                    s.latencies_us.push(now_ns.saturating_sub(sent_ns) / 1000);
                                }
                                s.last_delivery = Some(now);
                                if sender.is_some() && sender == m.sender.map(|id| id as u64) {
                                    in_flight = in_flight.saturating_sub(1);
                                }
                            }
                        }
                        Event::Reply { ok: true } => s.acked += 1,
                        Event::Reply { ok: false } => {
                            // A refused say never comes back as a message:
                            // its place in the window is free again.
                            in_flight = in_flight.saturating_sub(1);
                            s.rejected += 1;
                            if s.first_error.is_none() {
                                s.first_error = Some(text.chars().take(300).collect());
                            }
                        }
                        Event::Other => {}
                    }
                }
                Some(Ok(_)) => {}
            },
            () = tokio::time::sleep_until(next_send.min(plan.end)), if can_send => {
                let now = Instant::now();
                if now >= plan.end {
                    sending = false;
                    stats.borrow_mut().senders_active -= 1;
                    continue;
                }
                // Everything due goes out in one write: one say per wake-up
                // would cap a sender at the timer's resolution.
                let mut burst = 0;
                let mut failed = None;
                while in_flight < plan.window && next_send <= now {
                    let text = message_text((now - plan.t0).as_nanos(), m.sender.unwrap_or(0), plan.text_bytes);
                    let say = format!(r#"{{"op":"say","topic":"{}","text":"{text}","ref":"s"}}"#, m.topic);
                    if let Err(e) = m.ws.feed(Message::Text(say.into())).await {
                        failed = Some(e.to_string());
                        break;
                    }
                    in_flight += 1;
                    burst += 1;
                    if let Some(period) = plan.period {
                        next_send += period;
                    }
                }
                if plan.period.is_some() && next_send < now {
                    // Behind schedule by more than a window: skip, don't flood.
                    next_send = now;
                }
                stats.borrow_mut().sent += burst;
                if failed.is_some() {
                    break failed;
                }
                if let Err(e) = m.ws.flush().await {
                    break Some(e.to_string());
                }
            }
        }
    };
    let mut s = stats.borrow_mut();
    s.closed += 1;
    if sending {
        s.senders_active -= 1;
    }
    if let Some(e) = error {
        s.first_error.get_or_insert(e);
    }
}

/// The server's limits on messages per connection, lifted: the benchmark
/// sets the pace.
pub(super) fn unthrottled() -> [(&'static str, String); 2] {
    [
        ("BAZAAR_WS__RATE", "1000000".to_owned()),
        ("BAZAAR_WS__BURST", "1000000".to_owned()),
    ]
}

/// `rooms` rooms (`chat:bench-<i>`) of `members` members each, connected
/// and joined to `server`; the first `senders` of each room send.
pub(super) async fn join(
    server: &Url,
    rooms: usize,
    members: usize,
    senders: usize,
) -> anyhow::Result<Vec<Member>> {
    let mut plans = Vec::with_capacity(rooms * members);
    for room in 0..rooms {
        for i in 0..members {
            let url = bazaar::chat_cli::endpoint(server, &format!("b{room}-{i}"))?;
            let sender = (i < senders).then_some(room * senders + i);
            plans.push((url, format!("chat:bench-{room}"), sender));
        }
    }
    // One client for all: building one per connection costs a TLS context
    // each (tens of ms). No pool limit: upgraded sockets would count in it.
    let client = awc::Client::builder()
        .connector(bazaar::net::connector().limit(0))
        .timeout(Duration::from_secs(30))
        .finish();
    let client = &client;
    futures_util::stream::iter(plans)
        .map(|(url, topic, sender)| async move {
            let ws = connect_and_join(client, url, topic.clone()).await?;
            Ok::<_, anyhow::Error>(Member { ws, topic, sender })
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("could not set up the members")
}

/// Members at work on a plan, counting what they send and receive.
pub(super) struct Load {
    plan: Rc<Plan>,
    stats: Rc<RefCell<Stats>>,
    tasks: Vec<actix_web::rt::task::JoinHandle<()>>,
}

impl Load {
    /// Each member in its own task, on this thread.
    pub(super) fn start(members: Vec<Member>, plan: Plan) -> Load {
        let plan = Rc::new(plan);
        let stats = Rc::new(RefCell::new(Stats {
            senders_active: plan.senders,
            ..Stats::default()
        }));
        let tasks = members
            .into_iter()
            .map(|m| actix_web::rt::spawn(member_loop(m, plan.clone(), stats.clone())))
            .collect();
        Load { plan, stats, tasks }
    }

    /// When the plan started.
    pub(super) fn t0(&self) -> Instant {
        self.plan.t0
    }

    /// Messages sent and delivered so far.
    pub(super) fn progress(&self) -> (u64, u64) {
        let s = self.stats.borrow();
        (s.sent, s.deliveries)
    }

    /// Waits out the plan, then for the last copies to reach the rooms'
    /// `members` each (at most [`DRAIN`]); stops the members.
    pub(super) async fn finish(self, members: usize) -> Stats {
        tokio::time::sleep_until(self.plan.end).await;
        let drain_until = self.plan.end + DRAIN;
        loop {
            {
                let s = self.stats.borrow();
                let done = s.senders_active == 0 && s.acked + s.rejected >= s.sent;
                if done && s.deliveries >= s.acked * members as u64 {
                    break;
                }
                if s.closed == self.tasks.len() {
                    break;
                }
            }
            if Instant::now() > drain_until {
                eprintln!("warning: gave up waiting for the last deliveries after {DRAIN:?}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in &self.tasks {
            task.abort();
        }
        self.stats.take()
    }
}

pub async fn run(bench: ChatBench) -> anyhow::Result<()> {
    bench.validate()?;
    let total = bench.rooms * bench.members;
    ensure_open_files(total)?;
    bench.pinning.apply(bench.server.is_none())?;
    let child = match &bench.server {
        Some(_) => None,
        None => {
            let dir = tempfile::tempdir()?;
            if bench.old_messages > 0 {
                prefill::old_messages(dir.path(), bench.old_messages).await?;
            }
            Some(ChildServer::start_in(dir, &unthrottled(), bench.pinning.server()).await?)
        }
    };
    let server = match (&bench.server, &child) {
        (Some(url), _) => url.clone(),
        (None, Some(child)) => Url::parse(&child.base)?,
        (None, None) => unreachable!(),
    };

    let setup = std::time::Instant::now();
    let members = join(&server, bench.rooms, bench.members, bench.senders).await?;
    eprintln!(
        "{total} members joined in {:.2} s; sending for {} s",
        setup.elapsed().as_secs_f64(),
        bench.duration
    );

    let cpu_before = child.as_ref().map(|c| cpu_seconds(c.pid));
    let plan = Plan::new(
        bench.duration,
        bench.rate,
        bench.window,
        bench.text_bytes,
        bench.rooms * bench.senders,
        true,
    );
    let t0 = plan.t0;
    let load = Load::start(members, plan);
    let mut s = load.finish(bench.members).await;
    let peak_rss_kib = child
        .as_ref()
        .map_or(0, |c| proc_status_kib(c.pid, "VmHWM"));
    // The server's CPU time from the first send to the last delivery.
    let server_cpu_s = match (&child, cpu_before) {
        (Some(c), Some(before)) => Some(cpu_seconds(c.pid) - before),
        _ => None,
    };
    if let (Some(child), true) = (&child, bench.old_messages > 0) {
        let left = prefill::old_messages_left(child.data_dir()).await?;
        println!(
            "the retention pass removed {} of the {} old messages by the end of the run",
            bench.old_messages.saturating_sub(left),
            bench.old_messages
        );
    }
    if let Some(child) = child {
        child.stop().await;
    }

    s.latencies_us.sort_unstable();
    let seconds = s
        .last_delivery
        .map_or(bench.duration, |l| (l - t0).as_secs_f64())
        .max(1e-9);
    let ms = |us: u64| us as f64 / 1000.0;
    let p50 = ms(percentile(&s.latencies_us, 50.0));
    let p99 = ms(percentile(&s.latencies_us, 99.0));
    let max = ms(s.latencies_us.last().copied().unwrap_or(0));
    let rate = if bench.rate > 0.0 {
        format!("{}/s", bench.rate)
    } else {
        "max".to_owned()
    };
    let rss = if peak_rss_kib > 0 {
        format!("{} MiB", peak_rss_kib / 1024)
    } else {
        "n/a".to_owned()
    };
    // CPU cost of the server per 1,000 deliveries, in ms.
    let cpu_per_k = server_cpu_s
        .filter(|_| s.deliveries > 0)
        .map(|cpu| cpu * 1e6 / s.deliveries as f64);
    let cpu = match (server_cpu_s, cpu_per_k) {
        (Some(cpu), Some(per_k)) => {
            format!("  server CPU {cpu:.2} s ({per_k:.1} ms per 1,000 deliveries)")
        }
        _ => String::new(),
    };
    println!(
        "rooms {} × members {} (senders {} at {rate}, window {})  sent {} acked {}  \
         {:.0} deliveries/s ({} in {:.2} s)  latency p50 {p50:.2} ms p99 {p99:.2} ms max {max:.2} ms  \
         loss {}  seq gaps {}  peak RSS {rss}{cpu}",
        bench.rooms,
        bench.members,
        bench.senders,
        bench.window,
        s.sent,
        s.acked,
        s.deliveries as f64 / seconds,
        s.deliveries,
        seconds,
        s.loss_text(bench.members),
        s.gaps,
    );
    println!("\nrooms,members,senders,rate,window,text_bytes,sent,acked,rejected,deliveries,seconds,deliveries_per_s,p50_ms,p99_ms,max_ms,loss,seq_gaps,peak_rss_kib,server_cpu_s,server_cpu_ms_per_1000,unanswered");
    let csv_cpu = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    println!(
        "{},{},{},{},{},{},{},{},{},{},{:.3},{:.1},{p50:.3},{p99:.3},{max:.3},{},{},{peak_rss_kib},{},{},{}",
        bench.rooms,
        bench.members,
        bench.senders,
        bench.rate,
        bench.window,
        bench.text_bytes,
        s.sent,
        s.acked,
        s.rejected,
        s.deliveries,
        seconds,
        s.deliveries as f64 / seconds,
        s.loss_csv(bench.members),
        s.gaps,
        csv_cpu(server_cpu_s),
        csv_cpu(cpu_per_k),
        s.unanswered(),
    );
    s.warn_if_unhealthy(bench.members, "run");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_counts_only_answered_messages() {
        let mut s = Stats {
            sent: 10,
            acked: 10,
            deliveries: 98,
            ..Stats::default()
        };
        assert_eq!(s.loss(10), Some(2));
        // Two still due when the run ended: copies of them may have come.
        s.sent = 12;
        s.deliveries = 115;
        assert_eq!(s.unanswered(), 2);
        assert_eq!(s.loss(10), None);
        assert_eq!(s.loss_text(10), "unknown (2 says unanswered)");
        assert_eq!(s.loss_csv(10), "");
        // Refused ones are answered, and expect no copies.
        s.rejected = 2;
        s.deliveries = 100;
        assert_eq!(s.loss(10), Some(0));
    }

    #[test]
    fn scans_only_the_needed_fields() {
        let text = message_text(123_456, 7, 32);
        assert_eq!(text.len(), 32);
        let frame = format!(
            r#"{{"op":"message","topic":"chat:bench-0","id":5,"seq":42,"user":"b0-0","text":"{text}","at":"x"}}"#
        );
        assert_eq!(
            scan(&frame),
            Event::Message {
                seq: Some(42),
                sent_ns: Some(123_456),
                sender: Some(7)
            }
        );
        assert_eq!(
            scan(r#"{"op":"reply","ref":"s","status":"ok","body":{"id":1,"seq":2}}"#),
            Event::Reply { ok: true }
        );
        assert_eq!(
            scan(r#"{"op":"reply","ref":"s","status":"error","body":{}}"#),
            Event::Reply { ok: false }
        );
        assert_eq!(scan(r#"{"op":"presence"}"#), Event::Other);
    }

    #[test]
    fn rejects_impossible_options() {
        let ok = ChatBench {
            server: None,
            rooms: 1,
            members: 10,
            senders: 1,
            rate: 0.0,
            window: 100,
            duration: 1.0,
            text_bytes: 32,
            old_messages: 0,
            pinning: Pinning::default(),
        };
        assert!(ok.validate().is_ok());
        // Old messages go into the database of a server it starts.
        assert!(ChatBench {
            old_messages: 10,
            server: Some(Url::parse("http://127.0.0.1:8080").unwrap()),
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ChatBench {
            senders: 11,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ChatBench {
            window: 0,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ChatBench {
            rate: -1.0,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ChatBench {
            duration: 0.0,
            ..ok.clone()
        }
        .validate()
        .is_err());
    }
}
