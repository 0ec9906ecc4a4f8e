//! Faults: workers and servers killed mid-crawl, scrapers that panic, and
//! workers that drain.

use std::time::Duration;

use crate::helpers::{spawn_app, spawn_store, AppOptions, Backend};
use crate::on_both_backends;

/// 3 listing pages of 20 games: 63 tasks.
const LISTINGS: usize = 3;
const PER_LISTING: usize = 20;
const TASKS: i64 = (LISTINGS * (PER_LISTING + 1)) as i64;

async fn a_worker_killed_mid_crawl_loses_no_task_and_duplicates_no_offer(backend: Backend) {
    // Arrange: a slow store, so the crawl is still running when the worker dies.
    let store = spawn_store(LISTINGS, PER_LISTING, Duration::from_millis(150));
    let app = spawn_app(
        backend,
        AppOptions {
            sites: Some(store.sites(8)),
            ..Default::default()
        },
    )
    .await;
    let mut first = app.spawn_worker("doomed", 4, &[]);
    let id = app.start_crawl().await;
    app.wait_done(id, 8).await;

    // Act: SIGKILL, then a fresh worker takes over.
    first.kill9();
    let _second = app.spawn_worker("survivor", 4, &[]);
    let report = app.wait_crawl(id, Duration::from_secs(90)).await;

    // Assert: every task done once, every game exactly once per store.
    assert_eq!(report["tasks"]["done"], TASKS, "{report}");
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM games").await,
        (LISTINGS * PER_LISTING) as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM offers").await,
        (LISTINGS * PER_LISTING) as i64
    );
}
on_both_backends!(a_worker_killed_mid_crawl_loses_no_task_and_duplicates_no_offer);

async fn a_server_killed_and_restarted_completes_the_crawl(backend: Backend) {
    // Arrange: a crawl under way with a local worker.
    let store = spawn_store(LISTINGS, PER_LISTING, Duration::from_millis(150));
    let options = AppOptions {
        local_workers: 1,
        slots: 2,
        sites: Some(store.sites(4)),
        lease: "2s",
        ..Default::default()
    };
    let mut app = spawn_app(backend, options).await;
    let id = app.start_crawl().await;
    app.wait_done(id, 6).await;

    // Act: SIGKILL the server (its local worker dies with it) and restart it.
    app.kill9();
    app.start().await;
    let report = app.wait_crawl(id, Duration::from_secs(90)).await;

    // Assert: the same crawl finished, nothing missing, nothing twice.
    assert_eq!(report["tasks"]["done"], TASKS, "{report}");
    assert_eq!(app.count("SELECT COUNT(*) FROM crawls").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM offers").await,
        (LISTINGS * PER_LISTING) as i64
    );
}
on_both_backends!(a_server_killed_and_restarted_completes_the_crawl);

#[actix_web::test]
async fn a_remote_worker_reconnects_after_a_server_restart_and_finishes_the_crawl() {
    // Arrange: a crawl under way on a worker running apart from the server.
    let store = spawn_store(LISTINGS, PER_LISTING, Duration::from_millis(100));
    let mut app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            sites: Some(store.sites(4)),
            lease: "2s",
            ..Default::default()
        },
    )
    .await;
    let worker = app.spawn_worker("remote", 2, &[]);
    let id = app.start_crawl().await;
    app.wait_done(id, 6).await;

    // Act: the server crashes and comes back on the same address.
    app.kill9();
    app.start().await;
    let report = app.wait_crawl(id, Duration::from_secs(90)).await;

    // Assert: the same worker reconnected (with backoff) and finished the crawl.
    assert_eq!(report["tasks"]["done"], TASKS, "{report}");
    let log = app.worker_log("remote");
    assert!(log.contains("reconnecting later"), "{log}");
    assert_eq!(log.matches("connected worker=").count(), 2, "{log}");
    let (_, workers) = app.get_json("/api/workers").await;
    assert_eq!(workers["workers"][0]["name"], "remote", "{workers}");
    drop(worker);
}

async fn a_panicking_scraper_is_restarted_and_its_task_succeeds_on_retry(backend: Backend) {
    // Arrange: a worker whose scraper panics on Portal 2's PixelBay page, once.
    let app = spawn_app(backend, AppOptions::default()).await;
    let _worker = app.spawn_worker(
        "fragile",
        2,
        &[(
            "BAZAAR_FAULT_PANIC_ONCE_ON",
            "/demo/pixelbay/games/portal-2",
        )],
    );

    // Act
    let id = app.start_crawl().await;
    let report = app.wait_crawl(id, Duration::from_secs(60)).await;

    // Assert: the task failed once, then succeeded; the restart is visible.
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    let attempts = app
        .count("SELECT attempts FROM tasks WHERE url LIKE '%/demo/pixelbay/games/portal-2' AND state = 'done'")
        .await;
    assert_eq!(attempts, 2);
    let offer = app
        .count("SELECT COUNT(*) FROM offers o JOIN games g ON g.id = o.game_id WHERE g.ext_key = 'steam:620' AND o.store = 'PixelBay'")
        .await;
    assert_eq!(offer, 1);
    let (_, workers) = app.get_json("/api/workers").await;
    // Heartbeats carry the count; wait for the next one.
    let mut restarts = workers["workers"][0]["scraper_restarts"]
        .as_u64()
        .unwrap_or(0);
    for _ in 0..30 {
        if restarts >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, workers) = app.get_json("/api/workers").await;
        restarts = workers["workers"][0]["scraper_restarts"]
            .as_u64()
            .unwrap_or(0);
    }
    assert_eq!(restarts, 1, "the worker's status shows the restart");
    assert!(
        app.log().contains("scrapers were restarted"),
        "the server logs the restart"
    );
}
on_both_backends!(a_panicking_scraper_is_restarted_and_its_task_succeeds_on_retry);

#[actix_web::test]
async fn a_worker_drains_on_sigterm_and_finishes_what_it_holds() {
    // Arrange: a worker busy on a slow store.
    let store = spawn_store(2, 10, Duration::from_millis(300));
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            sites: Some(store.sites(4)),
            ..Default::default()
        },
    )
    .await;
    let mut worker = app.spawn_worker("drainer", 4, &[]);
    let id = app.start_crawl().await;
    app.wait_done(id, 2).await;

    // Act
    let status = worker.terminate_and_wait(Duration::from_secs(20));
    let status = status.unwrap_or_else(|| {
        panic!(
            "the worker did not exit after draining:\n{}",
            app.worker_log("drainer")
        )
    });

    // Assert: a clean exit, and nothing it held went back to the queue
    // unfinished. (A lease being taken as it left never reached it, and
    // says so in its own words.)
    assert!(status.success(), "{status}");
    let requeued = app
        .count("SELECT COUNT(*) FROM tasks WHERE last_error LIKE '%disconnected%'")
        .await;
    assert_eq!(requeued, 0, "drained tasks were finished, not abandoned");
}
