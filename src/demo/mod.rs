//! Offline demo stores (PixelBay, GameVault, RetroShelf) served under `/demo/`,
//! so a fresh server can crawl, merge and show prices without the internet.
//!
//! Each store exposes its offers through a different kind of markup (JSON-LD,
//! OpenGraph/microdata, plain HTML for CSS selectors) to exercise every
//! extractor. Prices depend on a seed held in [`DemoState`]; changing it moves
//! prices so re-crawls have something to notice.

mod catalog;
mod pages;

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use askama::Template;

pub use catalog::{
    catalog_titles, decimal_price, euro_price, expected_catalog, ExpectedOffer, Store,
    OUT_OF_STOCK_PER_STORE,
};
pub use pages::{escape_json_for_script, json_for_script};

use catalog::{store_offers, Offer};
use pages::*;

/// Default crawler configuration for the demo stores. Contains the literal
/// placeholders `{public_url}` and `{public_host}`; see [`sites_toml`].
pub const SITES_TOML_TEMPLATE: &str = include_str!("sites.toml");

/// The robots.txt served at `/robots.txt`; it hides RetroShelf's staff area.
pub const ROBOTS_TXT: &str =
    "User-agent: *\nDisallow: /api/\nDisallow: /admin/\nDisallow: /demo/retroshelf/private/\n";

/// Where RetroShelf's last listing page points: a page robots.txt forbids.
pub const RETROSHELF_PRIVATE_PATH: &str = "/demo/retroshelf/private/staff-picks";

/// [`SITES_TOML_TEMPLATE`] with the placeholders filled in.
/// `public_url` is e.g. `http://127.0.0.1:8080` (a trailing `/` is tolerated);
/// `public_host` is the host as `allowed_hosts` spells it: `host[:port]`, e.g.
/// `127.0.0.1:8080` (the port is omitted only when it is the scheme's default).
pub fn sites_toml(public_url: &str, public_host: &str) -> String {
    SITES_TOML_TEMPLATE
        .replace("{public_url}", public_url.trim_end_matches('/'))
        .replace("{public_host}", public_host)
}

/// Shared state of the demo stores: the seed all prices derive from.
/// Register it as `web::Data<DemoState>`.
#[derive(Debug)]
pub struct DemoState {
    seed: AtomicU64,
}

impl DemoState {
    pub fn new(seed: u64) -> Self {
        Self {
            seed: AtomicU64::new(seed),
        }
    }

    pub fn seed(&self) -> u64 {
        // Relaxed is enough: the seed is a single independent value.
        self.seed.load(Ordering::Relaxed)
    }

    /// Changes every store's prices and stock from the next request on.
    pub fn set_seed(&self, seed: u64) {
        self.seed.store(seed, Ordering::Relaxed);
    }
}

/// Registers the demo store routes under `/demo/` and `GET /robots.txt`.
/// Needs `web::Data<DemoState>` in the app; `/static/demo.css` is served by the caller.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/robots.txt", web::get().to(robots)).service(
        web::scope("/demo")
            .route("/pixelbay/", web::get().to(pixelbay_listing))
            .route("/pixelbay/games/{slug}", web::get().to(pixelbay_game))
            .route("/gamevault/", web::get().to(gamevault_listing))
            .route("/gamevault/p/{slug}", web::get().to(gamevault_game))
            .route("/retroshelf/", web::get().to(retroshelf_first_page))
            .route("/retroshelf/page/{page}", web::get().to(retroshelf_page))
            .route("/retroshelf/item/{slug}", web::get().to(retroshelf_game))
            .route(
                "/retroshelf/private/{name}",
                web::get().to(retroshelf_private),
            )
            .route("/{store}", web::get().to(store_root_redirect))
            .default_service(web::to(not_found)),
    );
}

async fn robots() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(ROBOTS_TXT)
}

/// `/demo/pixelbay` → `/demo/pixelbay/`, so a hand-typed URL still works.
async fn store_root_redirect(req: HttpRequest, store: web::Path<String>) -> HttpResponse {
    match Store::from_slug(&store) {
        Some(s) => HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, format!("/demo/{}/", s.slug())))
            .finish(),
        None => not_found(req).await,
    }
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let body = NotFound {
        path: req.path().to_owned(),
    }
    .render()
    // The 404 page itself failing to render must not hide the 404.
    .unwrap_or_else(|_| "<!DOCTYPE html><title>Not found</title><h1>Not found</h1>".to_owned());
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

fn html(result: Result<String, askama::Error>) -> HttpResponse {
    match result {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(_) => server_error(),
    }
}

fn server_error() -> HttpResponse {
    HttpResponse::InternalServerError()
        .content_type("text/html; charset=utf-8")
        .body("<!DOCTYPE html><title>Error</title><h1>The demo store is broken</h1>")
}

/// The `page` query parameter: absent → 1; `0`, non-numbers → `None` (a 404).
fn query_page(query: &str) -> Option<usize> {
    let mut raw = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "page" {
            raw = Some(value);
        }
    }
    match raw {
        None => Some(1),
        Some(v) => parse_page(v),
    }
}

fn parse_page(raw: &str) -> Option<usize> {
    raw.parse::<usize>().ok().filter(|&n| n >= 1)
}

/// One listing page of a store: its offers, the page count, and whether it is last.
struct Page {
    offers: Vec<Offer>,
    number: usize,
    count: usize,
}

impl Page {
    fn is_last(&self) -> bool {
        self.number >= self.count
    }

    fn items(&self, price: fn(&Offer) -> String) -> Vec<ListItem> {
        self.offers
            .iter()
            .map(|o| ListItem {
                slug: o.game.slug.clone(),
                title: o.title().to_owned(),
                price: price(o),
            })
            .collect()
    }
}

/// Slices the store's offers into page `number`; `None` when out of range.
fn listing_page(all: Vec<Offer>, per_page: usize, number: usize) -> Option<Page> {
    let count = all.len().div_ceil(per_page).max(1);
    if number == 0 || number > count {
        return None;
    }
    let offers = all
        .into_iter()
        .skip((number - 1) * per_page)
        .take(per_page)
        .collect();
    Some(Page {
        offers,
        number,
        count,
    })
}

/// What a listing handler needs before rendering, or the response to send instead.
async fn load_page(
    req: &HttpRequest,
    state: &DemoState,
    store: Store,
    number: Option<usize>,
) -> Result<Page, HttpResponse> {
    let offers = store_offers(store, state.seed()).map_err(|_| server_error())?;
    match number.and_then(|n| listing_page(offers, store.per_page(), n)) {
        Some(page) => Ok(page),
        None => Err(not_found(req.clone()).await),
    }
}

/// Looks up one offer of a store, or produces the 404/500 response.
async fn load_offer(
    req: &HttpRequest,
    state: &DemoState,
    store: Store,
    slug: &str,
) -> Result<Offer, HttpResponse> {
    let offers = store_offers(store, state.seed()).map_err(|_| server_error())?;
    match offers.into_iter().find(|o| o.game.slug == slug) {
        Some(offer) => Ok(offer),
        None => Err(not_found(req.clone()).await),
    }
}

fn steam_url(offer: &Offer) -> Option<String> {
    offer
        .game
        .steam_id
        .as_ref()
        .map(|id| format!("https://store.steampowered.com/app/{id}/"))
}

fn plain_price(o: &Offer) -> String {
    format!("€{}", decimal_price(o.price_cents))
}

// ---- PixelBay: JSON-LD ----

async fn pixelbay_listing(req: HttpRequest, state: web::Data<DemoState>) -> HttpResponse {
    let number = query_page(req.query_string());
    let page = match load_page(&req, &state, Store::PixelBay, number).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    html(
        PixelBayListing {
            games: page.items(plain_price),
            page: page.number,
            pages: page.count,
            next: (!page.is_last()).then(|| format!("/demo/pixelbay/?page={}", page.number + 1)),
        }
        .render(),
    )
}

/// The JSON-LD document PixelBay embeds for `offer`.
fn pixelbay_json_ld(offer: &Offer) -> VideoGameLd<'static> {
    VideoGameLd {
        context: "https://schema.org",
        kind: "VideoGame",
        name: offer.title(),
        same_as: steam_url(offer),
        offers: OfferLd {
            kind: "Offer",
            price: decimal_price(offer.price_cents),
            price_currency: "EUR",
            availability: if offer.available {
                "https://schema.org/InStock"
            } else {
                "https://schema.org/OutOfStock"
            },
            price_specification: PriceSpecLd {
                kind: "UnitPriceSpecification",
                price_type: "https://schema.org/ListPrice",
                price: decimal_price(offer.regular_cents),
                price_currency: "EUR",
            },
        },
    }
}

async fn pixelbay_game(
    req: HttpRequest,
    state: web::Data<DemoState>,
    slug: web::Path<String>,
) -> HttpResponse {
    let offer = match load_offer(&req, &state, Store::PixelBay, &slug).await {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    let Ok(json_ld) = json_for_script(&pixelbay_json_ld(&offer)) else {
        return server_error();
    };
    html(
        PixelBayGame {
            title: offer.title().to_owned(),
            price: decimal_price(offer.price_cents),
            regular: decimal_price(offer.regular_cents),
            available: offer.available,
            steam_url: steam_url(&offer),
            json_ld,
        }
        .render(),
    )
}

// ---- GameVault: OpenGraph, microdata for every third game ----

async fn gamevault_listing(req: HttpRequest, state: web::Data<DemoState>) -> HttpResponse {
    let number = query_page(req.query_string());
    let page = match load_page(&req, &state, Store::GameVault, number).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    html(
        GameVaultListing {
            games: page.items(|o| format!("{} EUR", decimal_price(o.price_cents))),
            page: page.number,
            pages: page.count,
            next: (!page.is_last()).then(|| format!("/demo/gamevault/?page={}", page.number + 1)),
        }
        .render(),
    )
}

async fn gamevault_game(
    req: HttpRequest,
    state: web::Data<DemoState>,
    slug: web::Path<String>,
) -> HttpResponse {
    let offer = match load_offer(&req, &state, Store::GameVault, &slug).await {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    html(
        GameVaultGame {
            title: offer.title().to_owned(),
            price: decimal_price(offer.price_cents),
            regular: decimal_price(offer.regular_cents),
            available: offer.available,
            steam_url: steam_url(&offer),
            microdata: offer.uses_microdata(),
        }
        .render(),
    )
}

// ---- RetroShelf: plain HTML for CSS selectors ----

/// RetroShelf's price text: European format, and "Free" for giveaways.
fn retro_price(cents: i64) -> String {
    if cents == 0 {
        "Free".to_owned()
    } else {
        euro_price(cents)
    }
}

async fn retroshelf_first_page(req: HttpRequest, state: web::Data<DemoState>) -> HttpResponse {
    retroshelf_listing(req, state, Some(1)).await
}

async fn retroshelf_page(
    req: HttpRequest,
    state: web::Data<DemoState>,
    page: web::Path<String>,
) -> HttpResponse {
    let number = parse_page(&page);
    retroshelf_listing(req, state, number).await
}

async fn retroshelf_listing(
    req: HttpRequest,
    state: web::Data<DemoState>,
    number: Option<usize>,
) -> HttpResponse {
    let page = match load_page(&req, &state, Store::RetroShelf, number).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    html(
        RetroShelfListing {
            games: page.items(|o| retro_price(o.price_cents)),
            page: page.number,
            pages: page.count,
            next: (!page.is_last()).then(|| format!("/demo/retroshelf/page/{}", page.number + 1)),
            private_link: page.is_last().then(|| RETROSHELF_PRIVATE_PATH.to_owned()),
        }
        .render(),
    )
}

async fn retroshelf_game(
    req: HttpRequest,
    state: web::Data<DemoState>,
    slug: web::Path<String>,
) -> HttpResponse {
    let offer = match load_offer(&req, &state, Store::RetroShelf, &slug).await {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    html(
        RetroShelfGame {
            title: offer.title().to_owned(),
            now: retro_price(offer.price_cents),
            was: euro_price(offer.regular_cents),
            available: offer.available,
            steam_id: offer.game.steam_id.clone(),
        }
        .render(),
    )
}

async fn retroshelf_private(name: web::Path<String>) -> HttpResponse {
    html(
        RetroShelfPrivate {
            name: name.into_inner(),
        }
        .render(),
    )
}

#[cfg(test)]
mod tests;
