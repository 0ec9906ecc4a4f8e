//! The auction pages over real HTTP: the list and a lot's page show real
//! lots, admins list, edit and cancel lots through the form (CSRF, strict
//! money and dates, nothing stored on a refusal), and everyone else is kept
//! out of it.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use crate::accounts::{hidden, Page, Visitor};
use crate::chat_client::ChatClient;
use crate::helpers::{run_bazaar, spawn_app, AppOptions, Backend, TestApp};
use crate::on_both_backends;

/// Every test account's password.
pub const PASSWORD: &str = "correct horse battery";

/// Makes an account the way an operator does: `bazaar admin create-user`,
/// with the password on stdin.
pub fn create_account(app: &TestApp, name: &str, admin: bool) {
    let mut args = vec!["admin", "create-user", name];
    if admin {
        args.push("--admin");
    }
    let made = run_bazaar(&args, &app.env_vars(), &format!("{PASSWORD}\n"));
    assert!(
        made.status.success(),
        "create-user {name}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// A new account, logged in.
pub async fn account<'a>(app: &'a TestApp, name: &str, admin: bool) -> Visitor<'a> {
    create_account(app, name, admin);
    let mut visitor = Visitor::new(app);
    let page = visitor.login(name, PASSWORD).await;
    assert_eq!(page.status, 303, "log in {name}: {}", page.body);
    visitor
}

/// A time as the form takes it (RFC 3339, to the millisecond).
fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A valid lot form: 12.50 EUR, opening in `opens_in`, running `runs`.
pub fn lot_fields(
    title: &str,
    opens_in: TimeDelta,
    runs: TimeDelta,
) -> Vec<(&'static str, String)> {
    let starts = Utc::now() + opens_in;
    vec![
        ("title", title.to_owned()),
        ("description", "Boxed, with the manual.".to_owned()),
        ("currency", "EUR".to_owned()),
        ("starting", "12.50".to_owned()),
        ("reserve", String::new()),
        ("starts_at", at(starts)),
        ("ends_at", at(starts + runs)),
        ("hard_end", String::new()),
        ("soft_close", "0".to_owned()),
    ]
}

/// `fields` with one changed.
pub fn with(
    fields: &[(&'static str, String)],
    name: &str,
    value: &str,
) -> Vec<(&'static str, String)> {
    fields
        .iter()
        .map(|(k, v)| {
            (
                *k,
                if *k == name {
                    value.to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

/// Posts `fields` to `path` with `csrf` (none when `None`).
async fn submit(
    visitor: &mut Visitor<'_>,
    path: &str,
    csrf: Option<&str>,
    fields: &[(&'static str, String)],
) -> Page {
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if let Some(csrf) = csrf {
        form.push(("csrf", csrf));
    }
    visitor.post(path, &form).await
}

/// Lists a lot through the admin form and returns its id.
pub async fn list_lot(admin: &mut Visitor<'_>, fields: &[(&'static str, String)]) -> i64 {
    let csrf = admin.token("/auctions/new").await;
    let page = submit(admin, "/auctions", Some(&csrf), fields).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.expect("a redirect to the lot");
    location
        .strip_prefix("/auctions/")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a lot page: {location}"))
}

/// Waits until the Scheduler has moved lot `id` to `status`.
pub async fn wait_status(app: &TestApp, id: i64, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let sql = format!("SELECT COUNT(*) FROM lots WHERE id = {id} AND status = '{status}'");
    while app.count(&sql).await == 0 {
        assert!(Instant::now() < deadline, "lot {id} never became {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the element with `id` in `html`, up to its first tag.
fn text_of<'h>(html: &'h str, id: &str) -> &'h str {
    let open = format!("id=\"{id}\"");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[start..];
    let rest = &rest[rest.find('>').expect("tag end") + 1..];
    rest[..rest.find('<').unwrap_or(rest.len())].trim()
}

/// The part of `html` from the element with `id` to the next section.
fn section<'h>(html: &'h str, id: &str) -> &'h str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &html[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

async fn lots_count(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM lots").await
}

async fn a_listed_lot_shows_on_the_list_and_on_its_page(backend: Backend) {
    let app = spawn_app(backend, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    let mut visitor = Visitor::new(&app);

    let empty = visitor.get("/auctions").await;
    assert_eq!(empty.status, 200);
    assert!(empty.body.contains("No lot is open for bids right now."));
    assert!(empty.body.contains("No lot is scheduled."));
    assert!(!empty.body.contains("New lot"), "only admins may list lots");
    let form = root.get("/auctions/new").await;
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains("in UTC"),
        "the form says its times are UTC"
    );
    assert!(form.body.contains("value=\"EUR\""), "EUR by default");
    assert!(
        form.body.contains("value=\"60\""),
        "a 60 s soft close by default"
    );
    assert!(
        section(&form.body, "increments").contains("<td>25.00</td>"),
        "the standard increments are shown"
    );
    assert!(root.get("/auctions").await.body.contains("New lot"));

    let id = list_lot(
        &mut root,
        &lot_fields("Chrono Trigger", TimeDelta::hours(1), TimeDelta::days(1)),
    )
    .await;

    let list = visitor.get("/auctions").await;
    let upcoming = section(&list.body, "upcoming");
    assert!(upcoming.contains(&format!("href=\"/auctions/{id}\">Chrono Trigger</a>")));
    assert!(upcoming.contains("12.50 EUR"), "{upcoming}");
    let page = visitor.get(&format!("/auctions/{id}")).await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains(&format!("data-lot=\"{id}\" data-topic=\"auction:{id}\"")));
    assert!(!body.contains("data-user"), "a visitor is nobody yet");
    assert!(body.contains("Boxed, with the manual."));
    assert_eq!(text_of(body, "lot-status"), "Not open yet");
    assert_eq!(text_of(body, "price"), "12.50 EUR");
    assert_eq!(text_of(body, "min-next"), "12.50 EUR");
    assert_eq!(text_of(body, "leader"), "no bids yet");
    assert!(
        text_of(body, "countdown").starts_with("Opens in 59m"),
        "{body}"
    );
    assert!(body.contains(&format!(
        "href=\"/login?next=%2Fauctions%2F{id}\">Log in to bid"
    )));
    assert!(!body.contains("id=\"bid-form\""));
    assert!(
        !body.contains("Cancel this lot"),
        "visitors see no admin tools"
    );

    // Bids over the socket show on the page and the list.
    create_account(&app, "bob", false);
    let mut bob = Visitor::new(&app);
    bob.login("bob", PASSWORD).await;
    let live = list_lot(
        &mut root,
        &lot_fields("Earthbound", TimeDelta::seconds(-1), TimeDelta::hours(2)),
    )
    .await;
    wait_status(&app, live, "running").await;
    let mut socket = ChatClient::connect_with_cookie(&app, &bob.cookie_header())
        .await
        .expect("bob's socket");
    let topic = format!("auction:{live}");
    socket.join(&topic, None).await;
    let reply = socket
        .request(json!({"op": "bid", "topic": topic, "amount_cents": 1_300}))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");

    let page = bob.get(&format!("/auctions/{live}")).await;
    let body = &page.body;
    assert!(body.contains("data-user=\"bob\""), "{body}");
    assert!(body.contains("id=\"bid-form\""));
    assert_eq!(text_of(body, "lot-status"), "Open for bids");
    assert_eq!(text_of(body, "price-label"), "Current bid");
    assert_eq!(text_of(body, "price"), "13.00 EUR");
    assert_eq!(text_of(body, "leader"), "bob (you)");
    assert_eq!(text_of(body, "min-next"), "13.50 EUR");
    assert_eq!(text_of(body, "bid-count"), "1");
    let history = section(body, "bids");
    assert!(
        history.contains("<li data-seq=")
            && history.contains(
                "<span class=\"bidder\">bob</span> <span class=\"amount\">13.00 EUR</span>"
            ),
        "{history}"
    );
    let running = section(&visitor.get("/auctions").await.body, "running").to_owned();
    assert!(
        running.contains("Earthbound") && running.contains("13.00 EUR"),
        "{running}"
    );
}
on_both_backends!(a_listed_lot_shows_on_the_list_and_on_its_page);

#[actix_web::test]
async fn an_ended_lot_shows_its_winner_and_final_price() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    let ana = account(&app, "ana", false).await;
    let id = list_lot(
        &mut root,
        &lot_fields("Mother 3", TimeDelta::seconds(-1), TimeDelta::seconds(3)),
    )
    .await;
    wait_status(&app, id, "running").await;
    let mut socket = ChatClient::connect_with_cookie(&app, &ana.cookie_header())
        .await
        .expect("ana's socket");
    let topic = format!("auction:{id}");
    socket.join(&topic, None).await;
    let reply = socket
        .request(json!({"op": "bid", "topic": topic, "amount_cents": 1_250}))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");

    wait_status(&app, id, "finished").await;

    let page = Visitor::new(&app).get(&format!("/auctions/{id}")).await;
    assert_eq!(text_of(&page.body, "lot-status"), "Ended");
    assert_eq!(text_of(&page.body, "outcome"), "Sold to ana for 12.50 EUR");
    assert!(section(&page.body, "bids").contains("ana"));
    let list = Visitor::new(&app).get("/auctions").await;
    let finished = section(&list.body, "finished");
    assert!(
        finished.contains("Mother 3") && finished.contains("Sold to ana for 12.50 EUR"),
        "{finished}"
    );
}

#[actix_web::test]
async fn visitors_are_sent_to_log_in_and_other_accounts_are_refused_the_lot_form() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    let id = list_lot(
        &mut root,
        &lot_fields("Secret of Mana", TimeDelta::hours(1), TimeDelta::days(1)),
    )
    .await;
    let fields = lot_fields("Forged", TimeDelta::hours(1), TimeDelta::days(1));

    let mut visitor = Visitor::new(&app);
    let page = visitor.get("/auctions/new").await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=%2Fauctions%2Fnew")
    );
    let page = submit(&mut visitor, "/auctions", Some("x"), &fields).await;
    assert_eq!(page.status, 303, "a visitor's post goes to log in");
    assert_eq!(
        visitor.get(&format!("/auctions/{id}/edit")).await.location,
        Some(format!("/login?next=%2Fauctions%2F{id}%2Fedit"))
    );

    let mut ana = account(&app, "ana", false).await;
    let csrf = hidden(&ana.get("/account").await.body, "csrf").expect("ana's token");
    assert_eq!(ana.get("/auctions/new").await.status, 403);
    assert_eq!(ana.get(&format!("/auctions/{id}/edit")).await.status, 403);
    let page = submit(&mut ana, "/auctions", Some(&csrf), &fields).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("Only admins"), "{}", page.body);
    let edit = format!("/auctions/{id}/edit");
    assert_eq!(
        submit(&mut ana, &edit, Some(&csrf), &fields).await.status,
        403
    );
    let cancel = format!("/auctions/{id}/cancel");
    assert_eq!(
        submit(&mut ana, &cancel, Some(&csrf), &[]).await.status,
        403
    );

    assert_eq!(lots_count(&app).await, 1, "nothing was listed");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM lots WHERE title = 'Secret of Mana' AND status = 'scheduled'"
        )
        .await,
        1,
        "nothing was changed"
    );
}

#[actix_web::test]
async fn a_lot_form_without_its_csrf_token_is_refused_and_stores_nothing() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    let fields = lot_fields("Forged", TimeDelta::hours(1), TimeDelta::days(1));

    assert_eq!(
        submit(&mut root, "/auctions", None, &fields).await.status,
        403
    );
    let wrong = submit(&mut root, "/auctions", Some("0000"), &fields).await;
    assert_eq!(wrong.status, 403);
    assert!(
        wrong.body.contains("did not come from this site"),
        "{}",
        wrong.body
    );
    assert_eq!(lots_count(&app).await, 0);

    let id = list_lot(
        &mut root,
        &lot_fields("Real", TimeDelta::hours(1), TimeDelta::days(1)),
    )
    .await;
    let edit = format!("/auctions/{id}/edit");
    assert_eq!(submit(&mut root, &edit, None, &fields).await.status, 403);
    let cancel = format!("/auctions/{id}/cancel");
    assert_eq!(submit(&mut root, &cancel, None, &[]).await.status, 403);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM lots WHERE title = 'Real' AND status = 'scheduled'")
            .await,
        1
    );
}

#[actix_web::test]
async fn bad_money_and_dates_come_back_with_the_reason_and_store_nothing() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    let csrf = root.token("/auctions/new").await;
    let good = lot_fields("Typed back", TimeDelta::hours(1), TimeDelta::days(1));
    let cases = [
        ("starting", "-5", "is negative"),
        ("starting", "12.345", "more than two decimals"),
        ("starting", "12,50", "is not an amount"),
        ("starting", "twelve", "is not an amount"),
        ("starting", "0", "must be more than 0"),
        ("reserve", "1.2.3", "Reserve: “1.2.3” is not an amount"),
        (
            "reserve",
            "10",
            "Reserve: it must be above the starting price",
        ),
        ("currency", "euro", "three-letter ISO code"),
        (
            "starts_at",
            "tomorrow",
            "Starts at: “tomorrow” is not a date and time",
        ),
        ("ends_at", "2020-01-01T00:00", "the end has already passed"),
        ("soft_close", "1.5", "whole number of seconds"),
        ("title", "   ", "The title must be 1 to 200 characters"),
    ];

    for (field, typed, reason) in cases {
        let page = submit(
            &mut root,
            "/auctions",
            Some(&csrf),
            &with(&good, field, typed),
        )
        .await;

        assert_eq!(page.status, 400, "{field}={typed}: {}", page.body);
        assert!(page.body.contains(reason), "{field}={typed}: {}", page.body);
        assert!(page.body.contains("Nothing was saved"));
        assert!(
            page.body
                .contains(&format!("name=\"{field}\" value=\"{typed}\"")),
            "what was typed comes back: {field}={typed}"
        );
    }
    let ends_first = with(&good, "hard_end", "");
    let ends_first = with(&ends_first, "starts_at", "2099-01-02T00:00");
    let page = submit(
        &mut root,
        "/auctions",
        Some(&csrf),
        &with(&ends_first, "ends_at", "2099-01-01T00:00"),
    )
    .await;
    assert_eq!(page.status, 400);
    assert!(
        page.body.contains("the lot must end after it starts"),
        "{}",
        page.body
    );

    assert_eq!(lots_count(&app).await, 0, "no refused form stored a lot");
}

#[actix_web::test]
async fn html_in_a_title_is_shown_escaped() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    let title = "<script>alert(1)</script> & <b>bold</b>";
    let fields = with(
        &lot_fields(title, TimeDelta::hours(1), TimeDelta::days(1)),
        "description",
        "<img src=x onerror=alert(2)>",
    );
    let id = list_lot(&mut root, &fields).await;

    for path in ["/auctions".to_owned(), format!("/auctions/{id}")] {
        let page = Visitor::new(&app).get(&path).await;

        assert!(
            !page.body.contains("<script>alert"),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("<b>bold"), "{path}");
        // Askama writes numeric entities: &#60; is <, &#62; is >, &#38; is &.
        assert!(
            page.body
                .contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; &#60;b&#62;bold"),
            "{path}: {}",
            page.body
        );
    }
    let page = Visitor::new(&app).get(&format!("/auctions/{id}")).await;
    assert!(!page.body.contains("<img src=x"));
    assert!(page.body.contains("&#60;img src=x onerror=alert(2)&#62;"));
}

async fn a_running_lot_cannot_be_edited_but_can_be_cancelled(backend: Backend) {
    let app = spawn_app(backend, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    let fields = lot_fields("Star Fox", TimeDelta::hours(1), TimeDelta::days(1));
    let id = list_lot(&mut root, &fields).await;

    // While scheduled, the form edits it.
    let edit = format!("/auctions/{id}/edit");
    let form = root.get(&edit).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("value=\"Star Fox\"") && form.body.contains("value=\"12.50\""));
    let csrf = hidden(&form.body, "csrf").expect("token");
    let moved = with(
        &with(&fields, "title", "Star Fox 64"),
        "starts_at",
        &at(Utc::now() - TimeDelta::seconds(1)),
    );
    let page = submit(
        &mut root,
        &edit,
        Some(&csrf),
        &with(&moved, "starting", "20"),
    )
    .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location, Some(format!("/auctions/{id}")));
    wait_status(&app, id, "running").await;
    let page = root.get(&format!("/auctions/{id}")).await;
    assert!(page.body.contains("Star Fox 64"));
    assert_eq!(text_of(&page.body, "price"), "20.00 EUR");
    assert!(
        !page.body.contains("Edit this lot"),
        "a running lot offers no edit"
    );

    // Once it runs, its rules hold.
    let refused = root.get(&edit).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("only a scheduled lot can be changed"),
        "{}",
        refused.body
    );
    let refused = submit(
        &mut root,
        &edit,
        Some(&csrf),
        &with(&fields, "title", "Changed"),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(refused
        .body
        .contains("is running: only a scheduled lot can be changed"));
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM lots WHERE id = {id} AND title = 'Star Fox 64'"
        ))
        .await,
        1,
        "the refused edit stored nothing"
    );

    let cancel = format!("/auctions/{id}/cancel");
    let page = submit(&mut root, &cancel, Some(&csrf), &[]).await;
    assert_eq!(page.status, 303);
    let page = Visitor::new(&app).get(&format!("/auctions/{id}")).await;
    assert_eq!(text_of(&page.body, "lot-status"), "Cancelled");
    assert_eq!(
        text_of(&page.body, "outcome"),
        "Cancelled: this lot was withdrawn"
    );
    assert!(!page.body.contains("id=\"bid-form\""));
    let list = Visitor::new(&app).get("/auctions").await;
    assert!(section(&list.body, "finished").contains("Cancelled"));
    assert!(!section(&list.body, "running").contains("Star Fox"));

    let again = submit(&mut root, &cancel, Some(&csrf), &[]).await;
    assert_eq!(
        again.status, 409,
        "the lot's state refuses it, as on the admin pages"
    );
    assert!(
        again
            .body
            .contains("only a scheduled or running lot can be cancelled"),
        "{}",
        again.body
    );

    // The listing, the edit and the cancel are in the audit log; the
    // refusals are not.
    assert_eq!(
        app.rows("SELECT action, user_name, object_id FROM audit_log ORDER BY id")
            .await,
        [
            ["lot.create", "root", &id.to_string()],
            ["lot.edit", "root", &id.to_string()],
            ["lot.cancel", "root", &id.to_string()]
        ]
    );
}
on_both_backends!(a_running_lot_cannot_be_edited_but_can_be_cancelled);

#[actix_web::test]
async fn an_unknown_lot_is_not_found() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;

    for path in ["/auctions/999", "/auctions/abc", "/auctions/-1"] {
        assert_eq!(Visitor::new(&app).get(path).await.status, 404, "{path}");
    }
    assert_eq!(root.get("/auctions/999/edit").await.status, 404);
    let csrf = root.token("/auctions/new").await;
    assert_eq!(
        root.post("/auctions/999/cancel", &[("csrf", &csrf)])
            .await
            .status,
        404
    );
}
