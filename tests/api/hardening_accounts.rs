//! Accounts and admin views under hostile or changing conditions: where a
//! login may send the browser, registrations and password checks under a
//! flood, admin event streams and sockets that outlive their session or
//! rights, and what the public workers list gives away.

use std::time::Duration;

use awc::http::header;
use awc::ws::Message;
use futures_util::StreamExt;
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::accounts::{hidden, Visitor};
use crate::auction_pages::account;
use crate::chat_client::{ChatClient, Ended};
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};
use crate::worker_protocol::{recv_op, send};

/// A server with `settings` (`BAZAAR_...` variables) on SQLite.
async fn app_with(settings: &[(&str, &str)]) -> TestApp {
    let env = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    spawn_app(
        Backend::Sqlite,
        AppOptions {
            env,
            ..AppOptions::default()
        },
    )
    .await
}

/// `next` values that lead off the site, as they appear in a query string.
const AWAY: [&str; 12] = [
    // The reported probe: the tab is dropped by browsers, leaving `//`.
    "/%09/evil.example",
    "/%0A/evil.example",
    "/%0D%0A/evil.example",
    "%09//evil.example",
    "//evil.example",
    "/%5Cevil.example",
    "%5C%5Cevil.example",
    "/%2F/evil.example",
    "/%252F/evil.example",
    "https://evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
];

#[actix_web::test]
async fn after_logging_in_the_browser_is_sent_only_to_paths_on_this_site() {
    // Arrange: a logged-in visitor (GET /login sends them on at once) and
    // one logging in.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = Visitor::new(&app);
    assert_eq!(
        ana.register("ana", "Ana", "correct horse").await.status,
        303
    );
    let mut bob = Visitor::new(&app);
    assert_eq!(
        bob.register("bob", "Bob", "correct horse").await.status,
        303
    );
    let csrf = hidden(&bob.get("/account").await.body, "csrf").expect("logout token");
    assert_eq!(bob.post("/logout", &[("csrf", &csrf)]).await.status, 303);

    for away in AWAY {
        // Act
        let followed = ana.get(&format!("/login?next={away}")).await;
        let csrf = bob.token(&format!("/login?next={away}")).await;
        let decoded: String = url::form_urlencoded::parse(format!("n={away}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .collect();
        let logged_in = bob
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("name", "bob"),
                    ("password", "correct horse"),
                    ("next", &decoded),
                ],
            )
            .await;

        // Assert
        assert_eq!(followed.status, 303, "{away}");
        assert_eq!(followed.location.as_deref(), Some("/"), "{away}");
        assert_eq!(logged_in.status, 303, "{away}: {}", logged_in.body);
        assert_eq!(logged_in.location.as_deref(), Some("/"), "{away}");
        let csrf = hidden(&bob.get("/account").await.body, "csrf").expect("logout token");
        assert_eq!(bob.post("/logout", &[("csrf", &csrf)]).await.status, 303);
    }
    let kept = ana
        .get("/login?next=%2Fgames%3Fq%3Dhollow%2520knight")
        .await;
    assert_eq!(kept.location.as_deref(), Some("/games?q=hollow%20knight"));
}

#[actix_web::test]
async fn registrations_past_the_limit_per_address_are_refused_with_429() {
    // Arrange
    let app = app_with(&[("BAZAAR_ACCOUNTS__REGISTRATIONS_PER_ADDRESS", "2")]).await;
    for name in ["ana", "bob"] {
        let page = Visitor::new(&app)
            .register(name, name, "correct horse")
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
    }

    // Act: a third from the same address, and one that cannot be valid.
    let third = Visitor::new(&app)
        .register("cy", "Cy", "correct horse")
        .await;
    let typo = Visitor::new(&app).register("dee", "Dee", "short").await;

    // Assert: the third is refused and stored nothing; a form error is
    // still explained as one.
    assert_eq!(third.status, 429, "{}", third.body);
    // Within the default hour: the first two were just made.
    let wait = third.retry_after_secs();
    assert!((3000..=3600).contains(&wait), "Retry-After: {wait}");
    assert!(
        third
            .body
            .contains("Too many accounts were registered from your address"),
        "{}",
        third.body
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 2);
    assert_eq!(typo.status, 400, "{}", typo.body);
    assert!(typo.body.contains("8-256 characters"), "{}", typo.body);
}

#[actix_web::test]
async fn password_checks_beyond_what_may_wait_are_answered_503_at_once() {
    // Arrange: one hash at a time, so at most nine checks are in line.
    let app = app_with(&[("BAZAAR_ACCOUNTS__PASSWORD_HASHES", "1")]).await;
    let mut visitor = Visitor::new(&app);
    let csrf = visitor.token("/login").await;
    let cookie = visitor.cookie_header();

    // Act: thirty logins at once, each for a name of its own.
    let logins = (0..30).map(|i| {
        let request = app
            .client
            .post(format!("{}/login", app.base))
            .insert_header((header::COOKIE, cookie.clone()));
        let form = [
            ("csrf", csrf.clone()),
            ("name", format!("nobody{i}")),
            ("password", "wrong password".to_owned()),
        ];
        async move {
            let mut resp = request.send_form(&form).await.expect("login");
            let body = resp.body().await.expect("body");
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .map(|wait| wait.to_str().expect("ascii").to_owned());
            (
                resp.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
                retry_after,
            )
        }
    });
    let answers = futures_util::future::join_all(logins).await;

    // Assert: some were checked (401), the rest told the server is busy.
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, ..)| *status == 503)
        .collect();
    let checked = answers.iter().filter(|(status, ..)| *status == 401).count();
    assert!(!busy.is_empty(), "{answers:?}");
    assert!(checked >= 1, "{answers:?}");
    assert_eq!(busy.len() + checked, answers.len(), "{answers:?}");
    assert!(
        busy[0].1.contains("busy checking other passwords"),
        "{}",
        busy[0].1
    );
    // Each busy answer says when to come back.
    assert!(
        busy.iter().all(|(.., wait)| wait.as_deref() == Some("5")),
        "{busy:?}"
    );
}

/// Opens `/admin/events` as `admin`; the response, once its first event
/// has come.
async fn admin_events(
    app: &TestApp,
    admin: &Visitor<'_>,
) -> awc::ClientResponse<
    impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
> {
    let mut events = app
        .client
        .get(format!("{}/admin/events", app.base))
        .insert_header((header::COOKIE, admin.cookie_header()))
        .send()
        .await
        .expect("GET /admin/events");
    assert_eq!(events.status().as_u16(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a first event")
        .expect("the stream is open")
        .expect("bytes");
    assert!(first.starts_with(b"data: "), "{first:?}");
    events
}

/// Reads `events` until it ends; panics if it is still open after
/// `within`.
async fn ends_within(
    events: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
    within: Duration,
) {
    let ended = tokio::time::timeout(within, async {
        while let Some(Ok(_)) = events.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream is still open");
}

#[actix_web::test]
async fn the_admin_event_stream_ends_when_the_account_is_no_longer_an_admin() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let root = account(&app, "root", true).await;
    let mut events = admin_events(&app, &root).await;

    // Act: an operator takes the rights away in the database.
    app.db
        .execute_unprepared("UPDATE users SET is_admin = false WHERE name = 'root'")
        .await
        .expect("revoke");

    // Assert
    ends_within(&mut events, Duration::from_secs(5)).await;
}

#[actix_web::test]
async fn the_admin_event_stream_ends_when_the_admin_logs_out_elsewhere() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    let mut events = admin_events(&app, &root).await;

    // Act
    let csrf = hidden(&root.get("/account").await.body, "csrf").expect("logout token");
    assert_eq!(root.post("/logout", &[("csrf", &csrf)]).await.status, 303);

    // Assert
    ends_within(&mut events, Duration::from_secs(5)).await;
}

#[actix_web::test]
async fn a_socket_is_signed_out_and_closed_with_4401_when_its_login_session_expires() {
    // Arrange: sessions of four seconds; a socket in the lobby as Ana.
    let app = app_with(&[("BAZAAR_ACCOUNTS__SESSION_LIFETIME", "4s")]).await;
    let mut ana = Visitor::new(&app);
    assert_eq!(
        ana.register("ana", "Ana", "correct horse").await.status,
        303
    );
    let mut socket = ChatClient::connect_with_cookie(&app, &ana.cookie_header())
        .await
        .expect("connect");
    socket.join("chat:lobby", None).await;

    // Act: wait out the session.
    let mut frames = Vec::new();
    let end = loop {
        match socket.next_frame(Duration::from_secs(8)).await {
            Ok(frame) => frames.push(frame),
            Err(end) => break end,
        }
    };

    // Assert: told it is no one, then closed with the expiry's code; a new
    // socket with the same cookie is refused.
    assert!(
        frames.contains(&json!({"op": "session", "user": null})),
        "{frames:?}"
    );
    assert!(matches!(end, Ended::Closed(Some(4401))), "{end:?}");
    let again = ChatClient::connect_with_cookie(&app, &ana.cookie_header()).await;
    assert!(
        matches!(again, Err(Ended::Refused(401))),
        "{:?}",
        again.err()
    );
}

#[actix_web::test]
async fn the_public_workers_list_leaves_out_addresses_which_operators_still_see() {
    // Arrange: a worker connected by hand; an admin and a member.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let (_, mut socket) = awc::Client::new()
        .ws(format!("{}/ws/worker", app.ws))
        .bearer_auth(&app.worker_token)
        .connect()
        .await
        .expect("connect");
    send(
        &mut socket,
        json!({"op":"hello","name":"listed","version":"test","slots":1,"sites":["*"]}),
    )
    .await;
    recv_op(&mut socket, "welcome").await;
    let root = account(&app, "root", true).await;
    let ana = account(&app, "ana", false).await;
    let get = |cookie: Option<String>, token: Option<&str>| {
        let mut request = app.client.get(format!("{}/api/workers", app.base));
        if let Some(cookie) = cookie {
            request = request.insert_header((header::COOKIE, cookie));
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let mut resp = request.send().await.expect("GET /api/workers");
            assert_eq!(resp.status().as_u16(), 200);
            let body: Value = resp.json().await.expect("json");
            body["workers"][0].clone()
        }
    };

    // Act
    let public = get(None, None).await;
    let member = get(Some(ana.cookie_header()), None).await;
    let by_token = get(None, Some(&app.api_token)).await;
    let by_admin = get(Some(root.cookie_header()), None).await;

    // Assert
    for seen in [&public, &member] {
        assert_eq!(seen["name"], "listed", "{seen}");
        assert_eq!(seen["slots"], 1, "{seen}");
        assert!(seen.get("address").is_none(), "{seen}");
        assert!(seen.get("tasks").is_none(), "{seen}");
    }
    for seen in [&by_token, &by_admin] {
        assert_eq!(seen["address"], "127.0.0.1", "{seen}");
        assert!(seen["tasks"].is_array(), "{seen}");
    }
    let _ = futures_util::SinkExt::send(&mut socket, Message::Close(None)).await;
}
