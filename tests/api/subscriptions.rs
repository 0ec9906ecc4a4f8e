//! Subscriptions end to end: a real `bazaar serve` mails through a real SMTP
//! server on loopback (aiosmtpd), and each test follows the links in what
//! arrives back into the app, as a subscriber would.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::accounts::{hidden, Visitor};
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};
use crate::on_both_backends;
use crate::smtp::{Received, SmtpSink, PATIENCE};

/// A server that mails through `sink`, with quick ticks.
async fn app_with_mail(backend: Backend, sink: &SmtpSink, extra: &[(&str, &str)]) -> TestApp {
    let mut env: Vec<(String, String)> = [
        ("BAZAAR_MAIL__TRANSPORT", "smtp".to_owned()),
        ("BAZAAR_MAIL__SMTP__HOST", "127.0.0.1".to_owned()),
        ("BAZAAR_MAIL__SMTP__PORT", sink.port.to_string()),
        ("BAZAAR_MAIL__SMTP__SECURITY", "none".to_owned()),
        ("BAZAAR_MAIL__TICK", "50ms".to_owned()),
        ("BAZAAR_MAIL__NOTIFY_EVERY", "100ms".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    spawn_app(
        backend,
        AppOptions {
            local_workers: 1,
            env,
            ..Default::default()
        },
    )
    .await
}

/// Mails received so far, parsed.
fn mails(sink: &SmtpSink) -> Vec<Received> {
    sink.received()
        .iter()
        .map(|raw| Received::parse(raw))
        .collect()
}

/// Waits for the `n`th mail and returns it.
async fn nth_mail(sink: &SmtpSink, n: usize) -> Received {
    let all = sink.wait_for(n).await;
    Received::parse(&all[n - 1])
}

/// The first mail to `address`, waiting for it. Other mail may come first:
/// opening `/` on a stale catalog starts a crawl, whose digest goes to
/// whoever has confirmed by the time it finishes.
async fn first_mail_to(sink: &SmtpSink, address: &str) -> Received {
    for n in 1.. {
        let mail = nth_mail(sink, n).await;
        if mail.header("X-Rcpt-To").as_deref() == Some(address) {
            return mail;
        }
    }
    unreachable!("nth_mail gives up first")
}

/// Subscribes `email` from the page at `from` (`/` or a game page), checks
/// the form was accepted, and returns the page that says what happens next.
async fn subscribe(visitor: &mut Visitor<'_>, from: &str, fields: &[(&str, &str)]) -> String {
    let page = visitor.get(from).await;
    let csrf = hidden(&page.body, "csrf").expect("a form token on the page");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let page = visitor.post("/subscribe", &form).await;
    assert_eq!(
        page.status,
        200,
        "subscribing {fields:?}: {}\nserver log:\n{}",
        page.body,
        visitor.app().log()
    );
    page.body
}

/// The app-relative path of an absolute link into `app`.
fn path_of<'a>(app: &TestApp, link: &'a str) -> &'a str {
    link.strip_prefix(&app.base)
        .unwrap_or_else(|| panic!("{link} does not point into the app at {}", app.base))
}

/// Follows a mail's confirmation link and presses the page's button.
async fn confirm(app: &TestApp, visitor: &mut Visitor<'_>, mail: &Received) -> String {
    let link = mail
        .link(&format!("{}/subscriptions/confirm?token=", app.base))
        .unwrap_or_else(|| panic!("no confirmation link in the text part:\n{}", mail.text));
    assert!(
        mail.html.contains(&link),
        "the HTML part links the same page"
    );
    let page = visitor.get(path_of(app, &link)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Confirm your subscription"),
        "{}",
        page.body
    );
    let token = hidden(&page.body, "token").expect("the confirm button carries the token");
    let done = visitor
        .post("/subscriptions/confirm", &[("token", &token)])
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("<h1>Subscribed</h1>"), "{}", done.body);
    link
}

#[actix_web::test]
async fn subscriptions_past_the_hourly_limit_are_refused_with_the_wait() {
    // Arrange: two subscriptions an hour from one address.
    let sink = SmtpSink::start();
    let app = app_with_mail(
        Backend::Sqlite,
        &sink,
        &[("BAZAAR_MAIL__SUBSCRIBES_PER_HOUR", "2")],
    )
    .await;
    let mut visitor = Visitor::new(&app);
    subscribe(&mut visitor, "/", &[("email", "ana@example.com")]).await;
    subscribe(&mut visitor, "/", &[("email", "bob@example.com")]).await;

    // Act: a third from the same address.
    let page = visitor.get("/").await;
    let csrf = hidden(&page.body, "csrf").expect("a form token on the page");
    let third = visitor
        .post(
            "/subscribe",
            &[("csrf", csrf.as_str()), ("email", "cy@example.com")],
        )
        .await;

    // Assert: refused, with the wait on the page and in the header, and
    // nothing stored for it.
    assert_eq!(third.status, 429, "{}", third.body);
    assert!(
        third
            .body
            .contains("Too many subscriptions from your address"),
        "{}",
        third.body
    );
    let wait = third.retry_after_secs();
    assert!((3000..=3600).contains(&wait), "Retry-After: {wait}");
    assert!(status_of(&app, "cy@example.com").await.is_empty());
    assert_eq!(status_of(&app, "bob@example.com").await, ["pending"]);
}

async fn status_of(app: &TestApp, email: &str) -> Vec<String> {
    let rows = app
        .rows(&format!(
            "SELECT status FROM subscriptions WHERE email = '{email}' ORDER BY id"
        ))
        .await;
    rows.into_iter().map(|r| r[0].clone()).collect()
}

async fn set_seed(app: &TestApp, seed: u64) {
    let resp = app
        .client
        .post(format!("{}/api/demo/seed", app.base))
        .bearer_auth(&app.api_token)
        .send_json(&json!({ "seed": seed }))
        .await
        .expect("set seed");
    assert_eq!(resp.status().as_u16(), 200);
}

/// Runs a crawl to its end and waits until its digest has been dealt with.
async fn crawl(app: &TestApp) -> i64 {
    let id = app.start_crawl().await;
    app.wait_crawl(id, Duration::from_secs(60)).await;
    let deadline = Instant::now() + PATIENCE;
    while app
        .count(&format!(
            "SELECT COUNT(*) FROM crawls WHERE id = {id} AND digested_at IS NOT NULL"
        ))
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "crawl {id} never got its digest");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    id
}

/// Waits until the outbox has nothing left to send.
async fn outbox_settled(app: &TestApp) {
    let deadline = Instant::now() + PATIENCE;
    while app
        .count("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')")
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "the outbox never emptied");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn subscribing_on_the_home_page_mails_a_link_that_confirms() {
    // Arrange
    let sink = SmtpSink::start();
    let app = app_with_mail(Backend::Sqlite, &sink, &[]).await;
    let mut visitor = Visitor::new(&app);

    // Act
    subscribe(&mut visitor, "/", &[("email", "ana@example.com")]).await;

    // Assert: a pending row, and a confirmation with both parts and list headers.
    assert_eq!(status_of(&app, "ana@example.com").await, ["pending"]);
    let mail = nth_mail(&sink, 1).await;
    assert_eq!(mail.header("X-Rcpt-To").as_deref(), Some("ana@example.com"));
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Confirm your Bazaar digest subscription")
    );
    assert!(mail
        .header("Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    assert!(mail
        .header("List-Id")
        .unwrap()
        .starts_with("Bazaar digest <digest."));
    let unsubscribe = mail.header("List-Unsubscribe").unwrap();
    assert!(
        unsubscribe.starts_with(&format!("<{}/unsubscribe?token=", app.base)),
        "{unsubscribe}"
    );
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(mail.text.contains("within 48 hours"), "{}", mail.text);
    assert!(
        mail.html.contains("Confirm my subscription"),
        "{}",
        mail.html
    );

    // Act: follow the link.
    let link = confirm(&app, &mut visitor, &mail).await;

    // Assert: confirmed; the link now says so instead of asking again.
    assert_eq!(status_of(&app, "ana@example.com").await, ["confirmed"]);
    let again = visitor.get(path_of(&app, &link)).await;
    assert!(again.body.contains("<h1>Subscribed</h1>"), "{}", again.body);
}

#[actix_web::test]
async fn subscribing_again_makes_no_duplicate_and_resends_only_after_the_wait() {
    // Arrange
    let sink = SmtpSink::start();
    let app = app_with_mail(
        Backend::Sqlite,
        &sink,
        &[("BAZAAR_MAIL__RESEND_AFTER", "2s")],
    )
    .await;
    let mut visitor = Visitor::new(&app);
    subscribe(&mut visitor, "/", &[("email", "ana@example.com")]).await;
    let first = nth_mail(&sink, 1).await;

    // Act: twice more at once, the second spelled with a capital domain.
    let page = visitor.get("/").await;
    let csrf = hidden(&page.body, "csrf").unwrap();
    let again = visitor
        .post(
            "/subscribe",
            &[("csrf", &csrf), ("email", "ana@example.com")],
        )
        .await;
    let shouted = visitor
        .post(
            "/subscribe",
            &[("csrf", &csrf), ("email", "ana@EXAMPLE.com")],
        )
        .await;

    // Assert: one row, one mail, and a page that says why.
    assert!(again.body.contains("a moment ago"), "{}", again.body);
    assert!(shouted.body.contains("a moment ago"), "{}", shouted.body);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM subscriptions").await,
        1,
        "no duplicate row"
    );
    outbox_settled(&app).await;
    assert_eq!(sink.received().len(), 1, "no second confirmation yet");

    // Act: after the wait, asking again sends a fresh link.
    actix_web::rt::time::sleep(Duration::from_millis(2_100)).await;
    subscribe(&mut visitor, "/", &[("email", "ana@example.com")]).await;

    // Assert: the new link confirms, the old one was replaced by it.
    let second = nth_mail(&sink, 2).await;
    let old_link = first
        .link(&format!("{}/subscriptions/confirm?token=", app.base))
        .unwrap();
    let stale = visitor.get(path_of(&app, &old_link)).await;
    assert_eq!(stale.status, 404, "{}", stale.body);
    assert!(stale.body.contains("This link is not valid"));
    confirm(&app, &mut visitor, &second).await;
    assert_eq!(status_of(&app, "ana@example.com").await, ["confirmed"]);
}

#[actix_web::test]
async fn bad_input_gets_a_clear_error_and_stores_and_mails_nothing() {
    // Arrange
    let sink = SmtpSink::start();
    let app = app_with_mail(Backend::Sqlite, &sink, &[]).await;
    crawl(&app).await;
    let game = app.count("SELECT MIN(id) FROM games").await;
    let mut visitor = Visitor::new(&app);
    let csrf = hidden(&visitor.get("/").await.body, "csrf").unwrap();
    let game_field = game.to_string();

    // Act / Assert: each refusal names the problem and keeps what was typed.
    for (fields, status, says) in [
        (
            vec![("email", "not-an-address")],
            400,
            "is not an email address",
        ),
        (
            vec![("email", "ana@example.com\r\nBcc: everyone@example.com")],
            400,
            "line breaks",
        ),
        (vec![("email", "")], 400, "An email address is needed"),
        (
            vec![
                ("email", "ana@example.com"),
                ("game", &game_field),
                ("target", "cheap"),
            ],
            400,
            "Target price",
        ),
        (
            vec![
                ("email", "ana@example.com"),
                ("game", &game_field),
                ("target", "0"),
            ],
            400,
            "more than 0",
        ),
        (
            vec![
                ("email", "ana@example.com"),
                ("game", "999999"),
                ("target", "5"),
            ],
            404,
            "Not found",
        ),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(&fields);
        let page = visitor.post("/subscribe", &form).await;
        assert_eq!(page.status, status, "{fields:?}: {}", page.body);
        assert!(page.body.contains(says), "{fields:?}: {}", page.body);
    }
    let forged = visitor
        .post(
            "/subscribe",
            &[("csrf", "forged"), ("email", "ana@example.com")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let injected = visitor
        .post(
            "/subscribe",
            &[
                ("csrf", &csrf),
                ("email", "x'); DROP TABLE subscriptions; --@example.com"),
            ],
        )
        .await;
    assert_eq!(injected.status, 400, "{}", injected.body);

    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 0);
    assert!(sink.received().is_empty());
}

#[actix_web::test]
async fn expired_and_forged_links_are_refused_and_a_new_link_can_be_asked_for() {
    // Arrange: links live one second.
    let sink = SmtpSink::start();
    let app = app_with_mail(
        Backend::Sqlite,
        &sink,
        &[
            ("BAZAAR_MAIL__CONFIRM_TTL", "1s"),
            ("BAZAAR_MAIL__RESEND_AFTER", "1s"),
        ],
    )
    .await;
    let mut visitor = Visitor::new(&app);
    subscribe(&mut visitor, "/", &[("email", "ana@example.com")]).await;
    let first = nth_mail(&sink, 1).await;
    let link = first
        .link(&format!("{}/subscriptions/confirm?token=", app.base))
        .unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(1_200)).await;

    // Act / Assert: the expired link says so, and confirming it does nothing.
    let expired = visitor.get(path_of(&app, &link)).await;
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert!(expired.body.contains("This link has expired"));
    let token = hidden(&expired.body, "token").expect("a resend button");
    let refused = visitor
        .post("/subscriptions/confirm", &[("token", &token)])
        .await;
    assert_eq!(refused.status, 410);
    assert_eq!(status_of(&app, "ana@example.com").await, ["pending"]);

    // Forged tokens, for both kinds of link.
    let forged = visitor
        .get("/subscriptions/confirm?token=0000000000000000000000000000000000000000000000000000000000000000")
        .await;
    assert_eq!(forged.status, 404);
    assert!(forged.body.contains("This link is not valid"));
    let unsubscribe = first.header("List-Unsubscribe").unwrap();
    let unsubscribe = unsubscribe.trim_matches(['<', '>']);
    let (id, _) = unsubscribe
        .rsplit_once("token=")
        .unwrap()
        .1
        .split_once('.')
        .unwrap();
    let forged = visitor
        .get(&format!(
            "/unsubscribe?token={id}.00000000000000000000000000000000"
        ))
        .await;
    assert_eq!(forged.status, 404);
    let forged_post = visitor
        .post(
            &format!("/unsubscribe?token={id}.00000000000000000000000000000000"),
            &[("List-Unsubscribe", "One-Click")],
        )
        .await;
    assert_eq!(forged_post.status, 404);
    assert_eq!(status_of(&app, "ana@example.com").await, ["pending"]);

    // Act: ask for a new link from the expired page.
    let resent = visitor
        .post("/subscriptions/resend", &[("token", &token)])
        .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    assert!(resent.body.contains("Check your inbox"));

    // Assert: the new link confirms.
    let second = nth_mail(&sink, 2).await;
    confirm(&app, &mut visitor, &second).await;
    assert_eq!(status_of(&app, "ana@example.com").await, ["confirmed"]);
}

#[actix_web::test]
async fn unsubscribing_by_the_page_and_by_one_click_post() {
    // Arrange: two confirmed subscriptions.
    let sink = SmtpSink::start();
    let app = app_with_mail(Backend::Sqlite, &sink, &[]).await;
    let mut visitor = Visitor::new(&app);
    subscribe(&mut visitor, "/", &[("email", "ana@example.com")]).await;
    confirm(&app, &mut visitor, &nth_mail(&sink, 1).await).await;
    subscribe(&mut visitor, "/", &[("email", "bob@example.com")]).await;
    let bob_mail = first_mail_to(&sink, "bob@example.com").await;
    confirm(&app, &mut visitor, &bob_mail).await;
    let ana_mail = nth_mail(&sink, 1).await;

    // Act: Ana opens the visible link; the page asks, and changes nothing.
    let visible = ana_mail
        .link(&format!("{}/unsubscribe?token=", app.base))
        .expect("a visible unsubscribe link");
    assert!(ana_mail.html.contains(&visible));
    let page = visitor.get(path_of(&app, &visible)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Stop sending"), "{}", page.body);
    assert_eq!(status_of(&app, "ana@example.com").await, ["confirmed"]);
    let token = hidden(&page.body, "token").unwrap();
    let done = visitor.post("/unsubscribe", &[("token", &token)]).await;

    // Assert
    assert_eq!(done.status, 200);
    assert!(done.body.contains("no longer receives"), "{}", done.body);
    assert_eq!(status_of(&app, "ana@example.com").await, ["unsubscribed"]);

    // Act: Bob's mail client posts to List-Unsubscribe (RFC 8058).
    let header = bob_mail.header("List-Unsubscribe").unwrap();
    let url = header.trim_matches(['<', '>']);
    let resp = app
        .client
        .post(url)
        .send_form(&[("List-Unsubscribe", "One-Click")])
        .await
        .expect("one-click post");

    // Assert: done, and doing it again is harmless.
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(status_of(&app, "bob@example.com").await, ["unsubscribed"]);
    let again = app
        .client
        .post(url)
        .send_form(&[("List-Unsubscribe", "One-Click")])
        .await
        .expect("second one-click post");
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(status_of(&app, "bob@example.com").await, ["unsubscribed"]);
}

async fn a_crawl_with_price_drops_mails_the_digest_to_confirmed_subscribers_only(backend: Backend) {
    // Arrange: a first crawl, then three addresses: confirmed, pending,
    // and confirmed then unsubscribed.
    let sink = SmtpSink::start();
    let app = app_with_mail(backend, &sink, &[]).await;
    crawl(&app).await;
    let mut visitor = Visitor::new(&app);
    subscribe(&mut visitor, "/", &[("email", "ana@example.com")]).await;
    confirm(&app, &mut visitor, &nth_mail(&sink, 1).await).await;
    subscribe(&mut visitor, "/", &[("email", "bob@example.com")]).await;
    nth_mail(&sink, 2).await;
    subscribe(&mut visitor, "/", &[("email", "cy@example.com")]).await;
    let cy = nth_mail(&sink, 3).await;
    confirm(&app, &mut visitor, &cy).await;
    let url = cy.header("List-Unsubscribe").unwrap();
    app.client
        .post(url.trim_matches(['<', '>']))
        .send_form(&[("List-Unsubscribe", "One-Click")])
        .await
        .expect("unsubscribe cy");

    // Act: the stores lower prices; crawl again.
    set_seed(&app, 2).await;
    let second = crawl(&app).await;
    outbox_settled(&app).await;

    // Assert: one digest, to Ana alone.
    let drops = app
        .count(&format!(
            "SELECT COUNT(*) FROM changes WHERE crawl_id = {second} AND kind = 'price_drop'"
        ))
        .await;
    assert!(drops > 0, "seed 2 lowers prices");
    let all = mails(&sink);
    assert_eq!(all.len(), 4, "three confirmations and one digest");
    let digest = &all[3];
    assert_eq!(
        digest.header("X-Rcpt-To").as_deref(),
        Some("ana@example.com")
    );
    assert_eq!(
        digest.header("Subject"),
        Some(format!("Bazaar: {drops} price drops"))
    );
    assert!(digest.text.contains("Price drops"), "{}", digest.text);
    assert!(digest.text.contains(" -> "), "old -> new: {}", digest.text);
    assert!(digest.html.contains(" → "), "{}", digest.html);
    assert!(digest.header("List-Unsubscribe-Post").is_some());
    assert!(digest
        .text
        .contains(&format!("{}/unsubscribe?token=", app.base)));

    // Its game links work.
    let game_link = digest
        .link(&format!("{}/games/", app.base))
        .expect("a game link");
    let page = visitor.get(path_of(&app, &game_link)).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Price alert"),
        "the game page offers an alert"
    );

    // A crawl that changes nothing mails nothing.
    crawl(&app).await;
    outbox_settled(&app).await;
    assert_eq!(sink.received().len(), 4);
}
on_both_backends!(a_crawl_with_price_drops_mails_the_digest_to_confirmed_subscribers_only);

#[actix_web::test]
async fn a_price_alert_fires_once_per_crossing_below_its_target() {
    // Arrange: learn a game whose price drops from seed 1 to seed 2, then
    // go back to seed 1 and set an alert at its seed-2 price.
    let sink = SmtpSink::start();
    let app = app_with_mail(Backend::Sqlite, &sink, &[]).await;
    crawl(&app).await;
    let before = best_prices(&app).await;
    set_seed(&app, 2).await;
    crawl(&app).await;
    let after = best_prices(&app).await;
    let (game, high, low) = before
        .iter()
        .zip(&after)
        .find_map(|((id, high), (_, low))| (low < high).then_some((*id, *high, *low)))
        .expect("seed 2 lowers some best price");
    set_seed(&app, 1).await;
    crawl(&app).await;
    assert_eq!(best_prices(&app).await, before);
    let mut visitor = Visitor::new(&app);
    let target = format!("{}.{:02}", low / 100, low % 100);
    subscribe(
        &mut visitor,
        &format!("/games/{game}"),
        &[
            ("email", "ana@example.com"),
            ("game", &game.to_string()),
            ("target", &target),
        ],
    )
    .await;
    let confirmation = nth_mail(&sink, 1).await;
    assert!(confirmation
        .header("Subject")
        .unwrap()
        .starts_with("Confirm your price alert for "));
    confirm(&app, &mut visitor, &confirmation).await;
    crawl(&app).await;
    outbox_settled(&app).await;
    assert_eq!(
        sink.received().len(),
        1,
        "{high} is above the target: no alert"
    );

    // Act: the price drops to the target.
    set_seed(&app, 2).await;
    crawl(&app).await;

    // Assert: one alert.
    let alert = nth_mail(&sink, 2).await;
    assert_eq!(
        alert.header("X-Rcpt-To").as_deref(),
        Some("ana@example.com")
    );
    let subject = alert.header("Subject").unwrap();
    assert!(subject.starts_with("Price alert: "), "{subject}");
    assert!(alert.text.contains(&format!("{}/games/{game}", app.base)));
    assert!(alert
        .header("List-Id")
        .unwrap()
        .starts_with("Bazaar price alerts"));

    // Act / Assert: still low after another crawl: no second alert.
    crawl(&app).await;
    outbox_settled(&app).await;
    assert_eq!(sink.received().len(), 2);

    // Act / Assert: up again, then down again: a second alert.
    set_seed(&app, 1).await;
    crawl(&app).await;
    set_seed(&app, 2).await;
    crawl(&app).await;
    nth_mail(&sink, 3).await;
    outbox_settled(&app).await;
    assert_eq!(sink.received().len(), 3);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE kind = 'alert'")
            .await,
        2
    );
}

/// Every game's best price, by id.
async fn best_prices(app: &TestApp) -> Vec<(i64, i64)> {
    app.rows("SELECT id, best_cents FROM games WHERE best_cents IS NOT NULL ORDER BY id")
        .await
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect()
}

#[actix_web::test]
async fn a_confirmed_alert_moves_to_a_new_target_once_the_mailed_link_confirms_it() {
    // Arrange: Ana's confirmed alert on a game at 0.02, below any price, so
    // that no alert mail comes between the confirmations.
    let sink = SmtpSink::start();
    let app = app_with_mail(Backend::Sqlite, &sink, &[]).await;
    crawl(&app).await;
    let game = best_prices(&app).await[0].0.to_string();
    let page = format!("/games/{game}");
    let mut visitor = Visitor::new(&app);
    let alert = |target: &'static str| {
        [
            ("email", "ana@example.com"),
            ("game", game.as_str()),
            ("target", target),
        ]
    };
    subscribe(&mut visitor, &page, &alert("0.02")).await;
    confirm(&app, &mut visitor, &nth_mail(&sink, 1).await).await;
    let targets = || app.rows("SELECT target_cents, pending_target_cents FROM subscriptions");

    // Act: she asks for the same game at 0.01.
    let asked = subscribe(&mut visitor, &page, &alert("0.01")).await;

    // Assert: a link to confirm the change; the alert keeps 0.02 until then.
    assert!(asked.contains("keeps its current target"), "{asked}");
    assert_eq!(targets().await, [["2", "1"]]);
    let mail = nth_mail(&sink, 2).await;
    assert!(mail.text.contains("0.01"), "{}", mail.text);

    // Act: she follows it.
    confirm(&app, &mut visitor, &mail).await;

    // Assert: the alert now watches 0.01, and asking for it again changes
    // nothing and mails nothing.
    assert_eq!(targets().await, [["1", ""]]);
    let again = subscribe(&mut visitor, &page, &alert("0.01")).await;
    assert!(again.contains("Already subscribed"), "{again}");
    outbox_settled(&app).await;
    assert_eq!(sink.received().len(), 2);
}
