//! Typed settings: built-in defaults, then `bazaar.toml`, then `BAZAAR_*`
//! environment variables (`__` nests: `BAZAAR_DATABASE__URL`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::trusted_proxies::TrustedProxies;

/// Every setting Bazaar reads. Defaults run on a fresh machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub bus: BusSettings,
    pub workers: WorkerSettings,
    pub crawl: CrawlSettings,
    pub ws: WsSettings,
    pub chat: ChatSettings,
    pub accounts: AccountSettings,
    pub mail: MailSettings,
    pub api: ApiSettings,
    pub log: LogSettings,
    pub demo: DemoSettings,
    pub retention: RetentionSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// The URL people and workers reach this server at; pages, links and the
    /// WebSocket `Origin` check derive from it.
    pub public_url: String,
    /// More origins (`scheme://host[:port]`) whose pages may open `/ws`.
    pub origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client; empty trusts
    /// nobody, since anyone can send the header.
    pub trusted_proxies: TrustedProxies,
    /// WebSockets of either kind this node holds at once; more are
    /// answered 503.
    pub max_connections: usize,
    /// Client WebSockets one client address (an IPv6 client: its /64)
    /// holds at once; more are answered 429.
    pub max_connections_per_address: usize,
}

/// Client WebSockets (`/ws`): liveness, buffers and limits per connection;
/// the queue's bound and the time for a message hold for `/ws/worker` too.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WsSettings {
    /// How often the server pings a client.
    #[serde(with = "humantime_serde")]
    pub ping_every: Duration,
    /// A client silent for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Bytes queued for a socket (either kind) before it counts as a slow
    /// consumer.
    pub max_queued_bytes: usize,
    /// How long a message may take to arrive, from its first byte to its
    /// last (either kind of socket).
    #[serde(with = "humantime_serde")]
    pub message_timeout: Duration,
    /// Frames above this many bytes get an `error` frame.
    pub soft_frame_limit: usize,
    /// Frames above this many bytes close the connection with 1009.
    pub hard_frame_limit: usize,
    /// Requests per second a connection may average.
    pub rate: f64,
    /// Requests a connection may send at once above its rate.
    pub burst: u32,
    /// A connection over its rate for this long is closed with 1008.
    #[serde(with = "humantime_serde")]
    pub rate_grace: Duration,
}

/// Chat rooms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatSettings {
    /// Messages a join returns.
    pub history: usize,
    /// The most messages a join with `since` returns.
    pub resume_cap: usize,
    /// The longest message, in characters.
    pub max_text: usize,
    /// How long a typing indicator lasts without another `typing`.
    #[serde(with = "humantime_serde")]
    pub typing_ttl: Duration,
    /// The most topics one client socket may have joined at once.
    pub max_topics_per_socket: usize,
    /// How long `/rooms` lists a room nobody is in after it was created or
    /// last spoken in.
    #[serde(with = "humantime_serde")]
    pub rooms_listed_for: Duration,
    /// STUN servers (`stun:host[:port]` or `stuns:host[:port]`) the room
    /// page's direct conversations ask for a route through NAT. Empty uses
    /// host candidates only, which reach peers on the same network.
    #[serde(deserialize_with = "stun_urls")]
    pub stun_urls: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// `sqlite://...` or `postgres://...`; unset means SQLite in the data dir.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BusSettings {
    /// Redis for cluster mode; unset means the in-process bus.
    pub redis_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// The bearer token workers present; generated into the data dir if unset.
    pub token: Option<String>,
    /// How many `bazaar worker` child processes `serve` starts itself.
    pub local: u32,
    /// Scraper slots per local worker.
    pub slots: u32,
    /// How often workers send heartbeats.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// How long a lease lives without a heartbeat.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CrawlSettings {
    /// Start a crawl this long after the last one started; `0s` turns the
    /// schedule off.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// A visitor opening the games page starts a crawl when the last finished
    /// one is older than this.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// After this many attempts a task is `dead`.
    pub max_attempts: u32,
    /// The first retry waits this long; each further one doubles it.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Site configuration; unset means the three built-in demo stores.
    pub sites_file: Option<PathBuf>,
}

/// Outgoing mail (docs/architecture.md §4): the transport and the Mailer's
/// pace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MailSettings {
    /// Where mail goes: `file` (`.eml` files in `data_dir/mail/`), `smtp`,
    /// or `stub` (kept in memory; for tests).
    pub transport: MailTransport,
    /// The `From` of every mail, `Name <address>` or a bare address.
    pub from: String,
    /// The SMTP server, for `transport = "smtp"`.
    pub smtp: SmtpSettings,
    /// Mails sent per minute at most, across bursts.
    pub per_minute: u32,
    /// After this many attempts a mail is `failed`.
    pub max_attempts: u32,
    /// The first retry waits this long; each further one doubles it.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How often the Mailer looks for due mail.
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// How long a leased mail stays the Mailer's before another node (or
    /// this one, after a crash) may send it again.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How long a subscription's confirmation link stays valid.
    #[serde(with = "humantime_serde")]
    pub confirm_ttl: Duration,
    /// Subscribing again within this time sends no second confirmation.
    #[serde(with = "humantime_serde")]
    pub resend_after: Duration,
    /// How often finished crawls and price alerts are checked for mail to
    /// queue.
    #[serde(with = "humantime_serde")]
    pub notify_every: Duration,
    /// Subscriptions asked for per client address and hour, at most.
    pub subscribes_per_hour: u32,
}

/// Which transport the Mailer sends through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    File,
    Smtp,
    Stub,
}

/// An SMTP relay; Gmail is `smtp.gmail.com`, port 587, `starttls`, your
/// address and an app password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `starttls`, `tls` (implicit TLS, usually port 465) or `none`
    /// (plain text; loopback hosts only).
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// How long one SMTP command may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiSettings {
    /// The bearer token for write calls to `/api`; generated if unset.
    pub token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DemoSettings {
    /// Picks the demo stores' prices; change it to make prices move.
    pub seed: u64,
}

/// What the pruner keeps (README, "Retention").
/// Everything not named here, and everything within these limits, is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// How often a pass runs, on the node holding the scheduler role;
    /// `0s` turns the background passes off (`bazaar admin prune` still
    /// runs one).
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// Rows removed per statement, each batch a short transaction of its
    /// own.
    pub batch: u64,
    /// Messages kept per chat room: its last this many.
    pub chat_messages: u64,
    /// If set, messages older than this many days go too, however few a
    /// room has.
    pub chat_days: Option<u32>,
    /// Every price point is kept for this many days; older ones thin out
    /// to one per offer and day, the day's lowest.
    pub prices_full_days: u32,
    /// Tasks and attempts of this many of the latest crawls are kept; of
    /// older crawls, only the dead tasks (and the crawl's own row).
    pub crawls_kept: u32,
    /// Sent and cancelled mail is deleted this many days after it was
    /// sent or queued; failed mail is kept.
    pub outbox_days: u32,
    /// Audit rows are deleted this many days after the action.
    pub audit_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            every: Duration::from_secs(3600),
            batch: 500,
            // About 17 MB of SQLite per busy room (750,000 messages take
            // 128 MB); a quiet room's history stays whole.
            chat_messages: 100_000,
            chat_days: None,
            prices_full_days: 90,
            crawls_kept: 20,
            outbox_days: 30,
            audit_days: 365,
        }
    }
}

/// The largest `retention.batch`: a delete of more rows holds SQLite's
/// write lock long enough for chat to feel it.
pub const RETENTION_BATCH_MAX: u64 = 10_000;

impl RetentionSettings {
    /// Refuses settings that would keep nothing, or make a pass hold the
    /// write lock for long; the message names the key and what it takes.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=RETENTION_BATCH_MAX).contains(&self.batch) {
            return Err(format!(
                "retention.batch must be from 1 to {RETENTION_BATCH_MAX} rows (it is {})",
                self.batch
            ));
        }
        if !self.every.is_zero() && self.every < Duration::from_secs(1) {
            return Err(format!(
                "retention.every must be at least 1s, or 0s to turn the passes off (it is {:?})",
                self.every
            ));
        }
        if self.chat_messages == 0 {
            return Err("retention.chat_messages must be at least 1 (it is 0): \
                 every room keeps its last messages"
                .to_owned());
        }
        let days = [
            ("retention.chat_days", self.chat_days.unwrap_or(1)),
            ("retention.prices_full_days", self.prices_full_days),
            ("retention.crawls_kept", self.crawls_kept),
            ("retention.outbox_days", self.outbox_days),
            ("retention.audit_days", self.audit_days),
        ];
        for (key, value) in days {
            if value == 0 {
                return Err(format!("{key} must be at least 1 (it is 0)"));
            }
        }
        Ok(())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("./data"),
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            bus: BusSettings::default(),
            workers: WorkerSettings::default(),
            crawl: CrawlSettings::default(),
            ws: WsSettings::default(),
            chat: ChatSettings::default(),
            accounts: AccountSettings::default(),
            mail: MailSettings::default(),
            api: ApiSettings::default(),
            log: LogSettings::default(),
            demo: DemoSettings::default(),
            retention: RetentionSettings::default(),
        }
    }
}

/// Accounts: the session cookie and login throttling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountSettings {
    /// The key session ids are derived with; generated into the data dir
    /// if unset. Changing it logs everyone out.
    pub session_key: Option<String>,
    /// How long a login lasts.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// Failed logins allowed per login name, and per client address, in
    /// `login_window`.
    pub login_attempts_per_name: u32,
    pub login_attempts_per_address: u32,
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// Accounts that may be registered per client address in
    /// `registration_window`, over every node of a cluster.
    pub registrations_per_address: u32,
    #[serde(with = "humantime_serde")]
    pub registration_window: Duration,
    /// Password hashes (argon2id: CPU and 19 MiB each) computed at once;
    /// a few times as many wait their turn, and beyond them a login or a
    /// registration is answered 503.
    pub password_hashes: usize,
    /// Admin actions allowed per admin (or the API token) and minute.
    pub admin_actions_per_minute: u32,
}

impl Default for AccountSettings {
    fn default() -> Self {
        AccountSettings {
            session_key: None,
            session_lifetime: Duration::from_secs(30 * 24 * 3600),
            login_attempts_per_name: 10,
            login_attempts_per_address: 50,
            login_window: Duration::from_secs(15 * 60),
            registrations_per_address: 10,
            registration_window: Duration::from_secs(3600),
            // One per CPU: a hash is CPU-bound, so more at once only
            // adds memory.
            password_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            admin_actions_per_minute: 60,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: "127.0.0.1:8080".to_owned(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            origins: Vec::new(),
            trusted_proxies: TrustedProxies::default(),
            // About 110 MiB of sockets at 4.5 KiB each (README, bench idle).
            max_connections: 25_000,
            // Generous for a household, a LAN party or an office behind one
            // NAT; one host alone cannot fill the node.
            max_connections_per_address: 128,
        }
    }
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            ping_every: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_queued_bytes: 1 << 20,
            message_timeout: Duration::from_secs(10),
            soft_frame_limit: 64 << 10,
            hard_frame_limit: 1 << 20,
            rate: 20.0,
            burst: 40,
            rate_grace: Duration::from_secs(5),
        }
    }
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            history: 50,
            resume_cap: 1000,
            max_text: 2000,
            typing_ttl: Duration::from_secs(5),
            max_topics_per_socket: 32,
            rooms_listed_for: Duration::from_secs(7 * 24 * 3600),
            stun_urls: Vec::new(),
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            token: None,
            local: 2,
            slots: 4,
            heartbeat: Duration::from_secs(5),
            lease: Duration::from_secs(30),
        }
    }
}

impl Default for CrawlSettings {
    fn default() -> Self {
        CrawlSettings {
            every: Duration::from_secs(6 * 3600),
            stale_after: Duration::from_secs(3600),
            max_attempts: 5,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            sites_file: None,
        }
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            transport: MailTransport::File,
            from: "Bazaar <bazaar@localhost>".to_owned(),
            smtp: SmtpSettings::default(),
            per_minute: 600,
            max_attempts: 10,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            tick: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            confirm_ttl: Duration::from_secs(48 * 3600),
            resend_after: Duration::from_secs(10 * 60),
            notify_every: Duration::from_secs(2),
            subscribes_per_hour: 20,
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: "localhost".to_owned(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            filter: "info,sqlx=warn,sea_orm=warn".to_owned(),
        }
    }
}

impl Default for DemoSettings {
    fn default() -> Self {
        DemoSettings { seed: 1 }
    }
}

impl Settings {
    /// Loads the layers in order: defaults, the TOML file (if it exists), the
    /// environment.
    pub fn load(file: &Path) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if file.exists() {
            figment = figment.merge(Toml::file(file));
        }
        let settings: Settings = figment
            .merge(Env::prefixed("BAZAAR_").split("__"))
            .extract()
            .with_context(|| format!("invalid configuration (file {})", file.display()))?;
        settings.retention.check().map_err(|why| {
            anyhow::anyhow!("invalid configuration (file {}): {why}", file.display())
        })?;
        Ok(settings)
    }

    /// The database URL, defaulting to SQLite in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => sqlite_url(&self.data_dir),
        }
    }

    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.server.public_url.trim_end_matches('/')
    }
}

/// `chat.stun_urls`: a list of strings (TOML, or `["stun:a", "stun:b"]` in
/// the environment), or one comma-separated string
/// (`BAZAAR_CHAT__STUN_URLS=stun:a,stun:b`), as `server.trusted_proxies`
/// takes them. Every entry is checked here, at start: a browser refuses
/// the whole peer connection over one malformed URL, so a typo would
/// otherwise break every direct conversation, and only in the pages.
fn stun_urls<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    use serde::de::{self, SeqAccess, Visitor};

    struct Urls;

    impl<'de> Visitor<'de> for Urls {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of stun: or stuns: URLs, or one comma-separated string")
        }

        fn visit_str<E: de::Error>(self, list: &str) -> Result<Vec<String>, E> {
            let entries = list.split(',').map(str::trim).filter(|e| !e.is_empty());
            entries
                .map(checked_stun_url)
                .collect::<Result<_, _>>()
                .map_err(E::custom)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut urls = Vec::new();
            while let Some(entry) = seq.next_element::<String>()? {
                urls.push(checked_stun_url(entry.trim()).map_err(de::Error::custom)?);
            }
            Ok(urls)
        }
    }

    deserializer.deserialize_any(Urls)
}

/// A STUN server URL as RFC 7064 writes it: `stun:` or `stuns:`, a host (a
/// name, an IPv4 address or an IPv6 one in brackets), and an optional port.
/// The error names the entry and what is wrong with it.
fn checked_stun_url(url: &str) -> Result<String, String> {
    let wrong = |why: &str| {
        format!("{url:?} is not a STUN server URL ({why}; e.g. stun:stun.example.org:3478)")
    };
    let rest = url
        .strip_prefix("stun:")
        .or_else(|| url.strip_prefix("stuns:"))
        .ok_or_else(|| wrong("it must start with stun: or stuns:"))?;
    if rest.starts_with("//") {
        return Err(wrong("a STUN URL has no //"));
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| wrong("an IPv6 address needs its closing ]"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(wrong("the address in brackets is not an IPv6 address"));
            }
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(wrong("only a :port may follow the host")),
                },
            }
        }
        None => match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    if host.is_empty() {
        return Err(wrong("it names no host"));
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if !rest.starts_with('[') && !host.chars().all(name_char) {
        return Err(wrong("a host is letters, digits, - and ."));
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(1..)) {
            return Err(wrong("the port must be a number from 1 to 65535"));
        }
    }
    Ok(url.to_owned())
}

/// The SQLite database a server keeps in `data_dir` when no
/// `database.url` is given.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("bazaar.db").display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // figment's test jail returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_the_file_which_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bazaar.toml",
                "data_dir = \"/srv/bazaar\"\n[workers]\nlocal = 5\nlease = \"10s\"\n",
            )?;
            jail.set_env("BAZAAR_WORKERS__LOCAL", "7");
            jail.set_env("BAZAAR_DATABASE__URL", "postgres://db/bazaar");
            let settings = Settings::load(Path::new("bazaar.toml")).map_err(|e| e.to_string())?;
            assert_eq!(settings.data_dir, PathBuf::from("/srv/bazaar"));
            assert_eq!(settings.workers.local, 7);
            assert_eq!(settings.workers.lease, Duration::from_secs(10));
            assert_eq!(settings.database_url(), "postgres://db/bazaar");
            assert_eq!(settings.server.bind, "127.0.0.1:8080");
            Ok(())
        });
    }

    #[test]
    fn the_default_database_is_sqlite_in_the_data_dir() {
        let settings = Settings::default();
        assert_eq!(
            settings.database_url(),
            "sqlite://./data/bazaar.db?mode=rwc"
        );
    }

    #[test]
    fn stun_urls_with_a_host_and_an_optional_port_are_taken() {
        for url in [
            "stun:stun.example.org:3478",
            "stun:stun.example.org",
            "stuns:192.0.2.7:5349",
            "stun:[2001:db8::1]:3478",
            "stun:[::1]",
        ] {
            assert_eq!(checked_stun_url(url).as_deref(), Ok(url));
        }
    }

    #[test]
    fn stun_urls_without_the_scheme_or_a_host_are_refused_by_name() {
        for (url, why) in [
            ("stun.example.org:3478", "must start with stun: or stuns:"),
            ("turn:turn.example.org", "must start with stun: or stuns:"),
            ("stun:", "names no host"),
            ("stun::3478", "names no host"),
            ("stun://stun.example.org", "has no //"),
            ("stun:stun.example.org:0", "port"),
            ("stun:stun.example.org:http", "port"),
            ("stun:stun example.org", "letters, digits"),
            ("stun:stun.example.org/path", "letters, digits"),
            ("stun:[2001:db8::1", "closing ]"),
            ("stun:[nonsense]", "not an IPv6 address"),
            ("stun:[::1]3478", "only a :port"),
        ] {
            let error = checked_stun_url(url).expect_err(url);
            assert!(error.contains(&format!("{url:?}")), "{error}");
            assert!(error.contains(why), "{url}: {error}");
        }
    }

    #[test]
    // figment's test jail returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    fn stun_urls_come_as_a_list_or_a_comma_separated_string() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bazaar.toml",
                "[chat]\nstun_urls = [\"stun:a.example.org\", \"stuns:b.example.org:5349\"]\n",
            )?;
            let settings = Settings::load(Path::new("bazaar.toml")).map_err(|e| e.to_string())?;
            assert_eq!(
                settings.chat.stun_urls,
                ["stun:a.example.org", "stuns:b.example.org:5349"]
            );
            jail.set_env("BAZAAR_CHAT__STUN_URLS", "stun:c.example.org:3478, stun:d");
            let settings = Settings::load(Path::new("bazaar.toml")).map_err(|e| e.to_string())?;
            assert_eq!(
                settings.chat.stun_urls,
                ["stun:c.example.org:3478", "stun:d"]
            );
            jail.set_env("BAZAAR_CHAT__STUN_URLS", "[\"stun:e.example.org\"]");
            let settings = Settings::load(Path::new("bazaar.toml")).map_err(|e| e.to_string())?;
            assert_eq!(settings.chat.stun_urls, ["stun:e.example.org"]);
            Ok(())
        });
        assert!(Settings::default().chat.stun_urls.is_empty());
    }

    #[test]
    // figment's test jail returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    fn a_bad_stun_url_stops_the_settings_from_loading() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "BAZAAR_CHAT__STUN_URLS",
                "stun:good.example.org,http://bad.example.org",
            );
            let error = Settings::load(Path::new("bazaar.toml")).expect_err("a bad STUN URL");
            let error = format!("{error:#}");
            assert!(
                error.contains("\"http://bad.example.org\" is not a STUN server URL"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    // figment's test jail returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    fn retention_settings_that_would_keep_nothing_stop_the_start() {
        figment::Jail::expect_with(|jail| {
            for (key, value, says) in [
                (
                    "BAZAAR_RETENTION__BATCH",
                    "0",
                    "retention.batch must be from 1 to 10000 rows (it is 0)",
                ),
                ("BAZAAR_RETENTION__BATCH", "10001", "(it is 10001)"),
                (
                    "BAZAAR_RETENTION__EVERY",
                    "10ms",
                    "retention.every must be at least 1s",
                ),
                (
                    "BAZAAR_RETENTION__CHAT_MESSAGES",
                    "0",
                    "retention.chat_messages must be at least 1",
                ),
                (
                    "BAZAAR_RETENTION__CHAT_DAYS",
                    "0",
                    "retention.chat_days must be at least 1",
                ),
                (
                    "BAZAAR_RETENTION__PRICES_FULL_DAYS",
                    "0",
                    "retention.prices_full_days must be",
                ),
                (
                    "BAZAAR_RETENTION__CRAWLS_KEPT",
                    "0",
                    "retention.crawls_kept must be",
                ),
                (
                    "BAZAAR_RETENTION__OUTBOX_DAYS",
                    "0",
                    "retention.outbox_days must be",
                ),
                (
                    "BAZAAR_RETENTION__AUDIT_DAYS",
                    "0",
                    "retention.audit_days must be",
                ),
            ] {
                jail.clear_env();
                jail.set_env(key, value);
                let error = Settings::load(Path::new("bazaar.toml")).expect_err(key);
                let error = format!("{error:#}");
                assert!(error.contains(says), "{key}={value}: {error}");
            }
            jail.clear_env();
            jail.create_file(
                "bazaar.toml",
                "[retention]\nevery = \"0s\"\nchat_days = 30\nbatch = 10000\n",
            )?;
            let settings = Settings::load(Path::new("bazaar.toml")).map_err(|e| e.to_string())?;
            assert_eq!(settings.retention.every, Duration::ZERO);
            assert_eq!(settings.retention.chat_days, Some(30));
            assert_eq!(settings.retention.batch, 10_000);
            assert_eq!(settings.retention.chat_messages, 100_000);
            Ok(())
        });
        assert!(Settings::default().retention.check().is_ok());
        assert_eq!(Settings::default().retention.chat_days, None);
    }
}
