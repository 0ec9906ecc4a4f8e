//! Prometheus metrics: the counters only this node sees, a fixed-bucket
//! histogram, and the text format a scrape of `/metrics` reads (exposition
//! format 0.0.4). Figures the database holds are read at scrape time by
//! `web::metrics`, so that every node of a cluster reports the same truth.

use std::collections::BTreeMap;
use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::http::{Method, StatusCode};

use crate::ws::Refusal;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the HTTP duration buckets, in seconds: Prometheus's
/// defaults, from a cached page to a request stuck on the database.
pub const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the retention pass duration buckets, in seconds: a pass
/// with little to do takes milliseconds; the first on a large database,
/// with its pauses between batches, minutes.
pub const RETENTION_BUCKETS: &[f64] = &[0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

/// Upper bounds of the task attempt duration buckets, in seconds: a page
/// from the demo stores takes milliseconds, one from a real store up to a
/// few seconds, and an attempt whose lease expired lasted the lease.
pub const TASK_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The methods named in the HTTP label; any other is `other`, so that a
/// client inventing methods cannot add series.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// Observations counted into fixed buckets, as a Prometheus histogram is.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; the last bucket is above
    /// every bound (`+Inf`).
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    /// The bucket `value` falls in: the first whose bound is at least
    /// `value` (a bound is inclusive, as `le` says), or the last.
    pub fn bucket(&self, value: f64) -> usize {
        self.bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.bounds.len())
    }

    pub fn observe(&mut self, value: f64) {
        self.add(self.bucket(value), 1, value);
    }

    /// Adds `count` observations that sum to `sum` to one bucket: how bucket
    /// counts computed by the database come in. A bucket past the last
    /// bound is the last.
    pub fn add(&mut self, bucket: usize, count: u64, sum: f64) {
        let last = self.bounds.len();
        self.counts[bucket.min(last)] += count;
        self.sum += sum;
    }

    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }
}

/// Which WebSocket a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// A browser or `bazaar chat` on `/ws`.
    Client,
    /// A `bazaar worker` on `/ws/worker`.
    Worker,
}

/// A connection counted as open until this is dropped, with the
/// connection's response body.
pub struct Open {
    metrics: Arc<Metrics>,
    kind: Connection,
}

impl Open {
    pub fn kind(&self) -> Connection {
        self.kind
    }

    /// The server closed this connection with `code`.
    pub fn closed(&self, code: u16) {
        let mut closes = self
            .metrics
            .ws_closes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *closes.entry(code).or_default() += 1;
    }

    /// This connection was refused at its upgrade, over a cap.
    pub fn refused(&self, refusal: Refusal) {
        let counter = match refusal {
            Refusal::NodeFull => &self.metrics.ws_refused_node_full,
            Refusal::AddressFull => &self.metrics.ws_refused_address_full,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics
            .gauge(self.kind)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// One series of the HTTP histogram. The route is the matched pattern,
/// never the path, so the series are bounded by the routes there are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct HttpSeries {
    route: String,
    method: &'static str,
    status: &'static str,
}

/// What only this node sees: its sockets, its requests, the leases its
/// sweep found expired. One per process, shared by every HTTP worker.
#[derive(Debug, Default)]
pub struct Metrics {
    clients: AtomicU64,
    workers: AtomicU64,
    leases_expired: AtomicU64,
    /// A std Mutex: it is held for a lookup and an add, never across an
    /// `.await`.
    http: Mutex<BTreeMap<HttpSeries, Histogram>>,
    /// WebSocket closes the server began, by close code.
    ws_closes: Mutex<BTreeMap<u16, u64>>,
    /// WebSocket upgrades refused for a cap: the node's, an address's.
    ws_refused_node_full: AtomicU64,
    ws_refused_address_full: AtomicU64,
    /// Rows this node's retention passes removed, by table.
    retention_deleted: Mutex<BTreeMap<&'static str, u64>>,
    /// How long this node's retention passes took.
    retention_passes: Mutex<Option<Histogram>>,
}

/// The close codes the server sends (docs/protocol.md §4), listed at 0
/// before any such close, so that a rate over them starts from the start.
const CLOSE_CODES: [u16; 8] = [1000, 1001, 1002, 1007, 1008, 1009, 1013, 4401];

/// What a scrape read from the database, the same on every node, and from
/// this node's actors.
#[derive(Debug, Clone)]
pub struct Gathered {
    /// Tasks per state, every state listed.
    pub tasks: Vec<(String, u64)>,
    /// How long finished task attempts took.
    pub attempts: Histogram,
    /// Mails per outbox status, every status listed.
    pub mails: Vec<(String, u64)>,
    pub messages: u64,
    pub bids: u64,
    /// Chat rooms and lots with members on this node.
    pub chat_topics: u64,
    pub auction_topics: u64,
    /// Room actors running on this node, with members or not.
    pub chat_rooms: u64,
    pub auction_rooms: u64,
    /// Scraper restarts, summed over the workers connected to this node.
    pub scraper_restarts: u64,
}

impl Metrics {
    /// Counts a connection of `kind` as open until the guard is dropped.
    pub fn open(self: &Arc<Self>, kind: Connection) -> Open {
        self.gauge(kind).fetch_add(1, Ordering::Relaxed);
        Open {
            metrics: self.clone(),
            kind,
        }
    }

    /// Connections of `kind` open on this node now.
    pub fn open_now(&self, kind: Connection) -> u64 {
        self.gauge(kind).load(Ordering::Relaxed)
    }

    fn gauge(&self, kind: Connection) -> &AtomicU64 {
        match kind {
            Connection::Client => &self.clients,
            Connection::Worker => &self.workers,
        }
    }

    /// Counts rows a retention pass removed, as each batch commits.
    pub fn retention_removed(&self, table: &'static str, rows: u64) {
        *self
            .retention_deleted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(table)
            .or_default() += rows;
    }

    /// Counts how long a retention pass took.
    pub fn retention_pass_took(&self, took: Duration) {
        self.retention_passes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| Histogram::new(RETENTION_BUCKETS))
            .observe(took.as_secs_f64());
    }

    pub fn leases_expired(&self, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        self.leases_expired.fetch_add(count, Ordering::Relaxed);
    }

    /// Records one request; `route` is the pattern it matched, if any.
    pub fn observe_http(
        &self,
        method: &Method,
        route: Option<&str>,
        status: StatusCode,
        took: Duration,
    ) {
        let series = HttpSeries {
            route: route.unwrap_or("unmatched").to_owned(),
            method: METHODS
                .into_iter()
                .find(|m| *m == method.as_str())
                .unwrap_or("other"),
            status: status_class(status),
        };
        let Ok(mut http) = self.http.lock() else {
            return;
        };
        http.entry(series)
            .or_insert_with(|| Histogram::new(HTTP_BUCKETS))
            .observe(took.as_secs_f64());
    }

    /// The whole scrape in the text format.
    pub fn render(&self, gathered: &Gathered) -> String {
        let mut text = Text::default();
        text.gauge(
            "bazaar_open_connections",
            "WebSocket connections open on this node, by kind (client: /ws, worker: /ws/worker).",
            &[
                (&[("kind", "client")], self.open_now(Connection::Client)),
                (&[("kind", "worker")], self.open_now(Connection::Worker)),
            ],
        );
        let mut closes = self
            .ws_closes
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        for code in CLOSE_CODES {
            closes.entry(code).or_default();
        }
        let codes: Vec<_> = closes
            .iter()
            .map(|(code, n)| (code.to_string(), *n))
            .collect();
        let codes: Vec<_> = codes
            .iter()
            .map(|(code, n)| ([("code", code.as_str())], *n))
            .collect();
        let codes: Vec<_> = codes.iter().map(|(l, n)| (&l[..], *n)).collect();
        text.counter(
            "bazaar_ws_closes_total",
            "WebSocket closes this node began (a slow consumer, a flood, a bad frame, silence, shutdown...), by close code.",
            &codes,
        );
        text.counter(
            "bazaar_ws_refusals_total",
            "WebSocket upgrades this node refused for a cap: server.max_connections (node_full) or server.max_connections_per_address (address_full).",
            &[
                (
                    &[("reason", "node_full")],
                    self.ws_refused_node_full.load(Ordering::Relaxed),
                ),
                (
                    &[("reason", "address_full")],
                    self.ws_refused_address_full.load(Ordering::Relaxed),
                ),
            ],
        );
        text.gauge(
            "bazaar_topics",
            "Topics with members on this node, by kind.",
            &[
                (&[("kind", "chat")], gathered.chat_topics),
                (&[("kind", "auction")], gathered.auction_topics),
            ],
        );
        text.gauge(
            "bazaar_rooms",
            "Rooms running on this node, by kind, with members or not: an empty room closes once it has stored what was said.",
            &[
                (&[("kind", "chat")], gathered.chat_rooms),
                (&[("kind", "auction")], gathered.auction_rooms),
            ],
        );
        text.counter(
            "bazaar_messages_total",
            "Chat messages stored (database).",
            &[(&[], gathered.messages)],
        );
        text.counter(
            "bazaar_bids_total",
            "Bids recorded on lots, typed and proxy (database).",
            &[(&[], gathered.bids)],
        );
        let tasks: Vec<_> = gathered
            .tasks
            .iter()
            .map(|(state, n)| ([("state", state.as_str())], *n))
            .collect();
        let tasks: Vec<_> = tasks.iter().map(|(l, n)| (&l[..], *n)).collect();
        text.gauge("bazaar_tasks", "Crawl tasks by state (database).", &tasks);
        text.histogram(
            "bazaar_task_attempt_duration_seconds",
            "How long finished task attempts took, from lease to outcome (database).",
            &[(&[], &gathered.attempts)],
        );
        text.counter(
            "bazaar_leases_expired_total",
            "Task leases this node's sweep found expired and gave back to the queue.",
            &[(&[], self.leases_expired.load(Ordering::Relaxed))],
        );
        text.gauge(
            "bazaar_scraper_restarts",
            "Scraper restarts reported by the workers connected to this node, summed.",
            &[(&[], gathered.scraper_restarts)],
        );
        let restarts: Vec<_> = crate::supervision::restarts()
            .map(|(actor, n)| ([("actor", actor.as_str())], n))
            .collect();
        let restarts: Vec<_> = restarts.iter().map(|(l, n)| (&l[..], *n)).collect();
        text.counter(
            "bazaar_actor_restarts_total",
            "Restarts of this node's supervised actors, after a panic or a stop, by actor.",
            &restarts,
        );
        let mut deleted = self
            .retention_deleted
            .lock()
            .map(|d| d.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        for table in crate::retention::TABLES {
            deleted.entry(table).or_default();
        }
        let deleted: Vec<_> = deleted
            .iter()
            .map(|(table, n)| ([("table", *table)], *n))
            .collect();
        let deleted: Vec<_> = deleted.iter().map(|(l, n)| (&l[..], *n)).collect();
        text.counter(
            "bazaar_retention_deleted_total",
            "Rows this node's retention passes removed, by table (confirmation_tokens: links cleared from subscriptions that stay).",
            &deleted,
        );
        let passes = self
            .retention_passes
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
            .unwrap_or_else(|| Histogram::new(RETENTION_BUCKETS));
        text.histogram(
            "bazaar_retention_pass_duration_seconds",
            "How long this node's retention passes took, batches and pauses included.",
            &[(&[], &passes)],
        );
        let mails: Vec<_> = gathered
            .mails
            .iter()
            .map(|(status, n)| ([("status", status.as_str())], *n))
            .collect();
        let mails: Vec<_> = mails.iter().map(|(l, n)| (&l[..], *n)).collect();
        text.gauge("bazaar_mails", "Mails by outbox status (database).", &mails);
        // Copied out, so that requests are not held up while this renders.
        let http = self.http.lock().map(|h| h.clone()).unwrap_or_default();
        let labels: Vec<_> = http
            .keys()
            .map(|s| {
                [
                    ("method", s.method),
                    ("route", s.route.as_str()),
                    ("status", s.status),
                ]
            })
            .collect();
        let series: Vec<_> = labels.iter().map(|l| &l[..]).zip(http.values()).collect();
        text.histogram(
            "bazaar_http_request_duration_seconds",
            "Time to the response head on this node, by method, route pattern and status class.",
            &series,
        );
        text.out
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

type Labels<'a> = &'a [(&'a str, &'a str)];

/// Writes the text format: each family's HELP and TYPE once, then its
/// samples, one `name{labels} value` a line.
#[derive(Default)]
struct Text {
    out: String,
}

impl Text {
    fn gauge(&mut self, name: &str, help: &str, samples: &[(Labels, u64)]) {
        self.family(name, "gauge", help);
        for (labels, value) in samples {
            self.sample(name, labels, None, value);
        }
    }

    fn counter(&mut self, name: &str, help: &str, samples: &[(Labels, u64)]) {
        self.family(name, "counter", help);
        for (labels, value) in samples {
            self.sample(name, labels, None, value);
        }
    }

    fn histogram(&mut self, name: &str, help: &str, series: &[(Labels, &Histogram)]) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (labels, histogram) in series {
            let mut below = 0;
            for (bound, count) in histogram.bounds.iter().zip(&histogram.counts) {
                below += count;
                self.sample(&bucket, labels, Some(&bound.to_string()), below);
            }
            self.sample(&bucket, labels, Some("+Inf"), histogram.count());
            self.sample(&format!("{name}_sum"), labels, None, float(histogram.sum));
            self.sample(&format!("{name}_count"), labels, None, histogram.count());
        }
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One line; `le` is a histogram bucket's bound, written last.
    fn sample(&mut self, name: &str, labels: Labels, le: Option<&str>, value: impl Display) {
        self.out.push_str(name);
        let le = le.map(|bound| ("le", bound));
        let mut labels = labels.iter().copied().chain(le).peekable();
        if labels.peek().is_some() {
            self.out.push('{');
            for (i, (key, value)) in labels.enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format asks.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// A float as the format spells it (`+Inf`, not Rust's `inf`).
fn float(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.1, 1.0];

    fn gathered() -> Gathered {
        let mut attempts = Histogram::new(BOUNDS);
        attempts.observe(0.5);
        Gathered {
            tasks: vec![("queued".into(), 2), ("done".into(), 7)],
            attempts,
            mails: vec![("sent".into(), 3), ("failed".into(), 1)],
            messages: 11,
            bids: 4,
            chat_topics: 2,
            auction_topics: 1,
            chat_rooms: 3,
            auction_rooms: 1,
            scraper_restarts: 5,
        }
    }

    #[test]
    fn an_observation_on_a_bound_falls_in_that_bucket() {
        let mut h = Histogram::new(BOUNDS);
        for value in [0.0, 0.1, 0.2, 1.0, 7.0] {
            h.observe(value);
        }
        assert_eq!(h.counts, vec![2, 2, 1]);
        assert_eq!(h.count(), 5);
        assert!((h.sum() - 8.3).abs() < 1e-9);
    }

    #[test]
    fn counts_added_past_the_last_bound_go_to_the_last_bucket() {
        let mut h = Histogram::new(BOUNDS);
        h.add(1, 3, 1.5);
        h.add(9, 2, 40.0);
        assert_eq!(h.counts, vec![0, 3, 2]);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 41.5);
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets_then_sum_and_count() {
        let mut h = Histogram::new(BOUNDS);
        for value in [0.0625, 0.5, 0.75, 3.0] {
            h.observe(value);
        }
        let mut text = Text::default();
        text.histogram("t_seconds", "Test.", &[(&[("route", "/a")], &h)]);
        assert_eq!(
            text.out,
            "# HELP t_seconds Test.\n\
             # TYPE t_seconds histogram\n\
             t_seconds_bucket{route=\"/a\",le=\"0.1\"} 1\n\
             t_seconds_bucket{route=\"/a\",le=\"1\"} 3\n\
             t_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n\
             t_seconds_sum{route=\"/a\"} 4.3125\n\
             t_seconds_count{route=\"/a\"} 4\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut text = Text::default();
        text.gauge(
            "g",
            "Back\\slash\nand newline.",
            &[(&[("l", "a\"b\\c\nd")], 1)],
        );
        assert_eq!(
            text.out,
            "# HELP g Back\\\\slash\\nand newline.\n\
             # TYPE g gauge\n\
             g{l=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn open_connections_count_until_their_guards_drop() {
        let metrics = Arc::new(Metrics::default());
        let client = metrics.open(Connection::Client);
        let worker = metrics.open(Connection::Worker);
        let second = metrics.open(Connection::Client);
        drop(client);
        let text = metrics.render(&gathered());
        assert!(text.contains("bazaar_open_connections{kind=\"client\"} 1\n"));
        assert!(text.contains("bazaar_open_connections{kind=\"worker\"} 1\n"));
        drop((worker, second));
        let text = metrics.render(&gathered());
        assert!(text.contains("bazaar_open_connections{kind=\"client\"} 0\n"));
        assert!(text.contains("bazaar_open_connections{kind=\"worker\"} 0\n"));
    }

    #[test]
    fn websocket_closes_count_by_code_and_every_code_the_server_sends_starts_at_zero() {
        let metrics = Arc::new(Metrics::default());
        let open = metrics.open(Connection::Client);
        open.closed(1008);
        open.closed(1008);
        open.closed(1001);
        open.refused(Refusal::AddressFull);
        let text = metrics.render(&gathered());
        assert!(text.contains("bazaar_ws_closes_total{code=\"1008\"} 2\n"));
        assert!(text.contains("bazaar_ws_closes_total{code=\"1001\"} 1\n"));
        assert!(text.contains("bazaar_ws_closes_total{code=\"1009\"} 0\n"));
        assert!(text.contains("bazaar_ws_refusals_total{reason=\"address_full\"} 1\n"));
        assert!(text.contains("bazaar_ws_refusals_total{reason=\"node_full\"} 0\n"));
    }

    #[test]
    fn http_series_are_bounded_by_route_method_and_status_class() {
        let metrics = Metrics::default();
        let took = Duration::from_millis(30);
        let odd = Method::from_bytes(b"BREW").unwrap();
        metrics.observe_http(&Method::GET, Some("/games/{id}"), StatusCode::OK, took);
        metrics.observe_http(&Method::GET, Some("/games/{id}"), StatusCode::CREATED, took);
        metrics.observe_http(&odd, None, StatusCode::NOT_FOUND, took);
        let text = metrics.render(&gathered());
        let series = "{method=\"GET\",route=\"/games/{id}\",status=\"2xx\"";
        assert!(text.contains(&format!(
            "bazaar_http_request_duration_seconds_count{series}}} 2\n"
        )));
        assert!(text.contains(&format!(
            "bazaar_http_request_duration_seconds_bucket{series},le=\"0.025\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "bazaar_http_request_duration_seconds_bucket{series},le=\"0.05\"}} 2\n"
        )));
        assert!(text.contains(
            "bazaar_http_request_duration_seconds_count{method=\"other\",route=\"unmatched\",status=\"4xx\"} 1\n"
        ));
    }

    #[test]
    fn a_scrape_has_each_family_once_and_every_sample_under_its_family() {
        let metrics = Metrics::default();
        metrics.leases_expired(3);
        metrics.observe_http(&Method::GET, Some("/"), StatusCode::OK, Duration::ZERO);
        let text = metrics.render(&gathered());
        let mut families: Vec<&str> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!families.contains(&name), "{name} twice");
                families.push(name);
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            let family = families.last().unwrap();
            assert!(name.starts_with(family), "{name} outside {family}");
        }
        assert_eq!(families.len(), 16);
        // Retention's families are there before any pass has run, every
        // table at zero.
        assert!(families.contains(&"bazaar_retention_deleted_total"));
        assert!(families.contains(&"bazaar_retention_pass_duration_seconds"));
        assert!(text.contains("bazaar_retention_deleted_total{table=\"messages\"} 0\n"));
        assert!(text.contains("bazaar_tasks{state=\"done\"} 7\n"));
        assert!(text.contains("bazaar_mails{status=\"failed\"} 1\n"));
        assert!(text.contains("bazaar_leases_expired_total 3\n"));
        assert!(text.contains("bazaar_task_attempt_duration_seconds_count 1\n"));
        assert!(text.contains("bazaar_scraper_restarts 5\n"));
        assert!(text.contains("bazaar_topics{kind=\"chat\"} 2\n"));
        assert!(text.contains("bazaar_rooms{kind=\"chat\"} 3\n"));
    }
}
