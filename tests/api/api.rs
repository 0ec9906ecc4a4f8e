//! The JSON API and pages: tokens, errors, search, sort and paging.

use std::time::Duration;

use crate::crawl::urlencode;
use crate::helpers::{spawn_app, AppOptions, Backend};

#[actix_web::test]
async fn creating_a_crawl_needs_the_api_token_and_one_runs_at_a_time() {
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let resp = app
        .client
        .post(format!("{}/api/crawls", app.base))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = app
        .client
        .post(format!("{}/api/crawls", app.base))
        .bearer_auth("nope")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 401);

    // No worker is connected, so the first crawl keeps running.
    let id = app.start_crawl().await;
    let mut resp = app
        .client
        .post(format!("{}/api/crawls", app.base))
        .bearer_auth(&app.api_token)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 409);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["id"], id);

    let (status, report) = app.get_json(&format!("/api/crawls/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(report["status"], "running");
    assert_eq!(
        report["tasks"]["queued"], 3,
        "one listing task per demo store"
    );
    assert_eq!(app.get_json("/api/crawls/999").await.0, 404);
}

#[actix_web::test]
async fn the_games_api_and_page_search_sort_and_page_the_catalog() {
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            local_workers: 1,
            ..Default::default()
        },
    )
    .await;
    let id = app.start_crawl().await;
    app.wait_crawl(id, Duration::from_secs(60)).await;

    let (_, page) = app.get_json("/api/games?q=portal").await;
    let titles: Vec<&str> = page["games"]
        .as_array()
        .expect("games")
        .iter()
        .filter_map(|g| g["title"].as_str())
        .collect();
    assert_eq!(titles.len(), 1, "{titles:?}");
    assert!(titles[0].to_lowercase().contains("portal 2"));

    let (_, page) = app.get_json("/api/games?sort=price").await;
    let prices: Vec<i64> = page["games"]
        .as_array()
        .expect("games")
        .iter()
        .filter_map(|g| g["best_cents"].as_i64())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    assert_eq!(prices.first(), Some(&0), "the free game is cheapest");
    assert_eq!(page["pages"], 2, "38 games, 24 a page");

    let (_, second) = app.get_json("/api/games?sort=price&page=2").await;
    assert_eq!(second["games"].as_array().map(Vec::len), Some(14));

    let (_, page) = app.get_json("/api/games?sort=discount").await;
    let discounts: Vec<i64> = page["games"]
        .as_array()
        .expect("games")
        .iter()
        .filter_map(|g| g["discount_pct"].as_i64())
        .collect();
    assert!(discounts.windows(2).all(|w| w[0] >= w[1]), "{discounts:?}");

    assert_eq!(app.get_json("/api/games?sort=rating").await.0, 400);
    assert_eq!(app.get_json("/api/games/424242").await.0, 404);

    // The page escapes what people type into the search box.
    let (status, html) = app
        .get_html(&format!("/?q={}", urlencode("<script>alert(1)</script>")))
        .await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("<script>alert(1)"),
        "search text must be escaped"
    );
    assert!(html.contains("&#60;script&#62;alert(1)"), "shown as text");
    assert_eq!(app.get_html("/games/nope").await.0, 404);
    assert_eq!(app.get_html("/?sort=evil").await.0, 400);
}

#[actix_web::test]
async fn a_visitor_on_a_stale_catalog_starts_a_crawl_and_a_fresh_one_does_not() {
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            local_workers: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM crawls").await, 0);

    // No crawl has ever finished: the first visit starts one.
    let (status, _) = app.get_html("/").await;
    assert_eq!(status, 200);
    let mut id = 0;
    for _ in 0..50 {
        id = app
            .count("SELECT COALESCE(MAX(id), 0) FROM crawls WHERE \"trigger\" = 'visitor'")
            .await;
        if id > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(id > 0, "the visit started a crawl");
    app.wait_crawl(id, Duration::from_secs(60)).await;

    // Prices crawled a moment ago are fresh (stale_after is an hour).
    let (status, html) = app.get_html("/").await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("Prices from crawl {id}")), "{html}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM crawls").await, 1);
}

#[actix_web::test]
async fn requests_that_do_not_parse_get_the_api_error_or_an_error_page() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;

    // Act
    let (query, query_body) = app.get_json("/api/rooms/lobby/messages?before=abc").await;
    let (path, path_body) = app.get_json("/api/crawls/abc").await;
    let mut form = app
        .client
        .post(format!("{}/login", app.base))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .send_body(format!("name={}", "a".repeat(20 << 10)))
        .await
        .expect("POST /login");

    // Assert: JSON that says which field, as every API error does, and an
    // HTML page for a form over its size.
    assert_eq!(query, 400);
    assert_eq!(query_body["error"]["code"], "bad_request", "{query_body}");
    assert!(
        query_body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("before=abc")),
        "{query_body}"
    );
    assert_eq!(path, 400);
    assert_eq!(path_body["error"]["code"], "bad_request", "{path_body}");
    assert_eq!(form.status().as_u16(), 413);
    let page = String::from_utf8_lossy(&form.body().await.expect("body")).into_owned();
    assert!(
        page.contains("<html") && page.contains("Bad request"),
        "{page}"
    );
}
