//! The auction lots' admin page and its JSON mirror over real HTTP: real lots
//! of every status with their reserve, outcome and actions; cancelling from
//! the page or the API, the audit row it leaves and the watchers it tells;
//! and who is turned away.

use chrono::TimeDelta;
use serde_json::{json, Value};

use crate::accounts::{hidden, Visitor};
use crate::auction_pages::{account, list_lot, lot_fields, wait_status, with};
use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};
use crate::on_both_backends;

/// A title an admin could paste without looking.
const HOSTILE: &str = "<script>alert(1)</script>";

/// A lot that opens in an hour and runs a day, at 12.50 EUR.
fn later(title: &str) -> Vec<(&'static str, String)> {
    lot_fields(title, TimeDelta::hours(1), TimeDelta::days(1))
}

/// A lot that opens at once and runs `runs`.
fn now(title: &str, runs: TimeDelta) -> Vec<(&'static str, String)> {
    lot_fields(title, TimeDelta::seconds(-1), runs)
}

/// Bids `cents` on lot `id` as `bidder` and waits for the reply.
async fn bid(app: &TestApp, bidder: &Visitor<'_>, id: i64, cents: i64) {
    let mut socket = ChatClient::connect_with_cookie(app, &bidder.cookie_header())
        .await
        .expect("the bidder's socket");
    let topic = format!("auction:{id}");
    socket.join(&topic, None).await;
    let reply = socket
        .request(json!({"op": "bid", "topic": topic, "amount_cents": cents}))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    socket.close().await;
}

/// The table row of lot `id` on an auctions page.
fn row(page: &str, id: i64) -> &str {
    page.split(&format!("<tr id=\"lot-{id}\""))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row for lot {id}: {page}"))
}

/// The CSRF token on the auctions page.
async fn csrf(admin: &mut Visitor<'_>) -> String {
    let page = admin.get("/admin/auctions").await;
    assert_eq!(page.status, 200, "{}", page.body);
    hidden(&page.body, "csrf").expect("a form token")
}

async fn status_of(app: &TestApp, id: i64) -> Vec<Vec<String>> {
    app.rows(&format!("SELECT status, outcome FROM lots WHERE id = {id}"))
        .await
}

/// The lot cancellations in the audit log: object kind, id and who.
async fn cancellations(app: &TestApp) -> Vec<Vec<String>> {
    app.rows(
        "SELECT object_kind, object_id, user_name FROM audit_log \
         WHERE action = 'lot.cancel' ORDER BY id",
    )
    .await
}

/// `GET` on the admin API with the API token: the status and the body.
async fn api_get(app: &TestApp, path: &str) -> (u16, Value) {
    let mut resp = app
        .client
        .get(format!("{}/api/admin{path}", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .expect("GET");
    let body = resp.json().await.expect("json");
    (resp.status().as_u16(), body)
}

async fn the_auctions_page_lists_every_lot_with_its_reserve_outcome_and_actions(backend: Backend) {
    // Arrange: a lot of each status. The running one has a 2-minute soft
    // close, so a bid now moves its end.
    let app = spawn_app(backend, AppOptions::default()).await;
    let mut admin = account(&app, "root", true).await;
    let ana = account(&app, "ana", false).await;
    let scheduled = list_lot(&mut admin, &with(&later("Chrono Trigger"), "reserve", "20")).await;
    let running = list_lot(
        &mut admin,
        &with(
            &now("Earthbound", TimeDelta::seconds(30)),
            "soft_close",
            "120",
        ),
    )
    .await;
    let sold = list_lot(&mut admin, &now("Mother 3", TimeDelta::seconds(5))).await;
    let cancelled = list_lot(&mut admin, &later("Secret of Mana")).await;
    wait_status(&app, running, "running").await;
    wait_status(&app, sold, "running").await;
    bid(&app, &ana, sold, 1_250).await;
    bid(&app, &ana, running, 1_300).await;
    let token = csrf(&mut admin).await;
    let done = admin
        .post(
            &format!("/admin/auctions/{cancelled}/cancel"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    wait_status(&app, sold, "finished").await;

    // Act
    let page = admin.get("/admin/auctions").await;

    // Assert: newest first, each with what an admin may do with it.
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(
        body.contains("<a href=\"/admin/auctions\" aria-current=\"page\">Auctions</a>"),
        "{body}"
    );
    assert!(body.contains("<a href=\"/auctions/new\">New lot</a>"));
    assert!(body.contains("Page 1 of 1 · 4 in all"), "{body}");
    let at = |id| body.find(&format!("<tr id=\"lot-{id}\"")).unwrap();
    assert!(at(cancelled) < at(sold) && at(sold) < at(running) && at(running) < at(scheduled));

    let r = row(body, scheduled);
    assert!(
        r.contains(&format!(
            "<td><a href=\"/auctions/{scheduled}\">Chrono Trigger</a></td><td>scheduled</td>"
        )),
        "{r}"
    );
    assert!(
        r.contains(
            "<td>12.50 EUR</td><td>20.00 EUR</td><td>not met</td>\n      <td>0</td><td></td>"
        ),
        "{r}"
    );
    assert!(r.contains(&format!("href=\"/auctions/{scheduled}/edit\">Edit</a>")));
    assert!(r.contains(&format!("action=\"/admin/auctions/{scheduled}/cancel\"")));
    assert!(!r.contains("extended"), "{r}");

    let r = row(body, running);
    assert!(r.contains("<td>running</td>"), "{r}");
    assert!(
        r.contains("(extended from "),
        "soft close moved its end: {r}"
    );
    assert!(
        r.contains("<td>13.00 EUR</td><td>none</td><td></td>\n      <td>1</td><td></td>"),
        "{r}"
    );
    assert!(!r.contains("Edit"), "a running lot is not edited: {r}");
    assert!(r.contains(&format!("action=\"/admin/auctions/{running}/cancel\"")));
    // Withdrawing a lot people bid on asks twice: the button is behind a
    // summary to open first.
    assert!(
        r.contains(&format!(
            "<summary>Cancel…</summary><form method=\"post\" action=\"/admin/auctions/{running}/cancel\""
        )),
        "{r}"
    );

    let r = row(body, sold);
    assert!(r.contains("<td>finished</td>"), "{r}");
    assert!(
        r.contains("<td>12.50 EUR</td><td>none</td><td></td>\n      <td>1</td><td>Sold to ana for 12.50 EUR</td>"),
        "{r}"
    );
    assert!(!r.contains("Edit") && !r.contains("<form"), "{r}");

    let r = row(body, cancelled);
    assert!(r.contains("<td>cancelled</td>"), "{r}");
    assert!(
        r.contains("<td>Cancelled: this lot was withdrawn</td>"),
        "{r}"
    );
    assert!(!r.contains("Edit") && !r.contains("<form"), "{r}");

    // One status at a time.
    for (status, id) in [
        ("scheduled", scheduled),
        ("running", running),
        ("finished", sold),
        ("cancelled", cancelled),
    ] {
        let page = admin.get(&format!("/admin/auctions?status={status}")).await;
        assert_eq!(page.status, 200, "{status}: {}", page.body);
        assert!(page.body.contains("Page 1 of 1 · 1 in all"), "{status}");
        assert!(
            page.body.contains(&format!("<tr id=\"lot-{id}\"")),
            "{status}"
        );
        assert!(page.body.contains(&format!(
            "<a href=\"/admin/auctions?status={status}\" aria-current=\"page\">{status}</a>"
        )));
    }
    let bad = admin.get("/admin/auctions?status=sold").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains(
            "Status must be one of scheduled, running, finished, cancelled (not &#34;sold&#34;)."
        ),
        "{}",
        bad.body
    );
}
on_both_backends!(the_auctions_page_lists_every_lot_with_its_reserve_outcome_and_actions);

async fn cancelling_from_the_auctions_page_withdraws_the_lot_tells_its_watchers_and_comes_back(
    backend: Backend,
) {
    // Arrange: a running lot with a watcher.
    let app = spawn_app(backend, AppOptions::default()).await;
    let mut admin = account(&app, "root", true).await;
    let id = list_lot(&mut admin, &now("Star Fox", TimeDelta::hours(1))).await;
    wait_status(&app, id, "running").await;
    let mut watcher = ChatClient::connect(&app, Some("wanda"))
        .await
        .expect("watcher");
    let seq = watcher.join(&format!("auction:{id}"), None).await["seq"]
        .as_u64()
        .expect("seq");
    let token = csrf(&mut admin).await;

    // Act
    let done = admin
        .post(&format!("/admin/auctions/{id}/cancel"), &[("csrf", &token)])
        .await;

    // Assert: withdrawn, audited, watchers told, and back to the list.
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/admin/auctions"));
    assert_eq!(status_of(&app, id).await, [["cancelled", "cancelled"]]);
    assert_eq!(
        cancellations(&app).await,
        [["lot", &id.to_string(), "root"]]
    );
    let event = watcher.recv_op("lot").await;
    assert_eq!(event["lot"]["status"], "cancelled", "{event}");
    assert!(event["seq"].as_u64() > Some(seq), "{event}");
    let r = admin.get("/admin/auctions").await.body;
    assert!(!row(&r, id).contains("<form"), "{r}");
    watcher.close().await;
}
on_both_backends!(
    cancelling_from_the_auctions_page_withdraws_the_lot_tells_its_watchers_and_comes_back
);

#[actix_web::test]
async fn a_lot_that_has_ended_or_does_not_exist_is_not_cancelled() {
    // Arrange: one lot that has finished, one already cancelled.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut admin = account(&app, "root", true).await;
    let finished = list_lot(&mut admin, &now("Mother 3", TimeDelta::seconds(3))).await;
    let cancelled = list_lot(&mut admin, &later("Secret of Mana")).await;
    let token = csrf(&mut admin).await;
    let first = admin
        .post(
            &format!("/admin/auctions/{cancelled}/cancel"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(first.status, 303, "{}", first.body);
    wait_status(&app, finished, "finished").await;

    // Act
    let on_finished = admin
        .post(
            &format!("/admin/auctions/{finished}/cancel"),
            &[("csrf", &token)],
        )
        .await;
    let again = admin
        .post(
            &format!("/admin/auctions/{cancelled}/cancel"),
            &[("csrf", &token)],
        )
        .await;
    let unknown = admin
        .post("/admin/auctions/999/cancel", &[("csrf", &token)])
        .await;

    // Assert: refused with the reason, and nothing changed or audited.
    assert_eq!(on_finished.status, 409);
    assert!(
        on_finished.body.contains(&format!(
            "Lot {finished} is finished: only a scheduled or running lot can be cancelled."
        )),
        "{}",
        on_finished.body
    );
    assert_eq!(again.status, 409);
    assert!(
        again.body.contains(&format!(
            "Lot {cancelled} is cancelled: only a scheduled or running lot can be cancelled."
        )),
        "{}",
        again.body
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(status_of(&app, finished).await, [["finished", "no_bids"]]);
    assert_eq!(
        cancellations(&app).await,
        [["lot", &cancelled.to_string(), "root"]]
    );
}

#[actix_web::test]
async fn cancelling_without_the_token_by_a_member_or_a_visitor_changes_nothing() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut admin = account(&app, "root", true).await;
    let mut member = account(&app, "ana", false).await;
    let mut visitor = Visitor::new(&app);
    let id = list_lot(&mut admin, &later("Chrono Trigger")).await;
    let member_token = hidden(&member.get("/account").await.body, "csrf").unwrap();
    let path = format!("/admin/auctions/{id}/cancel");
    let api = format!("{}/api{path}", app.base);

    // Act
    let forged = admin.post(&path, &[("csrf", "forged")]).await;
    let missing = admin.post(&path, &[]).await;
    let by_member = member.post(&path, &[("csrf", &member_token)]).await;
    let member_page = member.get("/admin/auctions").await;
    let visitor_page = visitor.get("/admin/auctions").await;
    let anonymous = app.client.post(&api).send().await.unwrap();
    let member_api = app
        .client
        .post(&api)
        .insert_header(("Cookie", member.cookie_header()))
        .insert_header(("X-CSRF-Token", member_token.clone()))
        .send()
        .await
        .unwrap();
    let cookie_alone = app
        .client
        .post(&api)
        .insert_header(("Cookie", admin.cookie_header()))
        .send()
        .await
        .unwrap();
    let anonymous_list = app
        .client
        .get(format!("{}/api/admin/auctions", app.base))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!([forged.status, missing.status, by_member.status], [403; 3]);
    assert_eq!(member_page.status, 403);
    assert_eq!(visitor_page.status, 303);
    assert_eq!(
        visitor_page.location.as_deref(),
        Some("/login?next=%2Fadmin%2Fauctions")
    );
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(member_api.status().as_u16(), 403);
    assert_eq!(cookie_alone.status().as_u16(), 403);
    assert_eq!(anonymous_list.status().as_u16(), 401);
    assert_eq!(status_of(&app, id).await, [["scheduled", ""]]);
    assert!(cancellations(&app).await.is_empty());
}

#[actix_web::test]
async fn the_api_lists_lots_with_their_reserve_and_cancels_them_for_the_token_and_admin_sessions() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut admin = account(&app, "root", true).await;
    let reserved = list_lot(&mut admin, &with(&later("Chrono Trigger"), "reserve", "20")).await;
    let plain = list_lot(&mut admin, &later("Secret of Mana")).await;
    let session_csrf = csrf(&mut admin).await;

    // Act / Assert: the list, newest first, reserve included.
    let (status, list) = api_get(&app, "/auctions").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 2);
    assert_eq!(list["page"], 1);
    assert_eq!(list["pages"], 1);
    assert_eq!(list["items"][0]["id"], plain);
    let lot = &list["items"][1];
    assert_eq!(lot["id"], reserved);
    assert_eq!(lot["title"], "Chrono Trigger");
    assert_eq!(lot["status"], "scheduled");
    assert_eq!(lot["currency"], "EUR");
    assert_eq!(lot["current_cents"], 1_250);
    assert_eq!(lot["reserve_cents"], 2_000);
    assert_eq!(lot["reserve_met"], false);
    assert_eq!(lot["bid_count"], 0);
    assert_eq!(lot["ends_at"], lot["listed_ends_at"]);
    assert_eq!(lot["winner"], Value::Null);
    assert_eq!(list["items"][0]["reserve_cents"], Value::Null);
    assert!(
        lot.get("leader_max_cents").is_none(),
        "a bidder's maximum is theirs alone: {lot}"
    );
    let (status, running) = api_get(&app, "/auctions?status=running").await;
    assert_eq!(status, 200);
    assert_eq!(running["total"], 0);
    assert_eq!(running["items"], json!([]));
    let (status, bad) = api_get(&app, "/auctions?status=sold").await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["code"], "bad_request", "{bad}");

    // A cancel with the token is audited as the token.
    let mut resp = app
        .client
        .post(format!("{}/api/admin/auctions/{reserved}/cancel", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object_id"], reserved.to_string(), "{body}");
    assert_eq!(
        status_of(&app, reserved).await,
        [["cancelled", "cancelled"]]
    );

    // Once more: refused, with the reason and the lot.
    let mut resp = app
        .client
        .post(format!("{}/api/admin/auctions/{reserved}/cancel", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "error": {
                "code": "conflict",
                "message": format!(
                    "lot {reserved} is cancelled: only a scheduled or running lot can be cancelled"
                ),
            },
            "id": reserved,
        })
    );
    let resp = app
        .client
        .post(format!("{}/api/admin/auctions/999/cancel", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    // An admin session with its CSRF header.
    let resp = app
        .client
        .post(format!("{}/api/admin/auctions/{plain}/cancel", app.base))
        .insert_header(("Cookie", admin.cookie_header()))
        .insert_header(("X-CSRF-Token", session_csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        cancellations(&app).await,
        [
            ["lot", &reserved.to_string(), "api-token"],
            ["lot", &plain.to_string(), "root"]
        ]
    );
    let (_, cancelled) = api_get(&app, "/auctions?status=cancelled").await;
    assert_eq!(cancelled["total"], 2);
    assert_eq!(cancelled["items"][0]["outcome"], "cancelled");
}

#[actix_web::test]
async fn a_hostile_lot_title_is_shown_escaped_on_the_auctions_page() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut admin = account(&app, "root", true).await;
    let id = list_lot(&mut admin, &later(HOSTILE)).await;

    // Act
    let page = admin.get("/admin/auctions").await;

    // Assert: askama writes numeric entities: &#60; is <, &#62; is >.
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(HOSTILE), "unescaped: {}", page.body);
    assert!(
        row(&page.body, id).contains(&format!(
            "<a href=\"/auctions/{id}\">&#60;script&#62;alert(1)&#60;/script&#62;</a>"
        )),
        "{}",
        page.body
    );
}
