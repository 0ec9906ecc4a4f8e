//! The mail benchmark: one finished crawl with price drops, N confirmed
//! digest subscribers, and the Mailer sending every digest to a local SMTP
//! sink. It reports how long the Notifier takes to queue the mails and how
//! many mails per second the Mailer delivers.
//!
//! Everything runs in this process on a fresh SQLite database: the Notifier's
//! `queue_digests` and the Mailer actor are Bazaar's own, and the sink is a
//! minimal SMTP server that accepts and counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use entity::changes::ChangeKind;
use entity::crawls::CrawlStatus;
use entity::subscriptions::SubscriptionStatus;
use entity::{changes, crawls, games, outbox, subscriptions};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use bazaar::clock;
use bazaar::config::{MailSettings, MailTransport, SmtpSecurity, SmtpSettings};
use bazaar::lifecycle::Lifecycle;
use bazaar::mail::compose::Links;
use bazaar::mail::notifier::queue_digests;
use bazaar::mail::{MailStatus, Transport};

#[derive(Debug, Clone, Args)]
pub struct MailBench {
    /// Confirmed digest subscribers, one mail each.
    #[arg(long, default_value_t = 1000)]
    subscribers: u32,
    /// Price drops the crawl found (the digest lists at most 50).
    #[arg(long, default_value_t = 40)]
    changes: u32,
    /// How often the Mailer looks for due mail (`mail.tick`), in milliseconds.
    #[arg(long, default_value_t = 20)]
    tick_ms: u64,
}

/// How long the Mailer may take to send everything before the run fails.
const PATIENCE: Duration = Duration::from_secs(120);
/// How often the run checks whether everything was sent.
const POLL: Duration = Duration::from_millis(5);
/// Rows per seeding INSERT, below SQLite's limit on bound parameters.
const INSERT_CHUNK: usize = 500;

pub async fn run(bench: MailBench) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("could not make a temp dir")?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let db = bazaar::db::connect(&url).await?;
    seed(&db, bench.changes, bench.subscribers, clock::now()).await?;
    let sink = Sink::start().context("could not start the SMTP sink")?;

    let links = Links::new("http://127.0.0.1:8080", b"bench");
    let started = Instant::now();
    let queued = queue_digests(&db, &links, clock::now()).await?;
    let queue_time = started.elapsed();
    if queued != u64::from(bench.subscribers) {
        bail!(
            "queued {queued} mails for {} subscribers",
            bench.subscribers
        );
    }

    let settings = mail_settings(sink.port, Duration::from_millis(bench.tick_ms));
    let transport = Transport::from_settings(&settings, dir.path())?;
    let sending = Instant::now();
    let lifecycle = Lifecycle::new();
    bazaar::mail::start_with(db.clone(), &settings, transport, &lifecycle)?;
    wait_until_sent(&db, &sink, queued).await?;
    let send_time = sending.elapsed();
    let total_time = started.elapsed();
    // Its next round may be mid-query: left running, it would be dropped
    // with the runtime.
    lifecycle.stop(Duration::from_secs(5)).await;

    // Counts far below 2^52 convert exactly.
    #[allow(clippy::cast_precision_loss)]
    let (send_rate, total_rate) = (
        queued as f64 / send_time.as_secs_f64(),
        queued as f64 / total_time.as_secs_f64(),
    );
    println!(
        "subscribers {}  changes {}  queued in {:.3} s  sent in {:.3} s  \
         {send_rate:.0} mails/s sent  {total_rate:.0} mails/s end to end",
        bench.subscribers,
        bench.changes,
        queue_time.as_secs_f64(),
        send_time.as_secs_f64(),
    );
    println!("\nsubscribers,changes,queue_s,send_s,sent_per_s,end_to_end_per_s");
    println!(
        "{},{},{:.3},{:.3},{send_rate:.1},{total_rate:.1}",
        bench.subscribers,
        bench.changes,
        queue_time.as_secs_f64(),
        send_time.as_secs_f64(),
    );
    Ok(())
}

/// Plain SMTP to the sink, with the throttle lifted so the figure is the
/// Mailer's own pace.
fn mail_settings(port: u16, tick: Duration) -> MailSettings {
    MailSettings {
        transport: MailTransport::Smtp,
        smtp: SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::None,
            ..SmtpSettings::default()
        },
        per_minute: 1_000_000,
        tick,
        ..MailSettings::default()
    }
}

/// `changes` games, each with a price drop in one finished crawl that has
/// had no digest yet, and `subscribers` confirmed digest subscriptions.
async fn seed(
    db: &DatabaseConnection,
    changes: u32,
    subscribers: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let games = (1..=changes).map(|i| games::ActiveModel {
        id: Set(i64::from(i)),
        title: Set(format!("Bench Game {i}")),
        norm_title: Set(format!("bench game {i}")),
        ext_key: Set(None),
        best_cents: Set(Some(999)),
        regular_cents: Set(Some(1999)),
        currency: Set(Some("EUR".into())),
        discount_pct: Set(50),
        low_cents: Set(Some(999)),
        store_count: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    });
    insert_chunked(db, games).await.context("seed games")?;
    let crawl = crawls::Entity::insert(crawls::ActiveModel {
        status: Set(CrawlStatus::Finished),
        trigger: Set("api".into()),
        started_at: Set(now),
        finished_at: Set(Some(now)),
        digested_at: Set(None),
        ..Default::default()
    })
    .exec(db)
    .await
    .context("seed the crawl")?
    .last_insert_id;
    let drops = (1..=changes).map(|i| changes::ActiveModel {
        crawl_id: Set(crawl),
        game_id: Set(i64::from(i)),
        store: Set(Some("demo-store".into())),
        kind: Set(ChangeKind::PriceDrop),
        // Different depths, so the digest has an order to sort.
        old_cents: Set(Some(1999 + i64::from(i))),
        new_cents: Set(Some(999)),
        at: Set(now),
        ..Default::default()
    });
    insert_chunked(db, drops).await.context("seed changes")?;
    let subscriptions = (1..=subscribers).map(|i| subscriptions::ActiveModel {
        email: Set(format!("user{i}@bench.test")),
        topic: Set("digest".into()),
        game_id: Set(None),
        target_cents: Set(None),
        status: Set(SubscriptionStatus::Confirmed),
        token_hash: Set(None),
        token_expires_at: Set(None),
        confirm_sent_at: Set(Some(now)),
        confirms_sent: Set(1),
        armed: Set(true),
        fired: Set(0),
        created_at: Set(now),
        confirmed_at: Set(Some(now)),
        unsubscribed_at: Set(None),
        ..Default::default()
    });
    insert_chunked(db, subscriptions)
        .await
        .context("seed subscriptions")
}

/// Inserts `rows` a few hundred per statement.
async fn insert_chunked<A>(
    db: &DatabaseConnection,
    rows: impl Iterator<Item = A>,
) -> Result<(), sea_orm::DbErr>
where
    A: ActiveModelTrait,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(INSERT_CHUNK).collect();
        A::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Waits until the sink has accepted `expected` mails and the outbox holds
/// every one of them as sent.
async fn wait_until_sent(
    db: &DatabaseConnection,
    sink: &Sink,
    expected: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    // The outbox is only read once the sink has everything, so the reads do
    // not compete with the Mailer's writes.
    while sink.accepted() < expected {
        if Instant::now() > deadline {
            bail!(
                "the sink accepted {} of {expected} mails within {} s",
                sink.accepted(),
                PATIENCE.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
    loop {
        let sent = outbox::Entity::find()
            .filter(outbox::Column::Status.eq(MailStatus::Sent))
            .count(db)
            .await?;
        if sent >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{sent} of {expected} mails marked sent within {} s",
                PATIENCE.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A minimal SMTP server on loopback that accepts every mail and counts it.
/// It runs in this process, on its own thread and runtime, because the
/// benchmark measures Bazaar: an external sink (aiosmtpd, say) would be
/// slower than the Mailer and its pace would be the figure.
struct Sink {
    port: u16,
    accepted: Arc<AtomicU64>,
}

impl Sink {
    fn start() -> anyhow::Result<Sink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let accepted = Arc::new(AtomicU64::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let counter = accepted.clone();
        // The thread ends with the process; the benchmark exits right after.
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(err) => return eprintln!("the SMTP sink could not listen: {err}"),
                };
                while let Ok((stream, _)) = listener.accept().await {
                    let counter = counter.clone();
                    tokio::spawn(async move {
                        if let Err(err) = session(stream, &counter).await {
                            eprintln!("SMTP sink session: {err}");
                        }
                    });
                }
            });
        });
        Ok(Sink { port, accepted })
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// One SMTP session: enough of RFC 5321 for lettre without TLS or auth.
async fn session(stream: TcpStream, accepted: &AtomicU64) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    write.write_all(b"220 bench.test ESMTP sink\r\n").await?;
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_slice() {
            b"EHLO" => b"250-bench.test\r\n250 8BITMIME\r\n",
            b"HELO" | b"MAIL" | b"RCPT" | b"RSET" | b"NOOP" => b"250 OK\r\n",
            b"DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                // A lone dot ends the data; dot-stuffing keeps one out of the mail.
                loop {
                    line.clear();
                    if read.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                accepted.fetch_add(1, Ordering::Relaxed);
                b"250 OK queued\r\n"
            }
            b"QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}
