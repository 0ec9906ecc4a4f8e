//! Whole crawls of the demo stores: the catalog they build, and what a price
//! change between crawls does.

use std::collections::BTreeMap;
use std::time::Duration;

use bazaar::demo::expected_catalog;
use bazaar::domain::money::Money;
use entity::price_points;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::{spawn_app, AppOptions, Backend};
use crate::on_both_backends;

async fn a_full_crawl_of_the_demo_stores_with_two_workers_builds_the_expected_catalog(
    backend: Backend,
) {
    // Arrange: the built-in demo stores and two local worker processes.
    let app = spawn_app(
        backend,
        AppOptions {
            local_workers: 2,
            ..Default::default()
        },
    )
    .await;

    // Act
    let id = app.start_crawl().await;
    let report = app.wait_crawl(id, Duration::from_secs(60)).await;

    // Assert: every page was read, and robots.txt kept the private page out.
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    assert_eq!(report["tasks"]["cancelled"], 1, "{report}");
    let blocked = app
        .count("SELECT COUNT(*) FROM tasks WHERE state = 'cancelled' AND url LIKE '%/private/%' AND last_error LIKE '%robots.txt%'")
        .await;
    assert_eq!(blocked, 1);

    let expected = expected_catalog(1);
    let titles: BTreeMap<&str, ()> = expected.iter().map(|o| (o.title, ())).collect();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM games").await,
        titles.len() as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM offers").await,
        expected.len() as i64
    );

    // Every store's price for every game landed on the right merged game.
    for offer in &expected {
        let (_, page) = app
            .get_json(&format!("/api/games?q={}", urlencode(offer.title)))
            .await;
        let game = page["games"]
            .as_array()
            .and_then(|games| {
                games.iter().find(|g| {
                    g["title"]
                        .as_str()
                        .is_some_and(|t| same_game(t, offer.title))
                })
            })
            .unwrap_or_else(|| panic!("{} missing from {page}", offer.title));
        let (_, detail) = app.get_json(&format!("/api/games/{}", game["id"])).await;
        let found = detail["offers"]
            .as_array()
            .and_then(|offers| offers.iter().find(|o| o["store"] == offer.store))
            .unwrap_or_else(|| panic!("{} has no {} offer: {detail}", offer.title, offer.store));
        assert_eq!(
            found["price_cents"], offer.price_cents,
            "{} at {}",
            offer.title, offer.store
        );
        assert_eq!(
            found["available"], offer.available,
            "{} at {}",
            offer.title, offer.store
        );
        if let Some(steam) = offer.steam_id {
            assert_eq!(detail["ext_key"], format!("steam:{steam}"));
        }
    }

    // The pages show it: the list, and a game with its chart.
    let (status, html) = app.get_html("/?q=portal").await;
    assert_eq!(status, 200);
    // The merged title is one store's spelling ("Portal 2" or "PORTAL 2™").
    assert!(html.to_lowercase().contains("portal 2"), "{html}");
    assert!(html.contains(&format!("Prices from crawl {id}")), "{html}");
    let portal = app
        .count("SELECT id FROM games WHERE ext_key = 'steam:620'")
        .await;
    let (status, html) = app.get_html(&format!("/games/{portal}")).await;
    assert_eq!(status, 200);
    for store in ["PixelBay", "GameVault", "RetroShelf"] {
        assert!(
            html.contains(store),
            "Portal 2 should be offered by {store}"
        );
    }
    // One crawl gave one point per store: each is a dot that names it.
    let points = price_points::Entity::find()
        .filter(price_points::Column::GameId.eq(portal))
        .all(&app.db)
        .await
        .expect("price points");
    let stores: BTreeMap<&str, ()> = points.iter().map(|p| (p.store.as_str(), ())).collect();
    assert_eq!(stores.len(), 3, "{points:?}");
    assert_eq!(points.len(), 3, "{points:?}");
    for p in &points {
        let label = format!(
            "{}: {} on {} UTC",
            p.store,
            Money::new(p.price_cents, &p.currency),
            p.at.format("%Y-%m-%d %H:%M")
        );
        assert!(
            html.contains(&format!("r=\"4\"><title>{label}</title></circle>")),
            "no dot for {label}: {html}"
        );
    }
}
on_both_backends!(a_full_crawl_of_the_demo_stores_with_two_workers_builds_the_expected_catalog);

#[actix_web::test]
async fn the_standalone_worker_binary_crawls_the_demo_stores_to_the_end() {
    // Arrange: the demo stores, and no worker but one `bazaar-worker`, the
    // binary an operator runs on a machine that only crawls.
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let _worker = app.spawn_standalone_worker("lone", 4);

    // Act
    let id = app.start_crawl().await;
    let report = app.wait_crawl(id, Duration::from_secs(60)).await;

    // Assert: it did every task, and the catalog holds every offer.
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM offers").await,
        expected_catalog(1).len() as i64
    );
    let workers = app
        .count("SELECT COUNT(DISTINCT worker) FROM tasks WHERE state = 'done'")
        .await;
    assert_eq!(workers, 1);
    let (_, fleet) = app.get_json("/api/workers").await;
    assert_eq!(fleet["workers"][0]["name"], "lone", "{fleet}");
}

async fn a_price_change_between_crawls_adds_history_and_records_the_drops(backend: Backend) {
    // Arrange: one finished crawl at seed 1.
    let app = spawn_app(
        backend,
        AppOptions {
            local_workers: 1,
            ..Default::default()
        },
    )
    .await;
    let first = app.start_crawl().await;
    app.wait_crawl(first, Duration::from_secs(60)).await;
    let points_before = app.count("SELECT COUNT(*) FROM price_points").await;

    // Act: the stores change their prices; crawl again.
    let resp = app
        .client
        .post(format!("{}/api/demo/seed", app.base))
        .bearer_auth(&app.api_token)
        .send_json(&serde_json::json!({"seed": 2}))
        .await
        .expect("set seed");
    assert_eq!(resp.status().as_u16(), 200);
    let second = app.start_crawl().await;
    app.wait_crawl(second, Duration::from_secs(60)).await;

    // Assert: one new history point per changed price, drops recorded as such.
    let before = expected_catalog(1);
    let after = expected_catalog(2);
    let changed = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.price_cents != b.price_cents)
        .count() as i64;
    let drops = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| b.price_cents < a.price_cents)
        .count() as i64;
    assert!(drops > 0, "seed 2 must lower some prices");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM price_points").await,
        points_before + changed
    );
    let recorded = app
        .count(&format!(
            "SELECT COUNT(*) FROM changes WHERE crawl_id = {second} AND kind = 'price_drop'"
        ))
        .await;
    assert_eq!(recorded, drops);
    // Offers out of stock at seed 1 and in stock at seed 2 came back.
    let restocked = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| !a.available && b.available)
        .count() as i64;
    assert!(restocked > 0, "seed 2 must restock some offers");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM changes WHERE crawl_id = {second} AND kind = 'back_in_stock'"
        ))
        .await,
        restocked
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM changes WHERE crawl_id = {second} AND kind = 'new_game'"
        ))
        .await,
        0
    );
}
on_both_backends!(a_price_change_between_crawls_adds_history_and_records_the_drops);

/// Store spellings differ ("PORTAL 2™"); the merged title is one of them.
fn same_game(shown: &str, canonical: &str) -> bool {
    bazaar::domain::title::normalize_title(shown)
        == bazaar::domain::title::normalize_title(canonical)
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A store whose listings link only to their games and to the next listing:
/// each listing is found with the pages of the one before, and leased
/// first, however few slots the host allows.
async fn a_store_whose_listings_link_only_to_the_next_is_crawled_listing_first(backend: Backend) {
    use std::collections::HashMap;

    use actix_web::{App, HttpServer};
    use bazaar_bench::store::{self, SerialStore};
    use chrono::{DateTime, Utc};
    use entity::{task_attempts, tasks};
    use sea_orm::EntityTrait;

    // Arrange: 4 listings of 5 games, a host that allows 2 fetches at once,
    // and two workers, so a pass leases for both, and never all that is
    // ready.
    let serial = SerialStore {
        listings: 4,
        per_listing: 5,
    };
    let server =
        HttpServer::new(move || App::new().configure(|cfg| store::configure_serial(cfg, serial)))
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind store");
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let app = spawn_app(
        backend,
        AppOptions {
            local_workers: 2,
            slots: 2,
            sites: Some(store::sites_toml(&base, 2)),
            ..Default::default()
        },
    )
    .await;

    // Act
    let id = app.start_crawl().await;
    let report = app.wait_crawl(id, Duration::from_secs(60)).await;
    handle.stop(false).await;

    // Assert: every page read once.
    assert_eq!(report["tasks"]["done"], 24, "{report}");
    assert_eq!(report["tasks"]["dead"], 0, "{report}");
    assert_eq!(app.count("SELECT COUNT(*) FROM games").await, 20);
    assert_eq!(app.count("SELECT COUNT(*) FROM task_attempts").await, 24);
    // When each task was leased, by its path.
    let paths: HashMap<i64, String> = tasks::Entity::find()
        .all(&app.db)
        .await
        .expect("tasks")
        .into_iter()
        .map(|t| (t.id, t.url.trim_start_matches(&base).to_owned()))
        .collect();
    let leased: HashMap<String, DateTime<Utc>> = task_attempts::Entity::find()
        .all(&app.db)
        .await
        .expect("attempts")
        .into_iter()
        .map(|a| (paths[&a.task_id].clone(), a.started_at))
        .collect();
    // Listing n+1 and the games of listing n became ready together, in one
    // merge: the listing was leased no later than any of them.
    for n in 1..4 {
        let next = leased[&format!("/gen/list/{}", n + 1)];
        for g in (n - 1) * 5 + 1..=n * 5 {
            let game = leased[&format!("/gen/g/{g}")];
            assert!(
                next <= game,
                "/gen/list/{} leased at {next}, after /gen/g/{g} at {game}",
                n + 1
            );
        }
    }
}
on_both_backends!(a_store_whose_listings_link_only_to_the_next_is_crawled_listing_first);
