//! Mail delivery (docs/architecture.md §4) against a real SMTP server on
//! loopback: aiosmtpd with the handler in `tests/smtp_sink.py`, which stores
//! what it accepts and answers with scripted 4xx/5xx replies when told to. The
//! tests drive `bazaar::mail` directly: an outbox in a fresh database and a
//! Mailer actor.

use std::time::{Duration, Instant};

use actix::Addr;
use bazaar::clock;
use bazaar::config::{MailSettings, MailTransport, SmtpSecurity, SmtpSettings};
use bazaar::lifecycle::Lifecycle;
use bazaar::mail::{
    self, EmailAddress, Enqueued, ExtraHeader, HeaderText, Mailer, NewMail, Transport,
};
use entity::outbox::{self, MailKind, MailStatus};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};

use crate::helpers::{free_port, postgres, Backend};
use crate::on_both_backends;
use crate::smtp::{SmtpSink, PATIENCE};

/// A fresh, migrated database.
struct TestDb {
    db: DatabaseConnection,
    url: String,
    _dir: tempfile::TempDir,
}

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bazaar.db").display()
            ),
            Backend::Postgres => postgres().create_database().await,
        };
        let db = bazaar::db::connect(&url).await.expect("connect");
        TestDb { db, url, _dir: dir }
    }

    async fn row(&self, key: &str) -> outbox::Model {
        outbox::Entity::find()
            .filter(outbox::Column::Key.eq(key))
            .one(&self.db)
            .await
            .expect("read outbox")
            .expect("the row exists")
    }

    /// Waits until the row with `key` satisfies `done`, and returns it.
    async fn wait_row(&self, key: &str, done: impl Fn(&outbox::Model) -> bool) -> outbox::Model {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let row = self.row(key).await;
            if done(&row) {
                return row;
            }
            assert!(Instant::now() < deadline, "row never got there: {row:?}");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Mail settings for a sink on `port`: plain SMTP on loopback, quick ticks
/// and retries.
fn settings(port: u16) -> MailSettings {
    MailSettings {
        transport: MailTransport::Smtp,
        from: "Bazaar <bazaar@localhost>".into(),
        smtp: SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::None,
            timeout: Duration::from_secs(5),
            ..SmtpSettings::default()
        },
        per_minute: 60_000,
        tick: Duration::from_millis(50),
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        ..MailSettings::default()
    }
}

fn start_mailer(db: &DatabaseConnection, settings: &MailSettings) -> Addr<Mailer> {
    let data_dir = tempfile::tempdir().expect("data dir");
    let transport = Transport::from_settings(settings, data_dir.path()).expect("transport");
    mail::start_with(db.clone(), settings, transport, &Lifecycle::new()).expect("start the mailer")
}

/// A digest for `to`, keyed by crawl.
fn digest(crawl: u32, to: &str) -> NewMail {
    NewMail {
        kind: MailKind::Digest,
        key: format!("digest:crawl-{crawl}:{to}"),
        to: EmailAddress::parse(to).expect("address"),
        subject: HeaderText::parse(&format!("Bazaar: crawl {crawl} found price drops"))
            .expect("subject"),
        text: format!("Doom: 9.99 -> 4.99\nUnsubscribe: http://localhost/u/{crawl}\n"),
        html: Some(format!(
            "<p><a href=\"http://localhost/games/doom\">Doom</a>: 9.99 &rarr; 4.99</p>\
             <p><a href=\"http://localhost/u/{crawl}\">Unsubscribe</a></p>"
        )),
        headers: vec![
            ExtraHeader::parse("List-Id", "Bazaar digest <digest.bazaar.localhost>")
                .expect("header"),
            ExtraHeader::parse("List-Unsubscribe", &format!("<http://localhost/u/{crawl}>"))
                .expect("header"),
            ExtraHeader::parse("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
                .expect("header"),
        ],
    }
}

async fn a_queued_mail_arrives_with_its_recipient_subject_parts_and_headers(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;
    let sink = SmtpSink::start();
    let queued = mail::enqueue(&db.db, digest(12, "ana@example.com"), clock::now())
        .await
        .expect("enqueue");
    assert_eq!(queued, Enqueued::Queued);

    // Act
    let _mailer = start_mailer(&db.db, &settings(sink.port));

    // Assert
    let received = sink.wait_for(1).await;
    let text = &received[0];
    for needle in [
        "X-Rcpt-To: ana@example.com",
        "From: Bazaar <bazaar@localhost>",
        "To: ana@example.com",
        "Subject: Bazaar: crawl 12 found price drops",
        "List-Id: Bazaar digest <digest.bazaar.localhost>",
        "List-Unsubscribe: <http://localhost/u/12>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "Content-Type: multipart/alternative",
        "Content-Type: text/plain",
        "Doom: 9.99 -> 4.99",
        "Content-Type: text/html",
        "<a href=3D\"http://localhost/games/doom\">Doom</a>",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let row = db
        .wait_row("digest:crawl-12:ana@example.com", |r| {
            r.status == MailStatus::Sent
        })
        .await;
    assert_eq!(row.attempts, 1);
    assert!(row.sent_at.is_some() && row.leased_until.is_none());
}
on_both_backends!(a_queued_mail_arrives_with_its_recipient_subject_parts_and_headers);

async fn a_mail_queued_twice_by_key_is_sent_once(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;
    let sink = SmtpSink::start();
    let now = clock::now();
    let first = mail::enqueue(&db.db, digest(3, "ana@example.com"), now).await;
    let second = mail::enqueue(&db.db, digest(3, "ana@example.com"), now).await;
    assert_eq!(first.expect("first"), Enqueued::Queued);
    assert_eq!(second.expect("second"), Enqueued::AlreadyQueued);

    // Act
    let _mailer = start_mailer(&db.db, &settings(sink.port));
    db.wait_row("digest:crawl-3:ana@example.com", |r| {
        r.status == MailStatus::Sent
    })
    .await;
    // Queueing it again after it was sent changes nothing either.
    let third = mail::enqueue(&db.db, digest(3, "ana@example.com"), clock::now()).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;

    // Assert
    assert_eq!(third.expect("third"), Enqueued::AlreadyQueued);
    assert_eq!(sink.received().len(), 1);
}
on_both_backends!(a_mail_queued_twice_by_key_is_sent_once);

async fn mail_queued_while_the_smtp_server_is_down_arrives_when_it_comes_up(backend: Backend) {
    // Arrange: nothing listens on the port yet.
    let db = TestDb::new(backend).await;
    let port = free_port();
    let key = "digest:crawl-5:ana@example.com";
    mail::enqueue(&db.db, digest(5, "ana@example.com"), clock::now())
        .await
        .expect("enqueue");
    let _mailer = start_mailer(&db.db, &settings(port));
    let refused = db
        .wait_row(key, |r| r.status == MailStatus::Pending && r.attempts >= 1)
        .await;
    assert!(refused.last_error.is_some(), "{refused:?}");

    // Act
    let sink = SmtpSink::start_on(port);

    // Assert
    let received = sink.wait_for(1).await;
    assert!(received[0].contains("Subject: Bazaar: crawl 5 found price drops"));
    let row = db.wait_row(key, |r| r.status == MailStatus::Sent).await;
    assert!(row.attempts > 1, "{row:?}");
}
on_both_backends!(mail_queued_while_the_smtp_server_is_down_arrives_when_it_comes_up);

async fn a_4xx_reply_is_retried_and_the_mail_arrives(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;
    let sink = SmtpSink::start();
    sink.script(&["451 4.3.0 Mailbox busy, try again later"]);
    let key = "digest:crawl-7:ana@example.com";
    mail::enqueue(&db.db, digest(7, "ana@example.com"), clock::now())
        .await
        .expect("enqueue");

    // Act
    let _mailer = start_mailer(&db.db, &settings(sink.port));

    // Assert
    let received = sink.wait_for(1).await;
    assert!(received[0].contains("Subject: Bazaar: crawl 7 found price drops"));
    let row = db.wait_row(key, |r| r.status == MailStatus::Sent).await;
    assert_eq!(row.attempts, 2, "{row:?}");
}
on_both_backends!(a_4xx_reply_is_retried_and_the_mail_arrives);

async fn a_5xx_reply_marks_the_mail_failed_with_the_servers_reply(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;
    let sink = SmtpSink::start();
    sink.script(&["550 5.1.1 No such user here"]);
    let key = "digest:crawl-8:ghost@example.com";
    mail::enqueue(&db.db, digest(8, "ghost@example.com"), clock::now())
        .await
        .expect("enqueue");

    // Act
    let _mailer = start_mailer(&db.db, &settings(sink.port));

    // Assert
    let row = db.wait_row(key, |r| r.status == MailStatus::Failed).await;
    let error = row.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("550"), "{error}");
    assert!(error.contains("No such user here"), "{error}");
    assert_eq!(row.attempts, 1);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.received().is_empty());
}
on_both_backends!(a_5xx_reply_marks_the_mail_failed_with_the_servers_reply);

async fn a_mail_whose_lease_ran_out_is_sent_again_and_a_live_lease_is_left_alone(backend: Backend) {
    // Arrange: a node leased two mails and died before sending them; one
    // lease has run out, the other has not.
    let db = TestDb::new(backend).await;
    let sink = SmtpSink::start();
    let now = clock::now();
    for (crawl, leased_until) in [
        (20, now - chrono::TimeDelta::seconds(1)),
        (21, now + chrono::TimeDelta::hours(1)),
    ] {
        mail::enqueue(&db.db, digest(crawl, "ana@example.com"), now)
            .await
            .expect("enqueue");
        let mut row: outbox::ActiveModel = db
            .row(&format!("digest:crawl-{crawl}:ana@example.com"))
            .await
            .into();
        row.status = Set(MailStatus::Sending);
        row.attempts = Set(1);
        row.leased_until = Set(Some(leased_until));
        row.update(&db.db).await.expect("simulate a lease");
    }

    // Act
    let _mailer = start_mailer(&db.db, &settings(sink.port));

    // Assert
    let received = sink.wait_for(1).await;
    assert!(received[0].contains("Subject: Bazaar: crawl 20 found price drops"));
    let row = db
        .wait_row("digest:crawl-20:ana@example.com", |r| {
            r.status == MailStatus::Sent
        })
        .await;
    assert_eq!(row.attempts, 2);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 1);
    let live = db.row("digest:crawl-21:ana@example.com").await;
    assert_eq!(live.status, MailStatus::Sending);
}
on_both_backends!(a_mail_whose_lease_ran_out_is_sent_again_and_a_live_lease_is_left_alone);

async fn two_mailers_on_one_outbox_send_each_mail_once(backend: Backend) {
    // Arrange: two nodes, each with its own connection pool.
    let db = TestDb::new(backend).await;
    let other = bazaar::db::connect(&db.url).await.expect("second pool");
    let sink = SmtpSink::start();
    let now = clock::now();
    for i in 0..40 {
        mail::enqueue(&db.db, digest(30, &format!("user{i}@example.com")), now)
            .await
            .expect("enqueue");
    }

    // Act
    let _first = start_mailer(&db.db, &settings(sink.port));
    let _second = start_mailer(&other, &settings(sink.port));

    // Assert
    sink.wait_for(40).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let mut recipients: Vec<String> = sink
        .received()
        .iter()
        .filter_map(|m| m.lines().next().map(str::to_owned))
        .collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 40);
    assert_eq!(sink.received().len(), 40);
}
on_both_backends!(two_mailers_on_one_outbox_send_each_mail_once);
