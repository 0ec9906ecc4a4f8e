//! The admin dashboard in real headless Chromium: an admin watches a crawl
//! of a slow store progress to completion and a chat room fill without
//! reloading, then retries a dead task from its page.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;

use crate::auction_pages::{create_account, PASSWORD};
use crate::browser_helpers::{Browser, Page};
use crate::chat_client::ChatClient;
use crate::helpers::{spawn_app, spawn_store, AppOptions, Backend};

/// Opens the dashboard at `base` as the admin `root`, logging in through
/// the form it redirects to, and waits until its live updates flow.
pub(crate) async fn admin_page(base: &str, browser: &mut Browser) -> Page {
    let page = browser.page().await;
    page.goto(&format!("{base}/admin")).await;
    page.type_into("#login-form input[name=name]", "root").await;
    page.type_into("#login-form input[name=password]", PASSWORD)
        .await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for("#throughput-chart").await;
    page.wait_for_text("#live", "live").await;
    page
}

/// The dashboard's progress bar: (value, max).
pub(crate) async fn progress(page: &Page) -> (u64, u64) {
    let read = |name: &'static str| async move {
        let value = page
            .run(&format!(
                "return String(document.getElementById('crawl-progress').{name});"
            ))
            .await;
        value.as_str().unwrap_or("0").parse::<f64>().unwrap_or(0.0) as u64
    };
    (read("value").await, read("max").await)
}

#[actix_web::test]
async fn an_admin_watches_a_crawl_finish_live_then_retries_a_dead_task() {
    // Arrange: a store slow enough that the crawl takes a few seconds.
    let store = spawn_store(6, 8, Duration::from_millis(120));
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            sites: Some(store.sites(2)),
            local_workers: 1,
            slots: 2,
            ..Default::default()
        },
    )
    .await;
    create_account(&app, "root", true);
    let mut browser = Browser::start().await;
    let page = admin_page(&app.base, &mut browser).await;
    // Set on this page load; a reload would lose it.
    page.run("window.bazaarMark = 'kept'; return null;").await;

    // Act: a crawl starts while the admin watches.
    let crawl = app.start_crawl().await;

    // Assert: the bar moves through the middle to the end, on one page load.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_between = false;
    loop {
        let (value, max) = progress(&page).await;
        let status = page.texts("#crawl-status").await.join("");
        if value > 0 && value < max {
            seen_between = true;
        }
        if status == "finished" && value == max && max > 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard shows {value}/{max} {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_between, "the progress was shown while the crawl ran");
    assert_eq!(
        page.texts("#crawl-link").await,
        [crawl.to_string()],
        "the dashboard follows the new crawl"
    );
    let done = app
        .count("SELECT COUNT(*) FROM tasks WHERE state = 'done'")
        .await;
    page.wait_for_text("td[data-state=done]", &done.to_string())
        .await;
    assert_eq!(
        page.run("return window.bazaarMark || null;").await,
        serde_json::json!("kept"),
        "the page was not reloaded"
    );
    let bars = page.attrs("#throughput-chart rect", "height").await;
    assert!(
        bars.iter().any(|h| h != "0"),
        "the throughput chart shows the finished tasks: {bars:?}"
    );

    // Act: someone joins a chat room while the admin watches.
    assert_eq!(page.texts("td[data-node=clients]").await, ["0"]);
    let mut chat = ChatClient::connect(&app, Some("ana")).await.expect("chat");
    chat.join("chat:lobby", None).await;

    // Assert: the connection and the room appear without a reload.
    page.wait_for_text("td[data-node=clients]", "1").await;
    page.wait_for_text("td[data-node=chat_rooms]", "1").await;
    page.wait_for_text("td[data-node=members]", "1").await;

    // Act: a task died; the admin retries it from its page. One that was
    // fetched: a page robots.txt disallows (the demo has one) would be
    // cancelled again, never done.
    let task = app
        .count("SELECT MAX(id) FROM tasks WHERE kind = 'page' AND state = 'done'")
        .await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE tasks SET state = 'dead', last_error = 'HTTP 503 from the store' WHERE id = {task}"
        ))
        .await
        .expect("kill a task");
    page.goto(&format!("{}/admin/tasks/{task}", app.base)).await;
    page.wait_for_text("#task-state", "dead").await;
    page.click("#retry").await;

    // Assert: it is fetched again and done. The page is left alone until
    // then: loading it again at once could cancel the form's POST before
    // the browser sent it, on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = format!("SELECT COUNT(*) FROM tasks WHERE id = {task} AND state = 'done'");
    while app.count(&state).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the retried task {task} never finished; the server said:\n{}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    page.goto(&format!("{}/admin/tasks/{task}", app.base)).await;
    assert_eq!(page.texts("#task-state").await, ["done"]);
    let attempts = page.texts("table.attempts tbody tr").await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'task.retry'")
            .await,
        1
    );
    page.close().await;
}
