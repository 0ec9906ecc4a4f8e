//! The Mailer actor: every tick it leases due mail from the outbox, sends it
//! through the transport at most `mail.per_minute` a minute, and marks each
//! mail sent, due again with backoff, or failed. A round that took all it was
//! allowed is followed by the next at once, so a backlog drains at the
//! throttle's pace rather than one batch per tick.

use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use entity::outbox;
use futures_util::stream::{self, StreamExt};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;
use sea_orm::DatabaseConnection;

use super::address::EmailAddress;
use super::header::{ExtraHeader, HeaderText};
use super::outbox::{self as store, Leased};
use super::transport::{SendError, Transport};
use crate::backoff::jittered;
use crate::clock::{self, delta};
use crate::config::{MailSettings, Settings};
use crate::crawl::lease::RetryPolicy;
use crate::lifecycle::Lifecycle;
use crate::supervision::{self, Name, Restart};

/// Mails leased per round at most; the throttle usually allows fewer.
const BATCH: u32 = 64;
/// Mails in flight at once: each SMTP send waits on its own connection's
/// round trips, so a few in parallel keep the relay busy.
const SEND_CONCURRENCY: usize = 4;

/// Sends the outbox. Everything durable is in the database, so a restart
/// loses nothing: a lease it held runs out and the mail is due again.
pub struct Mailer {
    db: DatabaseConnection,
    transport: Transport,
    from: Mailbox,
    retry: RetryPolicy,
    tick: Duration,
    lease: Duration,
    throttle: Throttle,
    /// A round is under way; ticks skip until it ends.
    busy: bool,
    /// Rounds run on it, so that shutdown waits for the one under way.
    lifecycle: Lifecycle,
}

/// Starts the Mailer under a supervisor, with the transport `settings` ask for.
pub fn start(
    db: DatabaseConnection,
    settings: &Settings,
    lifecycle: &Lifecycle,
) -> anyhow::Result<Addr<Mailer>> {
    let transport = Transport::from_settings(&settings.mail, &settings.data_dir)?;
    start_with(db, &settings.mail, transport, lifecycle)
}

/// Starts the Mailer with a given transport (tests hand it a stub).
pub fn start_with(
    db: DatabaseConnection,
    settings: &MailSettings,
    transport: Transport,
    lifecycle: &Lifecycle,
) -> anyhow::Result<Addr<Mailer>> {
    let from = parse_from(&settings.from)?;
    let retry = RetryPolicy {
        max_attempts: settings.max_attempts.max(1),
        base: settings.retry_base,
        max: settings.retry_max,
    };
    let (tick, lease, per_minute) = (settings.tick, settings.lease, settings.per_minute);
    let mailer = Mailer {
        db,
        transport,
        from,
        retry,
        tick,
        lease,
        throttle: Throttle::new(per_minute, Instant::now()),
        busy: false,
        lifecycle: lifecycle.clone(),
    };
    Ok(supervision::start(
        Name::Mailer,
        Restart::Always,
        lifecycle,
        move |_| mailer,
    ))
}

/// `mail.from`, checked once at start-up.
fn parse_from(text: &str) -> anyhow::Result<Mailbox> {
    HeaderText::parse(text).context("mail.from")?;
    text.parse::<Mailbox>()
        .with_context(|| format!("mail.from = {text:?} is not `Name <address>` or an address"))
}

impl Actor for Mailer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.tick, |mailer, ctx| mailer.send_due(ctx));
    }
}

impl Supervised for Mailer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.busy = false;
        tracing::warn!("mailer restarted");
    }
}

/// How one round went.
#[derive(Debug, Default)]
struct Round {
    leased: u32,
}

impl Mailer {
    fn send_due(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let allowed = self.throttle.reserve(BATCH, Instant::now());
        if allowed == 0 {
            return;
        }
        self.busy = true;
        let round = run_round(
            self.db.clone(),
            self.transport.clone(),
            self.from.clone(),
            self.retry,
            self.lease,
            allowed,
        );
        // A task of its own, not the actor's, which shutdown waits for: a
        // restart or a stop drops what the actor runs, and a round cut off
        // between sending a mail and marking it sent would send it again
        // once its lease ran out.
        let round = self.lifecycle.spawn_whole(round);
        ctx.spawn(round.into_actor(self).map(move |round, mailer, ctx| {
            mailer.busy = false;
            let round = round.unwrap_or_default();
            if round.leased > 0 {
                supervision::drill(Name::Mailer);
            }
            // Tokens for mail that was not there go back to the bucket.
            mailer.throttle.refund(allowed.saturating_sub(round.leased));
            // A full round means more may be due: waiting for the next tick
            // would cap the pace at BATCH per tick whatever the throttle.
            if round.leased == allowed {
                mailer.send_due(ctx);
            }
        }));
    }
}

/// Leases up to `limit` due mails and sends them.
async fn run_round(
    db: DatabaseConnection,
    transport: Transport,
    from: Mailbox,
    retry: RetryPolicy,
    lease: Duration,
    limit: u32,
) -> Round {
    let leased = match store::lease_due(&db, clock::now(), limit, lease).await {
        Ok(leased) => leased,
        Err(err) => {
            tracing::warn!(error = %err, "could not lease mail from the outbox");
            return Round::default();
        }
    };
    let round = Round {
        leased: u32::try_from(leased.len()).unwrap_or(limit),
    };
    stream::iter(leased)
        .for_each_concurrent(SEND_CONCURRENCY, |mail| {
            let (db, transport, from, retry) = (&db, &transport, &from, &retry);
            async move {
                let result = match build(from, &mail.mail) {
                    Ok(message) => transport.send(message).await,
                    Err(reason) => Err(SendError::Permanent(reason)),
                };
                if let Err(err) = record(db, &mail, result, retry, clock::now()).await {
                    tracing::warn!(mail = mail.mail.id, error = %err, "could not record a send");
                }
            }
        })
        .await;
    round
}

/// Marks `mail` by how its send ended.
async fn record(
    db: &DatabaseConnection,
    mail: &Leased,
    result: Result<(), SendError>,
    retry: &RetryPolicy,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let id = mail.mail.id;
    let attempts = mail.attempts();
    let current = match result {
        Ok(()) => {
            tracing::info!(mail = id, kind = %mail.mail.kind, attempts, "mail sent");
            store::mark_sent(db, mail, now).await?
        }
        Err(SendError::Transient(reason)) if attempts < retry.max_attempts => {
            let wait = jittered(retry.backoff(attempts));
            tracing::info!(mail = id, attempts, %reason, ?wait, "mail will be retried");
            store::mark_retry(db, mail, &reason, now + delta(wait)).await?
        }
        Err(SendError::Transient(reason) | SendError::Permanent(reason)) => {
            tracing::warn!(mail = id, attempts, %reason, "mail failed");
            store::mark_failed(db, mail, &reason).await?
        }
    };
    if !current {
        tracing::warn!(
            mail = id,
            "a mail's lease ran out before its send was recorded"
        );
    }
    Ok(())
}

/// The message for an outbox row. The row was written from parsed values;
/// parsing again only guards against rows edited by hand.
fn build(from: &Mailbox, mail: &outbox::Model) -> Result<Message, String> {
    let to = EmailAddress::parse(&mail.recipient).map_err(|err| err.to_string())?;
    let subject = HeaderText::parse(&mail.subject).map_err(|err| err.to_string())?;
    let mut builder = Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to.to_lettre()))
        .subject(subject.as_str());
    if let Some(headers) = mail.headers.as_object() {
        for (name, value) in headers {
            let value = value.as_str().unwrap_or_default();
            let header = ExtraHeader::parse(name, value).map_err(|err| err.to_string())?;
            let name = HeaderName::new_from_ascii(header.name().to_owned())
                .map_err(|err| format!("header {name:?}: {err}"))?;
            builder = builder.raw_header(HeaderValue::new(name, header.value().to_string()));
        }
    }
    let message = match &mail.html_body {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text_body.clone(),
            html.clone(),
        )),
        None => builder.singlepart(SinglePart::plain(mail.text_body.clone())),
    };
    message.map_err(|err| format!("could not build the mail: {err}"))
}

/// A token bucket for the send rate: `per_minute` a minute, in bursts of
/// up to a second's worth.
#[derive(Debug)]
struct Throttle {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Throttle {
    fn new(per_minute: u32, now: Instant) -> Throttle {
        let per_second = f64::from(per_minute.max(1)) / 60.0;
        let burst = per_second.max(1.0);
        Throttle {
            per_second,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes up to `want` whole tokens; returns how many it took.
    fn reserve(&mut self, want: u32, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        // Truncation is the point: only whole tokens can be spent.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let took = (self.tokens.floor() as u32).min(want);
        self.tokens -= f64::from(took);
        took
    }

    fn refund(&mut self, unused: u32) {
        self.tokens = (self.tokens + f64::from(unused)).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::outbox::{enqueue, enqueue_many, MailKind, MailStatus, NewMail};
    use crate::mail::transport::StubTransport;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    /// A fresh, migrated SQLite database in `dir`.
    async fn database(dir: &tempfile::TempDir) -> DatabaseConnection {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("mail.db").display());
        crate::db::connect(&url).await.unwrap()
    }

    /// `n` plain-text mails, each to its own recipient.
    fn mails(n: u32) -> Vec<NewMail> {
        (0..n)
            .map(|i| NewMail {
                kind: MailKind::Digest,
                key: format!("digest:crawl-1:user{i}@example.com"),
                to: EmailAddress::parse(&format!("user{i}@example.com")).unwrap(),
                subject: HeaderText::parse("New games").unwrap(),
                text: "Two new games".into(),
                html: None,
                headers: Vec::new(),
            })
            .collect()
    }

    /// Waits until `n` mails in the outbox are sent or `patience` runs out;
    /// returns how many are.
    async fn wait_until_sent(db: &DatabaseConnection, n: u32, patience: Duration) -> u64 {
        let deadline = Instant::now() + patience;
        loop {
            let sent = outbox::Entity::find()
                .filter(outbox::Column::Status.eq(MailStatus::Sent))
                .count(db)
                .await
                .unwrap();
            if sent >= u64::from(n) || Instant::now() > deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn the_throttle_allows_a_burst_then_the_steady_rate() {
        let start = Instant::now();
        let mut throttle = Throttle::new(600, start);
        assert_eq!(throttle.reserve(64, start), 10);
        assert_eq!(throttle.reserve(64, start), 0);
        assert_eq!(throttle.reserve(64, start + Duration::from_millis(500)), 5);
        throttle.refund(2);
        assert_eq!(throttle.reserve(1, start + Duration::from_millis(500)), 1);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_secs(2),
            max: Duration::from_secs(600),
        };
        assert_eq!(retry.backoff(1), Duration::from_secs(2));
        assert_eq!(retry.backoff(3), Duration::from_secs(8));
        assert_eq!(retry.backoff(12), Duration::from_secs(600));
    }

    #[test]
    fn a_from_with_a_line_break_is_refused() {
        assert!(parse_from("Bazaar <bazaar@localhost>").is_ok());
        assert!(parse_from("Bazaar\r\nBcc: x@y.z <bazaar@localhost>").is_err());
        assert!(parse_from("not an address").is_err());
    }

    #[actix_web::test]
    async fn a_queued_mail_goes_through_the_stub_with_both_parts_and_headers() {
        // Arrange
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let stub = StubTransport::default();
        let settings = MailSettings {
            tick: Duration::from_millis(20),
            ..MailSettings::default()
        };
        let mail = NewMail {
            kind: MailKind::Digest,
            key: "digest:crawl-1:ana@example.com".into(),
            to: EmailAddress::parse("ana@example.com").unwrap(),
            subject: HeaderText::parse("New games").unwrap(),
            text: "Two new games".into(),
            html: Some("<p>Two new games</p>".into()),
            headers: vec![ExtraHeader::parse("List-Id", "Bazaar <digest.localhost>").unwrap()],
        };
        enqueue(&db, mail, clock::now()).await.unwrap();

        // Act
        let _mailer = start_with(
            db.clone(),
            &settings,
            Transport::Stub(stub.clone()),
            &Lifecycle::new(),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stub.sent().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Assert
        let sent = stub.sent();
        assert_eq!(sent.len(), 1);
        let text = String::from_utf8(sent[0].formatted()).unwrap();
        for needle in [
            "To: ana@example.com",
            "Subject: New games",
            "List-Id: Bazaar <digest.localhost>",
            "multipart/alternative",
            "Two new games",
            "<p>Two new games</p>",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from {text}");
        }
    }
    #[actix_web::test]
    async fn a_backlog_goes_out_in_one_tick_when_the_throttle_allows_it() {
        // Arrange: three rounds of mail (the last one not full, so the
        // Mailer is idle once they are sent), and a tick long enough to tell
        // one tick from three.
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let settings = MailSettings {
            tick: Duration::from_secs(1),
            per_minute: 60_000,
            ..MailSettings::default()
        };
        let backlog = 2 * BATCH + 1;
        enqueue_many(&db, mails(backlog), clock::now())
            .await
            .unwrap();

        // Act
        let started = Instant::now();
        let stub = Transport::Stub(StubTransport::default());
        let _mailer = start_with(db.clone(), &settings, stub, &Lifecycle::new()).unwrap();
        let sent = wait_until_sent(&db, backlog, Duration::from_secs(10)).await;

        // Assert: one round per tick would have taken three ticks.
        let took = started.elapsed();
        assert_eq!(sent, u64::from(backlog));
        assert!(took < Duration::from_millis(2500), "took {took:?}");
    }

    #[actix_web::test]
    async fn a_backlog_still_goes_out_no_faster_than_the_throttle() {
        // Arrange: 10 mails a second in bursts of 10, and a tick long enough
        // that the Mailer is idle when the test ends.
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let stub = StubTransport::default();
        let settings = MailSettings {
            tick: Duration::from_secs(1),
            per_minute: 600,
            ..MailSettings::default()
        };
        enqueue_many(&db, mails(40), clock::now()).await.unwrap();

        // Act: the first tick.
        let started = Instant::now();
        let _mailer = start_with(
            db.clone(),
            &settings,
            Transport::Stub(stub.clone()),
            &Lifecycle::new(),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // Assert: the burst, and at most the steady rate since.
        let sent = stub.sent().len();
        let since_tick = started.elapsed().saturating_sub(settings.tick);
        let allowed = 10 + (since_tick.as_secs_f64() * 10.0).ceil() as usize;
        assert!(sent >= 10, "only {sent} sent");
        assert!(sent <= allowed, "{sent} sent, {allowed} allowed");
    }
}
