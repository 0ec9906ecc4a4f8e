//! A synthetic game store for the crawl benchmark, served under `/gen/`.
//!
//! [`GeneratedStore`] computes pages from their number on every request (no
//! files, no state), so the store can be made as large as a benchmark needs,
//! and an artificial latency simulates a remote shop. [`SerialStore`] writes
//! the same pages as files, for a web server of its own to serve.

use std::path::Path;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

/// Shape of the generated store.
#[derive(Clone, Copy, Debug)]
pub struct GeneratedStore {
    /// Number of listing pages (`/gen/list/1` ..= `/gen/list/{pages}`).
    pub pages: usize,
    /// Delay before every response, to simulate a remote server.
    pub latency: Duration,
    /// Game links per listing page.
    pub per_listing: usize,
    /// The `Crawl-delay` its robots.txt asks for; without one, the store has
    /// no robots.txt.
    pub crawl_delay: Option<Duration>,
}

impl GeneratedStore {
    /// Total number of games (`/gen/g/1` ..= `/gen/g/{game_count}`).
    pub fn game_count(&self) -> usize {
        self.pages.saturating_mul(self.per_listing)
    }
}

/// A store whose listings link only to their games and to the next listing:
/// each listing is found on the one before, so a crawl walks them one after
/// the other. Written as static files by [`SerialStore::write`].
#[derive(Clone, Copy, Debug)]
pub struct SerialStore {
    /// Number of listing pages (`/gen/list/1` ..= `/gen/list/{listings}`).
    pub listings: usize,
    /// Game links per listing page.
    pub per_listing: usize,
}

impl SerialStore {
    /// Total number of games (`/gen/g/1` ..= `/gen/g/{game_count}`).
    pub fn game_count(&self) -> usize {
        self.listings.saturating_mul(self.per_listing)
    }

    /// Writes the store's pages under `root`, as `gen/list/{n}` and
    /// `gen/g/{n}`: a web server serving `root` serves the store. The files
    /// have no extension; serve them as `text/html`.
    pub fn write(&self, root: &Path) -> std::io::Result<()> {
        let lists = root.join("gen").join("list");
        let games = root.join("gen").join("g");
        std::fs::create_dir_all(&lists)?;
        std::fs::create_dir_all(&games)?;
        for page in 1..=self.listings {
            let body = listing_page(page, self.listings, self.per_listing, false);
            std::fs::write(lists.join(page.to_string()), body)?;
        }
        for n in 1..=self.game_count() {
            std::fs::write(games.join(n.to_string()), game_page(n)?)?;
        }
        Ok(())
    }
}

/// What the page of game `n` advertises; lets a benchmark verify crawl results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedGame {
    pub title: String,
    pub price_cents: i64,
    pub regular_cents: i64,
    pub steam_id: Option<String>,
}

/// Game `n`'s data: a pure function of `n`, so any page can be rebuilt on demand.
pub fn generated_game(n: usize) -> GeneratedGame {
    let n64 = n as i64;
    // Regular prices between 4.99 and 59.99, discounts 0–40%.
    let regular_cents = 499 + (n64 % 12) * 500;
    let price_cents = regular_cents * (100 - (n64 % 5) * 10) / 100;
    GeneratedGame {
        title: format!("Generated Game {n}"),
        price_cents,
        regular_cents,
        // Only every third game has a Steam id, so merging by title is also exercised.
        steam_id: n.is_multiple_of(3).then(|| (100_000 + n).to_string()),
    }
}

/// Registers the generated store under `/gen/`. Call as
/// `App::new().configure(|cfg| store::configure(cfg, store))`.
pub fn configure(cfg: &mut web::ServiceConfig, store: GeneratedStore) {
    cfg.route(
        "/robots.txt",
        web::get().to(move || async move {
            match store.crawl_delay {
                Some(delay) => HttpResponse::Ok().content_type("text/plain").body(format!(
                    "User-agent: *\nCrawl-delay: {}\n",
                    delay.as_secs_f64()
                )),
                None => not_found(),
            }
        }),
    );
    cfg.service(
        web::scope("/gen")
            .app_data(web::Data::new(store))
            .route("/list/{n}", web::get().to(listing))
            .route("/g/{n}", web::get().to(game))
            .default_service(web::to(missing)),
    );
}

/// Serves `store` under `/gen/`, each page as [`SerialStore::write`] writes
/// it, computed on request as [`configure`] computes its pages. Call as
/// `App::new().configure(|cfg| store::configure_serial(cfg, store))`.
pub fn configure_serial(cfg: &mut web::ServiceConfig, store: SerialStore) {
    cfg.service(
        web::scope("/gen")
            .app_data(web::Data::new(store))
            .route("/list/{n}", web::get().to(serial_listing))
            .route("/g/{n}", web::get().to(serial_game))
            .default_service(web::to(|| async { not_found() })),
    );
}

async fn serial_listing(store: web::Data<SerialStore>, n: web::Path<String>) -> HttpResponse {
    match number_in(&n, store.listings) {
        Some(page) => html(listing_page(page, store.listings, store.per_listing, false)),
        None => not_found(),
    }
}

async fn serial_game(store: web::Data<SerialStore>, n: web::Path<String>) -> HttpResponse {
    match number_in(&n, store.game_count()).map(game_page) {
        Some(Ok(body)) => html(body),
        Some(Err(_)) => HttpResponse::InternalServerError().finish(),
        None => not_found(),
    }
}

/// The site configuration (see `src/demo/sites.toml` for the schema) that points the
/// crawler at a generated store reachable at `base_url` (e.g. `http://127.0.0.1:9000`).
pub fn sites_toml(base_url: &str, concurrency: u32) -> String {
    sites_toml_for(&[base_url.to_owned()], concurrency, 0)
}

/// One site per generated store in `base_urls`, each a host of its own with
/// the same politeness. A single store is the site `gen`; several are
/// `gen1`, `gen2`… with their own store names, so their offers all count.
pub fn sites_toml_for(base_urls: &[String], concurrency: u32, delay_ms: u64) -> String {
    let mut out = String::new();
    for (i, base_url) in base_urls.iter().enumerate() {
        let base = base_url.trim_end_matches('/');
        let (name, store) = if base_urls.len() == 1 {
            ("gen".to_owned(), "GenStore".to_owned())
        } else {
            (format!("gen{}", i + 1), format!("GenStore {}", i + 1))
        };
        out.push_str(&format!(
            "# Crawl benchmark target: the generated store at {base}\n\
             [[site]]\n\
             name = {name}\n\
             start = [{start}]\n\
             allowed_hosts = [{host}]\n\
             [site.politeness]\n\
             concurrency = {concurrency}\n\
             delay_ms = {delay_ms}\n\
             robots = false\n\
             [site.profile]\n\
             extract = \"jsonld\"\n\
             store = {store}\n\
             currency = \"EUR\"\n\
             links = \"a.g\"\n\
             next = \"a.next, nav.pages a\"\n",
            base = base.replace('\n', " "),
            name = toml_string(&name),
            store = toml_string(&store),
            start = toml_string(&format!("{base}/gen/list/1")),
            host = toml_string(&host_key(base)),
        ));
    }
    out
}

/// The `allowed_hosts` key of a URL: `host`, or `host:port` when the port is not the
/// scheme's default (the crawler compares hosts that way). IPv6 keeps its brackets.
fn host_key(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => (&authority[..=end], authority[end + 1..].strip_prefix(':')),
            None => (authority, None),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        _ => "80",
    };
    match port {
        Some(p) if !p.is_empty() && p != default_port => {
            format!("{}:{p}", host.to_ascii_lowercase())
        }
        _ => host.to_ascii_lowercase(),
    }
}

/// A TOML basic string literal.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn wait(store: &GeneratedStore) {
    if !store.latency.is_zero() {
        tokio::time::sleep(store.latency).await;
    }
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

async fn missing(store: web::Data<GeneratedStore>) -> HttpResponse {
    wait(&store).await;
    not_found()
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body("<!DOCTYPE html><html><head><title>Not found</title></head><body><h1>Not found</h1></body></html>")
}

/// Parses a 1-based page/game number within `1..=max`.
fn number_in(raw: &str, max: usize) -> Option<usize> {
    raw.parse::<usize>().ok().filter(|n| (1..=max).contains(n))
}

/// Pages a listing's paginator links to: 1, `page` ± `PAGER_WINDOW`, and the last.
fn pagination(page: usize, pages: usize) -> Vec<usize> {
    let low = page.saturating_sub(PAGER_WINDOW).max(1);
    let high = page.saturating_add(PAGER_WINDOW).min(pages);
    let mut out: Vec<usize> = std::iter::once(1)
        .chain(low..=high)
        .chain(std::iter::once(pages))
        .filter(|&p| p != page)
        .collect();
    out.dedup();
    out
}

/// How many pages either side of the current one the paginator shows.
const PAGER_WINDOW: usize = 5;

async fn listing(store: web::Data<GeneratedStore>, n: web::Path<String>) -> HttpResponse {
    wait(&store).await;
    let Some(page) = number_in(&n, store.pages) else {
        return not_found();
    };
    html(listing_page(page, store.pages, store.per_listing, true))
}

/// Listing `page` of `pages`, with `per_listing` games. With `paginator`,
/// it links to the first and last pages and a window around this one, as
/// stores draw them, and crawlers fan out through it instead of walking the
/// pages one "next" at a time; without, only to the next page.
fn listing_page(page: usize, pages: usize, per_listing: usize, paginator: bool) -> String {
    // Saturating: absurd store sizes must not overflow (they are benchmark settings).
    let first = (page - 1).saturating_mul(per_listing).saturating_add(1);
    let mut body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>GenStore page {page}</title></head><body><h1>GenStore page {page}</h1><ul>\n"
    );
    for g in first..first.saturating_add(per_listing) {
        body.push_str(&format!(
            "<li><a class=\"g\" href=\"/gen/g/{g}\">Generated Game {g}</a></li>\n"
        ));
    }
    body.push_str("</ul>\n");
    if paginator {
        body.push_str("<nav class=\"pages\">");
        for p in pagination(page, pages) {
            body.push_str(&format!(" <a href=\"/gen/list/{p}\">{p}</a>"));
        }
        body.push_str("</nav>\n");
    }
    if page < pages {
        body.push_str(&format!(
            "<a class=\"next\" href=\"/gen/list/{}\">Next</a>\n",
            page + 1
        ));
    }
    body.push_str("</body></html>\n");
    body
}

#[derive(Serialize)]
struct VideoGameLd {
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(rename = "@type")]
    kind: &'static str,
    name: String,
    #[serde(rename = "sameAs", skip_serializing_if = "Option::is_none")]
    same_as: Option<String>,
    offers: OfferLd,
}

#[derive(Serialize)]
struct OfferLd {
    #[serde(rename = "@type")]
    kind: &'static str,
    price: String,
    #[serde(rename = "priceCurrency")]
    price_currency: &'static str,
    availability: &'static str,
    #[serde(rename = "priceSpecification")]
    price_specification: PriceSpecLd,
}

#[derive(Serialize)]
struct PriceSpecLd {
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "priceType")]
    price_type: &'static str,
    price: String,
    #[serde(rename = "priceCurrency")]
    price_currency: &'static str,
}

fn decimal(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

async fn game(store: web::Data<GeneratedStore>, n: web::Path<String>) -> HttpResponse {
    wait(&store).await;
    let Some(n) = number_in(&n, store.game_count()) else {
        return not_found();
    };
    match game_page(n) {
        Ok(body) => html(body),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// The page of game `n`: its offer as JSON-LD, as the crawler's `jsonld`
/// profile reads it.
fn game_page(n: usize) -> serde_json::Result<String> {
    let g = generated_game(n);
    let ld = VideoGameLd {
        context: "https://schema.org",
        kind: "VideoGame",
        name: g.title.clone(),
        same_as: g
            .steam_id
            .as_ref()
            .map(|id| format!("https://store.steampowered.com/app/{id}/")),
        offers: OfferLd {
            kind: "Offer",
            price: decimal(g.price_cents),
            price_currency: "EUR",
            availability: "https://schema.org/InStock",
            price_specification: PriceSpecLd {
                kind: "UnitPriceSpecification",
                price_type: "https://schema.org/ListPrice",
                price: decimal(g.regular_cents),
                price_currency: "EUR",
            },
        },
    };
    let json = serde_json::to_string(&ld)?;
    // Titles are generated ("Generated Game N"), but escape anyway so the
    // script element can never be closed early.
    let json = json.replace("</", "<\\/");
    Ok(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <script type=\"application/ld+json\">{json}</script></head>\
         <body><h1>{title}</h1><p>{price} EUR</p></body></html>\n",
        title = g.title,
        price = decimal(g.price_cents),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as actix_test, App};

    fn store(latency_ms: u64) -> GeneratedStore {
        GeneratedStore {
            pages: 3,
            latency: Duration::from_millis(latency_ms),
            per_listing: 5,
            crawl_delay: None,
        }
    }

    #[actix_rt::test]
    async fn a_listing_page_has_per_listing_links_and_a_next_link() {
        let app = actix_test::init_service(App::new().configure(|c| configure(c, store(0)))).await;
        let body = actix_test::call_and_read_body(
            &app,
            actix_test::TestRequest::get()
                .uri("/gen/list/1")
                .to_request(),
        )
        .await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(body.matches("class=\"g\"").count(), 5);
        assert!(body.contains("<a class=\"next\" href=\"/gen/list/2\">"));
        assert!(body.contains("href=\"/gen/g/5\""));
    }

    #[test]
    fn the_paginator_shows_the_ends_and_a_window_around_the_page() {
        assert_eq!(pagination(1, 100), vec![2, 3, 4, 5, 6, 100]);
        assert_eq!(
            pagination(50, 100),
            vec![1, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 100]
        );
        assert_eq!(pagination(99, 100), vec![1, 94, 95, 96, 97, 98, 100]);
        assert_eq!(pagination(2, 3), vec![1, 3]);
        assert!(pagination(1, 1).is_empty());
    }

    #[actix_rt::test]
    async fn the_last_listing_page_has_no_next_link() {
        let app = actix_test::init_service(App::new().configure(|c| configure(c, store(0)))).await;
        let body = actix_test::call_and_read_body(
            &app,
            actix_test::TestRequest::get()
                .uri("/gen/list/3")
                .to_request(),
        )
        .await;
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("class=\"next\""));
        assert!(body.contains("href=\"/gen/g/15\""));
    }

    #[actix_rt::test]
    async fn out_of_range_or_garbage_numbers_are_404() {
        let app = actix_test::init_service(App::new().configure(|c| configure(c, store(0)))).await;
        for uri in [
            "/gen/list/0",
            "/gen/list/4",
            "/gen/list/x",
            "/gen/g/16",
            "/gen/g/0",
            "/gen/nope",
        ] {
            let resp = actix_test::call_service(
                &app,
                actix_test::TestRequest::get().uri(uri).to_request(),
            )
            .await;
            assert_eq!(resp.status(), 404, "{uri}");
        }
    }

    #[actix_rt::test]
    async fn a_game_page_carries_json_ld_with_its_price_and_every_third_a_steam_id() {
        let app = actix_test::init_service(App::new().configure(|c| configure(c, store(0)))).await;
        for n in [2usize, 3] {
            let uri = format!("/gen/g/{n}");
            let body = actix_test::call_and_read_body(
                &app,
                actix_test::TestRequest::get().uri(&uri).to_request(),
            )
            .await;
            let body = String::from_utf8_lossy(&body).into_owned();
            let start =
                body.find("application/ld+json\">").unwrap() + "application/ld+json\">".len();
            let end = body[start..].find("</script>").unwrap() + start;
            let v: serde_json::Value = serde_json::from_str(&body[start..end]).unwrap();
            let g = generated_game(n);
            assert_eq!(v["name"], format!("Generated Game {n}"));
            assert_eq!(v["offers"]["price"], decimal(g.price_cents));
            assert_eq!(
                v["offers"]["priceSpecification"]["price"],
                decimal(g.regular_cents)
            );
            assert_eq!(v.get("sameAs").is_some(), n % 3 == 0);
        }
    }

    #[actix_rt::test]
    async fn responses_wait_for_the_configured_latency() {
        let app = actix_test::init_service(App::new().configure(|c| configure(c, store(50)))).await;
        let started = std::time::Instant::now();
        let resp = actix_test::call_service(
            &app,
            actix_test::TestRequest::get().uri("/gen/g/1").to_request(),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_serial_store_links_each_listing_to_its_games_and_the_next_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SerialStore {
            listings: 3,
            per_listing: 4,
        };
        store.write(dir.path()).unwrap();
        let read = |path: &str| std::fs::read_to_string(dir.path().join(path)).unwrap();
        let first = read("gen/list/1");
        assert_eq!(first.matches("class=\"g\"").count(), 4);
        assert!(first.contains("href=\"/gen/g/4\""));
        assert!(!first.contains("href=\"/gen/g/5\""));
        assert!(first.contains("<a class=\"next\" href=\"/gen/list/2\">"));
        assert_eq!(first.matches("/gen/list/").count(), 1, "{first}");
        let last = read("gen/list/3");
        assert!(last.contains("href=\"/gen/g/12\""));
        assert!(!last.contains("/gen/list/"), "{last}");
        let games = std::fs::read_dir(dir.path().join("gen/g")).unwrap().count();
        assert_eq!(games, 12);
        assert!(!dir.path().join("gen/list/4").exists());
        let game = read("gen/g/12");
        assert!(game.contains("application/ld+json"));
        assert!(game.contains(&format!(
            "\"price\":\"{}\"",
            decimal(generated_game(12).price_cents)
        )));
    }

    #[actix_rt::test]
    async fn a_served_serial_store_answers_with_the_files_it_writes() {
        let store = SerialStore {
            listings: 2,
            per_listing: 3,
        };
        let dir = tempfile::tempdir().unwrap();
        store.write(dir.path()).unwrap();
        let app =
            actix_test::init_service(App::new().configure(|c| configure_serial(c, store))).await;
        for path in ["gen/list/1", "gen/list/2", "gen/g/1", "gen/g/6"] {
            let body = actix_test::call_and_read_body(
                &app,
                actix_test::TestRequest::get()
                    .uri(&format!("/{path}"))
                    .to_request(),
            )
            .await;
            let file = std::fs::read(dir.path().join(path)).unwrap();
            assert_eq!(body, file, "{path}");
        }
        for uri in ["/gen/list/3", "/gen/g/7", "/gen/g/0", "/gen/nope"] {
            let resp = actix_test::call_service(
                &app,
                actix_test::TestRequest::get().uri(uri).to_request(),
            )
            .await;
            assert_eq!(resp.status(), 404, "{uri}");
        }
    }

    #[test]
    fn generated_prices_are_positive_and_never_above_regular() {
        for n in 1..200 {
            let g = generated_game(n);
            assert!(g.price_cents > 0 && g.price_cents <= g.regular_cents);
        }
    }

    #[test]
    fn the_benchmark_site_config_parses_and_names_the_host() {
        let text = sites_toml("http://127.0.0.1:9000/", 16);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let site = &v["site"][0];
        assert_eq!(site["name"].as_str(), Some("gen"));
        assert_eq!(
            site["start"][0].as_str(),
            Some("http://127.0.0.1:9000/gen/list/1")
        );
        assert_eq!(site["allowed_hosts"][0].as_str(), Some("127.0.0.1:9000"));
        assert_eq!(site["politeness"]["concurrency"].as_integer(), Some(16));
        assert_eq!(site["politeness"]["robots"].as_bool(), Some(false));
        assert_eq!(site["profile"]["extract"].as_str(), Some("jsonld"));
        assert_eq!(site["profile"]["store"].as_str(), Some("GenStore"));
        assert_eq!(site["profile"]["links"].as_str(), Some("a.g"));
        assert_eq!(
            site["profile"]["next"].as_str(),
            Some("a.next, nav.pages a")
        );
    }

    #[test]
    fn host_keys_keep_non_default_ports_and_drop_paths() {
        assert_eq!(host_key("http://127.0.0.1:9000"), "127.0.0.1:9000");
        assert_eq!(host_key("https://Example.com/x"), "example.com");
        assert_eq!(host_key("https://example.com:443/x"), "example.com");
        assert_eq!(host_key("http://example.com:80"), "example.com");
        assert_eq!(host_key("http://[::1]:8080/"), "[::1]:8080");
        assert_eq!(host_key("localhost"), "localhost");
    }
}
