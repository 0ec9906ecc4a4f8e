//! Whose address a request counts as: the TCP peer, unless the peer is in
//! `server.trusted_proxies`; then the client its `X-Forwarded-For` names.
//! Seen through the login throttle, the audit log and the workers list.

use awc::ws::Message;
use serde_json::{json, Value};

use crate::accounts::Visitor;
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};
use crate::worker_protocol::{recv_op, send};

const FORWARDED_FOR: &str = "X-Forwarded-For";

/// A server allowing two failed logins per client address (and plenty per
/// name), trusting `proxies` (none when empty).
async fn app_trusting(proxies: &str) -> TestApp {
    let mut env = vec![(
        "BAZAAR_ACCOUNTS__LOGIN_ATTEMPTS_PER_ADDRESS".to_owned(),
        "2".to_owned(),
    )];
    if !proxies.is_empty() {
        env.push((
            "BAZAAR_SERVER__TRUSTED_PROXIES".to_owned(),
            proxies.to_owned(),
        ));
    }
    spawn_app(
        Backend::Sqlite,
        AppOptions {
            env,
            ..AppOptions::default()
        },
    )
    .await
}

/// A failed login for `name` by a visitor sending `X-Forwarded-For:
/// forwarded_for` (none when empty); the status of the answer.
async fn failed_login(app: &TestApp, forwarded_for: &str, name: &str) -> u16 {
    let mut visitor = Visitor::new(app);
    if !forwarded_for.is_empty() {
        visitor = visitor.with_header(FORWARDED_FOR, forwarded_for);
    }
    visitor.login(name, "wrong password").await.status
}

/// Pauses the queue with the API token, sending `X-Forwarded-For:
/// forwarded_for`; the address the audit log shows for it.
async fn audited_address(app: &TestApp, forwarded_for: &str) -> Value {
    let resp = app
        .client
        .post(format!("{}/api/admin/queue/pause", app.base))
        .bearer_auth(&app.api_token)
        .insert_header((FORWARDED_FOR, forwarded_for))
        .send()
        .await
        .expect("pause");
    assert_eq!(resp.status().as_u16(), 200);
    let mut audit = app
        .client
        .get(format!("{}/api/admin/audit", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .expect("audit");
    let audit: Value = audit.json().await.expect("audit json");
    assert_eq!(audit["items"][0]["action"], "queue.pause", "{audit}");
    audit["items"][0]["address"].clone()
}

/// Connects a worker by hand, sending `X-Forwarded-For: forwarded_for`;
/// the address `/api/workers` lists it at for the API token.
async fn listed_worker_address(app: &TestApp, forwarded_for: &str) -> Value {
    let (_, mut socket) = awc::Client::new()
        .ws(format!("{}/ws/worker", app.ws))
        .bearer_auth(&app.worker_token)
        .set_header(FORWARDED_FOR, forwarded_for)
        .connect()
        .await
        .expect("connect");
    send(
        &mut socket,
        json!({"op":"hello","name":"proxied","version":"test","slots":1,"sites":["*"]}),
    )
    .await;
    recv_op(&mut socket, "welcome").await;
    // Only operators see workers' addresses.
    let mut listed = app
        .client
        .get(format!("{}/api/workers", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .expect("workers");
    assert_eq!(listed.status().as_u16(), 200);
    let body: Value = listed.json().await.expect("workers json");
    let address = body["workers"][0]["address"].clone();
    let _ = futures_util::SinkExt::send(&mut socket, Message::Close(None)).await;
    address
}

#[actix_web::test]
async fn without_trusted_proxies_a_forged_forwarded_for_does_not_dodge_the_address_throttle() {
    // Arrange
    let app = app_trusting("").await;

    // Act: each attempt claims to come from somewhere else.
    let first = failed_login(&app, "198.51.100.1", "ana").await;
    let second = failed_login(&app, "198.51.100.2", "bob").await;
    let third = failed_login(&app, "198.51.100.3", "cy").await;

    // Assert: all three came from 127.0.0.1, which has used its two.
    assert_eq!((first, second), (401, 401));
    assert_eq!(third, 429);
}

#[actix_web::test]
async fn without_trusted_proxies_the_audit_log_and_workers_list_show_the_real_peer() {
    let app = app_trusting("").await;

    assert_eq!(audited_address(&app, "203.0.113.7").await, "127.0.0.1");
    assert_eq!(
        listed_worker_address(&app, "203.0.113.7").await,
        "127.0.0.1"
    );
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_throttle_budget() {
    // Arrange: the test plays nginx on 127.0.0.1.
    let app = app_trusting(r#"["127.0.0.1"]"#).await;

    // Act: 203.0.113.7 uses its two failed logins.
    let first = failed_login(&app, "203.0.113.7", "ana").await;
    let second = failed_login(&app, "203.0.113.7", "bob").await;

    // Assert: it is refused, even when it puts another address on the left
    // of the one nginx appends; other clients, and the proxy itself, are not.
    assert_eq!((first, second), (401, 401));
    assert_eq!(failed_login(&app, "203.0.113.7", "cy").await, 429);
    assert_eq!(
        failed_login(&app, "203.0.113.8, 203.0.113.7", "cy").await,
        429
    );
    assert_eq!(failed_login(&app, "203.0.113.8", "cy").await, 401);
    assert_eq!(failed_login(&app, "", "cy").await, 401);
}

#[actix_web::test]
async fn behind_a_trusted_proxy_the_audit_log_and_workers_list_show_the_forwarded_client() {
    // A comma-separated list works in the environment too.
    let app = app_trusting("10.0.0.0/8, 127.0.0.1").await;

    assert_eq!(audited_address(&app, "203.0.113.7").await, "203.0.113.7");
    assert_eq!(
        listed_worker_address(&app, "198.51.100.1, 203.0.113.9, 10.0.0.2").await,
        "203.0.113.9"
    );
}

#[actix_web::test]
async fn behind_a_trusted_proxy_metrics_are_still_refused_to_relayed_requests() {
    // Arrange: nginx on loopback relays a client that is loopback too.
    let app = app_trusting("127.0.0.1").await;
    let scrape = |forwarded_for: Option<&str>| {
        let mut request = app.client.get(format!("{}/metrics", app.base));
        if let Some(forwarded_for) = forwarded_for {
            request = request.insert_header((FORWARDED_FOR, forwarded_for));
        }
        async move { request.send().await.expect("scrape").status().as_u16() }
    };

    // Act / Assert: a proxy on this machine relays the internet as well, so
    // only a request no proxy touched counts as local.
    assert_eq!(scrape(Some("127.0.0.1")).await, 403);
    assert_eq!(scrape(None).await, 200);
}
