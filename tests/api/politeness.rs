//! Politeness, measured at the store: a host never sees more fetches at once
//! than its `concurrency`, never two starts closer than its delay (`delay_ms`
//! or robots.txt's `Crawl-delay`), and is crawled as fast as those allow.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bazaar_bench::store::GeneratedStore;

use crate::helpers::{
    closest_starts, spawn_app, spawn_store, spawn_store_with, AppOptions, Backend, TestApp,
    TestStore, WorkerProcess,
};

/// What a hand-out may lose or gain on its way to the store: the assignment
/// crosses a socket and a worker process before the store sees the request,
/// and on a machine busy with other tests one of them can run late by tens
/// of milliseconds, which brings it closer to the next. The server spaces
/// its hand-outs exactly; this is the store's view of them.
const JITTER: Duration = Duration::from_millis(60);

/// Starts a crawl of a site configured by `sites`, by two workers of four
/// slots: the server, the workers and the crawl's id.
async fn start(sites: String) -> (TestApp, [WorkerProcess; 2], i64) {
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            sites: Some(sites),
            ..Default::default()
        },
    )
    .await;
    let workers = [app.spawn_worker("a", 4, &[]), app.spawn_worker("b", 4, &[])];
    let id = app.start_crawl().await;
    (app, workers, id)
}

/// Waits for crawl `id` to finish without a dead task; returns when each
/// request reached the store.
async fn arrivals(app: &TestApp, id: i64, store: &TestStore) -> Vec<Instant> {
    let report = app.wait_crawl(id, Duration::from_secs(60)).await;
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    store.arrivals.lock().expect("arrivals").clone()
}

/// Crawls `store`'s site with `sites` as its configuration, by two workers of
/// four slots, and returns when each request reached the store.
async fn crawl(store: &TestStore, sites: String) -> (TestApp, Vec<Instant>) {
    let (app, _workers, id) = start(sites).await;
    let arrivals = arrivals(&app, id, store).await;
    (app, arrivals)
}

/// Requests per second from the first arrival to the last.
fn rate(arrivals: &[Instant]) -> f64 {
    let span = arrivals[arrivals.len() - 1] - arrivals[0];
    (arrivals.len() - 1) as f64 / span.as_secs_f64()
}

#[actix_web::test]
async fn politeness_limits_hold_under_more_workers_than_the_host_allows() {
    // Arrange: 2 workers × 4 slots against a host that allows 2 at a time.
    let store = spawn_store(2, 15, Duration::from_millis(60));

    // Act
    let (_app, arrivals) = crawl(&store, store.sites(2)).await;

    // Assert: measured at the store, never more than 2 requests at once.
    assert_eq!(arrivals.len(), 32);
    assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn a_delay_spaces_fetches_and_the_crawl_keeps_the_pace_it_allows() {
    // Arrange: a store that answers at once, and a host that allows 4 fetches
    // at a time but one start every 200 ms: 5 pages a second.
    let store = spawn_store(2, 15, Duration::ZERO);
    let sites = store.sites(4).replace("delay_ms = 0", "delay_ms = 200");

    // Act
    let (_app, arrivals) = crawl(&store, sites).await;

    // Assert: no two starts closer than the delay, and at least 90% of the
    // rate it allows. (Before the Dispatcher woke when a host came due, a
    // 200 ms delay crawled at 4 pages a second where it allows 5, and a
    // 100 ms one at 4 where it allows 10.)
    assert_eq!(arrivals.len(), 32);
    let closest = closest_starts(&arrivals);
    assert!(
        closest >= Duration::from_millis(200) - JITTER,
        "two fetches {closest:?} apart"
    );
    let rate = rate(&arrivals);
    assert!(rate >= 4.5, "{rate:.2} pages/s where the delay allows 5");
}

#[actix_web::test]
async fn a_server_stalled_mid_crawl_still_spaces_the_fetches_after_it() {
    // Arrange: the host of the test above, 5 pages a second at most.
    let store = spawn_store(2, 15, Duration::ZERO);
    let sites = store.sites(4).replace("delay_ms = 0", "delay_ms = 200");
    let (app, _workers, id) = start(sites).await;

    // Act: four times, the server stops dead just before it sends a fetch
    // it has leased (a delay after the last arrival, less the lead it
    // leases with) and for longer than the delay, so that when it wakes
    // that start is long past and the next one is due as well.
    for n in [4, 10, 16, 22] {
        let last = store.arrival(n).await;
        tokio::time::sleep_until((last + Duration::from_millis(192)).into()).await;
        app.freeze(Duration::from_millis(450)).await;
    }
    let arrivals = arrivals(&app, id, &store).await;

    // Assert: the late fetch went when the server woke, and the next one
    // still a whole delay after it.
    assert_eq!(arrivals.len(), 32);
    let closest = closest_starts(&arrivals);
    assert!(
        closest >= Duration::from_millis(200) - JITTER,
        "two fetches {closest:?} apart"
    );
}

#[actix_web::test]
async fn with_a_delay_and_a_slow_store_concurrency_sets_the_pace() {
    // Arrange: a store that takes 600 ms a page, a host allowing 3 at once
    // and a start every 100 ms. Three in flight at 600 ms each allow 5 pages
    // a second; the delay alone would allow 10.
    let store = spawn_store(2, 15, Duration::from_millis(600));
    let sites = store.sites(3).replace("delay_ms = 0", "delay_ms = 100");

    // Act
    let (_app, arrivals) = crawl(&store, sites).await;

    // Assert: both bounds hold, and the crawl reaches 90% of the lower.
    assert_eq!(arrivals.len(), 32);
    assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 3);
    let closest = closest_starts(&arrivals);
    assert!(
        closest >= Duration::from_millis(100) - JITTER,
        "two fetches {closest:?} apart"
    );
    let rate = rate(&arrivals);
    assert!(rate >= 4.5, "{rate:.2} pages/s where the limits allow 5");
}

#[actix_web::test]
async fn a_robots_crawl_delay_paces_the_host_like_a_configured_delay() {
    // Arrange: no delay in the site's settings, but robots.txt asks for 0.2 s.
    let store = spawn_store_with(GeneratedStore {
        pages: 2,
        latency: Duration::ZERO,
        per_listing: 15,
        crawl_delay: Some(Duration::from_millis(200)),
    });
    let sites = store.sites(4).replace("robots = false", "robots = true");

    // Act
    let (_app, arrivals) = crawl(&store, sites).await;

    // Assert: robots.txt first, then the 32 pages at the pace it asked for.
    assert_eq!(arrivals.len(), 33);
    let pages = &arrivals[1..];
    let closest = closest_starts(pages);
    assert!(
        closest >= Duration::from_millis(200) - JITTER,
        "two fetches {closest:?} apart"
    );
    let rate = rate(pages);
    assert!(rate >= 4.5, "{rate:.2} pages/s where Crawl-delay allows 5");
}
