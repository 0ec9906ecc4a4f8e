//! A lot's room in real headless Chromium: two accounts, each logged in
//! through the login form in a window of its own, bid against each other
//! and see every bid, the new leader and "outbid" live; a guest watches.

use chrono::TimeDelta;

use crate::accounts::Visitor;
use crate::auction_pages::{account, list_lot, lot_fields, wait_status, PASSWORD};
use crate::browser_helpers::{Browser, Page};
use crate::helpers::{spawn_app, AppOptions, Backend, TestApp};

/// The bid form's fields and button.
const AMOUNT: &str = "#bid-form input[name=amount]";
const SUBMIT: &str = "#bid-form button[type=submit]";
/// Every row of the bid history, newest first.
const HISTORY: &str = "#bids li[data-seq]";

/// Opens the lot page in a new window as `name`, logging in through the
/// form the "Log in to bid" link leads to, and waits until it is live.
async fn bidder(app: &TestApp, browser: &mut Browser, lot: i64, name: &str) -> Page {
    let page = browser.page().await;
    log_in_on_lot(app, page, lot, name).await
}

/// Opens the lot in `page` and logs `name` in from it.
async fn log_in_on_lot(app: &TestApp, page: Page, lot: i64, name: &str) -> Page {
    page.goto(&format!("{}/auctions/{lot}", app.base)).await;
    page.click("#login-to-bid a").await;
    page.type_into("#login-form input[name=name]", name).await;
    page.type_into("#login-form input[name=password]", PASSWORD)
        .await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for(SUBMIT).await; // back on the lot, now with the bid form
    page.wait_online().await;
    page
}

async fn bid(page: &Page, amount: &str) {
    page.type_into(AMOUNT, amount).await;
    page.click(SUBMIT).await;
}

#[actix_web::test]
async fn two_bidders_see_each_others_bids_live_and_the_one_outbid_is_told() {
    // Arrange: a running lot from 12.50 EUR, two bidders and a guest on it.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    let lot = list_lot(
        &mut root,
        &lot_fields(
            "Panzer Dragoon Saga",
            TimeDelta::seconds(-1),
            TimeDelta::hours(1),
        ),
    )
    .await;
    wait_status(&app, lot, "running").await;
    for name in ["ana", "bob"] {
        crate::auction_pages::create_account(&app, name, false);
    }
    let mut browser = Browser::start().await;
    let ana = bidder(&app, &mut browser, lot, "ana").await;
    let bob = bidder(&app, &mut browser, lot, "bob").await;
    let guest = browser.page().await;
    guest.goto(&format!("{}/auctions/{lot}", app.base)).await;
    guest.wait_online().await;
    ana.wait_until("#members to list everyone", "#members li", |members| {
        members.len() == 3 && members.contains(&"ana (you)".to_owned())
    })
    .await;
    ana.wait_for_text("#countdown", "Ends in 59m").await;

    // Act: ana bids 13.00.
    bid(&ana, "13").await;

    // Assert: everyone sees it at once.
    ana.wait_for_text("#bid-result", "You are the highest bidder at 13.00 EUR")
        .await;
    for page in [&bob, &guest] {
        page.wait_for_text("#price", "13.00 EUR").await;
        page.wait_for_text("#leader", "ana").await;
        page.wait_for_text("#min-next", "13.50 EUR").await;
        page.wait_for_text(HISTORY, "ana 13.00 EUR").await;
    }
    assert_eq!(ana.texts("#leader").await, ["ana (you)"]);

    // Act: bob bids 14.00.
    bid(&bob, "14.00").await;

    // Assert: ana sees bob's bid on top of hers, and that she was outbid.
    bob.wait_for_text("#bid-result", "You are the highest bidder at 14.00 EUR")
        .await;
    ana.wait_for_text("#price", "14.00 EUR").await;
    ana.wait_for_text("#bid-result", "You were outbid").await;
    let rows = ana.texts(HISTORY).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].starts_with("bob 14.00 EUR") && rows[1].starts_with("ana 13.00 EUR"),
        "{rows:?}"
    );
    guest.wait_for_text("#leader", "bob").await;

    // A bid under the minimum comes back with the server's reason; one
    // that is not an amount never leaves the page.
    bid(&ana, "14").await;
    ana.wait_for_text("#bid-result", "the minimum next bid is 14.50 EUR")
        .await;
    let typo = ana.wait_for(AMOUNT).await;
    typo.clear().await.expect("clear the amount");
    bid(&ana, "14.505").await;
    ana.wait_for_text("#bid-result", "at most two decimals")
        .await;
    assert_eq!(
        ana.texts(HISTORY).await.len(),
        2,
        "no refused bid was stored"
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM bids WHERE lot_id = {lot}"))
            .await,
        2
    );
    // The page as the server renders it agrees.
    let page = Visitor::new(&app).get(&format!("/auctions/{lot}")).await;
    assert!(page
        .body
        .contains("<dd class=\"price\" id=\"price\">14.00 EUR</dd>"));
}

#[actix_web::test]
async fn the_page_switches_to_the_outcome_when_the_lot_ends() {
    // Arrange: a lot that runs for a few seconds, and ana on it. The
    // browser starts first: on a loaded machine its start alone can take
    // longer than the lot runs.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut root = account(&app, "root", true).await;
    crate::auction_pages::create_account(&app, "ana", false);
    let mut browser = Browser::start().await;
    let page = browser.page().await;
    let lot = list_lot(
        &mut root,
        &lot_fields("Snatcher", TimeDelta::seconds(-1), TimeDelta::seconds(10)),
    )
    .await;
    wait_status(&app, lot, "running").await;
    let ana = log_in_on_lot(&app, page, lot, "ana").await;
    ana.wait_for_text("#countdown", "Ends in").await;

    // Act: ana bids, and the lot runs out.
    bid(&ana, "12.50").await;
    ana.wait_for_text("#bid-result", "You are the highest bidder")
        .await;

    // Assert: without a reload, the page shows how it ended.
    ana.wait_for_text("#outcome", "Sold to ana for 12.50 EUR")
        .await;
    ana.wait_for_text("#lot-status", "Ended").await;
    ana.wait_for_text("#countdown", "Ended").await;
    ana.wait_for_text("#bid-result", "You won this lot for 12.50 EUR")
        .await;
    assert_eq!(
        ana.texts("#bid-form[hidden]").await.len(),
        1,
        "the bid form is hidden"
    );
}
