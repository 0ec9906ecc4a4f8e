//! Prometheus metrics, through `prometheus-client`: what only this node
//! sees is kept in its counters, gauges and histograms; figures the
//! database holds are read at scrape time by `web::metrics`, so that every
//! node of a cluster reports the same truth, and encoded beside them. A
//! scrape of `/metrics` reads the text format (exposition format 0.0.4).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram as Observed;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry};

use crate::ws::Refusal;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

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

/// Observations counted into fixed buckets, as a Prometheus histogram is:
/// the form of bucket counts the database computes at scrape time.
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

impl Connection {
    fn label(self) -> [(&'static str, &'static str); 1] {
        match self {
            Connection::Client => [("kind", "client")],
            Connection::Worker => [("kind", "worker")],
        }
    }
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
        self.metrics
            .ws_closes
            .get_or_create(&[("code", code.to_string())])
            .inc();
    }

    /// This connection was refused at its upgrade, over a cap.
    pub fn refused(&self, refusal: Refusal) {
        let reason = match refusal {
            Refusal::NodeFull => "node_full",
            Refusal::AddressFull => "address_full",
        };
        self.metrics
            .ws_refusals
            .get_or_create(&[("reason", reason)])
            .inc();
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.open.get_or_create(&self.kind.label()).dec();
    }
}

type Label = [(&'static str, &'static str); 1];
type HttpLabels = [(&'static str, String); 3];

fn http_histogram() -> Observed {
    Observed::new(HTTP_BUCKETS.iter().copied())
}

/// What only this node sees: its sockets, its requests, the leases its
/// sweep found expired, its retention passes. One per process, shared by
/// every HTTP worker.
#[derive(Debug)]
pub struct Metrics {
    open: Family<Label, Gauge>,
    /// WebSocket closes the server began, by close code.
    ws_closes: Family<[(&'static str, String); 1], Counter>,
    /// WebSocket upgrades refused for a cap: the node's, an address's.
    ws_refusals: Family<Label, Counter>,
    leases_expired: Counter,
    /// By route pattern, never path, so the series are bounded by the
    /// routes there are.
    http: Family<HttpLabels, Observed, fn() -> Observed>,
    /// Rows this node's retention passes removed, by table.
    retention_deleted: Family<Label, Counter>,
    retention_passes: Observed,
}

/// The close codes the server sends (docs/protocol.md §4), listed at 0
/// before any such close, so that a rate over them starts from the start.
const CLOSE_CODES: [u16; 8] = [1000, 1001, 1002, 1007, 1008, 1009, 1013, 4401];

impl Default for Metrics {
    fn default() -> Metrics {
        let metrics = Metrics {
            open: Family::default(),
            ws_closes: Family::default(),
            ws_refusals: Family::default(),
            leases_expired: Counter::default(),
            http: Family::new_with_constructor(http_histogram),
            retention_deleted: Family::default(),
            retention_passes: Observed::new(RETENTION_BUCKETS.iter().copied()),
        };
        // Every series a dashboard plots is there from the start, at 0.
        for kind in [Connection::Client, Connection::Worker] {
            drop(metrics.open.get_or_create(&kind.label()));
        }
        for code in CLOSE_CODES {
            drop(
                metrics
                    .ws_closes
                    .get_or_create(&[("code", code.to_string())]),
            );
        }
        for reason in ["node_full", "address_full"] {
            drop(metrics.ws_refusals.get_or_create(&[("reason", reason)]));
        }
        for table in crate::retention::TABLES {
            drop(metrics.retention_deleted.get_or_create(&[("table", table)]));
        }
        metrics
    }
}

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
        self.open.get_or_create(&kind.label()).inc();
        Open {
            metrics: self.clone(),
            kind,
        }
    }

    /// Connections of `kind` open on this node now.
    pub fn open_now(&self, kind: Connection) -> u64 {
        let open = self.open.get_or_create(&kind.label()).get();
        u64::try_from(open).unwrap_or(0)
    }

    /// Counts rows a retention pass removed, as each batch commits.
    pub fn retention_removed(&self, table: &'static str, rows: u64) {
        self.retention_deleted
            .get_or_create(&[("table", table)])
            .inc_by(rows);
    }

    /// Counts how long a retention pass took.
    pub fn retention_pass_took(&self, took: Duration) {
        self.retention_passes.observe(took.as_secs_f64());
    }

    pub fn leases_expired(&self, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        self.leases_expired.inc_by(count);
    }

    /// Records one request; `route` is the pattern it matched, if any.
    pub fn observe_http(
        &self,
        method: &Method,
        route: Option<&str>,
        status: StatusCode,
        took: Duration,
    ) {
        let method = METHODS
            .into_iter()
            .find(|m| *m == method.as_str())
            .unwrap_or("other");
        let labels = [
            ("method", method.to_owned()),
            ("route", route.unwrap_or("unmatched").to_owned()),
            ("status", status_class(status).to_owned()),
        ];
        self.http.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// The whole scrape in the text format: this node's metrics and what
    /// was gathered for this scrape, in one registry made for it.
    pub fn render(&self, gathered: &Gathered) -> String {
        let mut registry = Registry::default();
        let r = &mut registry;
        add(
            r,
            "bazaar_open_connections",
            "WebSocket connections open on this node, by kind (client: /ws, worker: /ws/worker).",
            self.open.clone(),
        );
        add(
            r,
            "bazaar_ws_closes",
            "WebSocket closes this node began (a slow consumer, a flood, a bad frame, silence, shutdown...), by close code.",
            self.ws_closes.clone(),
        );
        add(
            r,
            "bazaar_ws_refusals",
            "WebSocket upgrades this node refused for a cap: server.max_connections (node_full) or server.max_connections_per_address (address_full).",
            self.ws_refusals.clone(),
        );
        add(
            r,
            "bazaar_topics",
            "Topics with members on this node, by kind.",
            Labelled::gauges(
                "kind",
                [
                    ("chat", gathered.chat_topics),
                    ("auction", gathered.auction_topics),
                ],
            ),
        );
        add(
            r,
            "bazaar_rooms",
            "Rooms running on this node, by kind, with members or not: an empty room closes once it has stored what was said.",
            Labelled::gauges(
                "kind",
                [("chat", gathered.chat_rooms), ("auction", gathered.auction_rooms)],
            ),
        );
        add(
            r,
            "bazaar_messages",
            "Chat messages stored (database).",
            ConstCounter::new(gathered.messages),
        );
        add(
            r,
            "bazaar_bids",
            "Bids recorded on lots, typed and proxy (database).",
            ConstCounter::new(gathered.bids),
        );
        add(
            r,
            "bazaar_tasks",
            "Crawl tasks by state (database).",
            Labelled::gauges("state", gathered.tasks.clone()),
        );
        add(
            r,
            "bazaar_task_attempt_duration_seconds",
            "How long finished task attempts took, from lease to outcome (database).",
            gathered.attempts.clone(),
        );
        add(
            r,
            "bazaar_leases_expired",
            "Task leases this node's sweep found expired and gave back to the queue.",
            self.leases_expired.clone(),
        );
        add(
            r,
            "bazaar_scraper_restarts",
            "Scraper restarts reported by the workers connected to this node, summed.",
            ConstGauge::new(i64::try_from(gathered.scraper_restarts).unwrap_or(i64::MAX)),
        );
        add(
            r,
            "bazaar_actor_restarts",
            "Restarts of this node's supervised actors, after a panic or a stop, by actor.",
            Labelled::counters(
                "actor",
                crate::supervision::restarts().map(|(actor, n)| (actor.as_str(), n)),
            ),
        );
        add(
            r,
            "bazaar_retention_deleted",
            "Rows this node's retention passes removed, by table (confirmation_tokens: links cleared from subscriptions that stay).",
            self.retention_deleted.clone(),
        );
        add(
            r,
            "bazaar_retention_pass_duration_seconds",
            "How long this node's retention passes took, batches and pauses included.",
            self.retention_passes.clone(),
        );
        add(
            r,
            "bazaar_mails",
            "Mails by outbox status (database).",
            Labelled::gauges("status", gathered.mails.clone()),
        );
        add(
            r,
            "bazaar_http_request_duration_seconds",
            "Time to the response head on this node, by method, route pattern and status class.",
            self.http.clone(),
        );
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
        text
    }
}

/// Registers `metric` for one scrape.
fn add(registry: &mut Registry, name: &str, help: &str, metric: impl Metric) {
    // The registry ends every help with a full stop.
    registry.register(name, help.trim_end_matches('.'), metric);
}

/// Values read at scrape time, one series per label value.
#[derive(Debug)]
struct Labelled {
    label: &'static str,
    kind: MetricType,
    values: Vec<(String, u64)>,
}

impl Labelled {
    fn gauges<V: Into<String>>(
        label: &'static str,
        values: impl IntoIterator<Item = (V, u64)>,
    ) -> Labelled {
        Labelled::new(label, MetricType::Gauge, values)
    }

    fn counters<V: Into<String>>(
        label: &'static str,
        values: impl IntoIterator<Item = (V, u64)>,
    ) -> Labelled {
        Labelled::new(label, MetricType::Counter, values)
    }

    fn new<V: Into<String>>(
        label: &'static str,
        kind: MetricType,
        values: impl IntoIterator<Item = (V, u64)>,
    ) -> Labelled {
        Labelled {
            label,
            kind,
            values: values.into_iter().map(|(v, n)| (v.into(), n)).collect(),
        }
    }
}

impl EncodeMetric for Labelled {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (value, n) in &self.values {
            let labels = [(self.label, value.as_str())];
            let mut series = encoder.encode_family(&labels)?;
            match self.kind {
                MetricType::Counter => series.encode_counter::<NoLabelSet, _, u64>(n, None)?,
                _ => series.encode_gauge(n)?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Per bucket, not cumulative: the encoder adds them up.
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect();
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
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

    /// `metric` alone in a scrape, as `render` registers it.
    fn scrape_of(help: &str, metric: impl Metric) -> String {
        let mut registry = Registry::default();
        add(&mut registry, "t_seconds", help, metric);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets_then_sum_and_count() {
        let mut h = Histogram::new(BOUNDS);
        for value in [0.0625, 0.5, 0.75, 3.0] {
            h.observe(value);
        }
        assert_eq!(
            scrape_of("Test.", h),
            "# HELP t_seconds Test.\n\
             # TYPE t_seconds histogram\n\
             t_seconds_bucket{le=\"0.1\"} 1\n\
             t_seconds_bucket{le=\"1\"} 3\n\
             t_seconds_bucket{le=\"+Inf\"} 4\n\
             t_seconds_sum 4.3125\n\
             t_seconds_count 4\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let gauges = Labelled::gauges("l", [("a\"b\\c\nd", 1)]);
        assert_eq!(
            scrape_of("Back\\slash\nand newline.", gauges),
            "# HELP t_seconds Back\\\\slash\\nand newline.\n\
             # TYPE t_seconds gauge\n\
             t_seconds{l=\"a\\\"b\\\\c\\nd\"} 1\n"
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
