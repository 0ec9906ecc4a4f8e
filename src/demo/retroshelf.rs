//! RetroShelf: plain HTML, read with the site's CSS selectors. Its last
//! listing page links to a staff page that robots.txt forbids.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::catalog::{euro_price, Store};
use super::load::{load_offer, load_page, parse_page};
use super::pages::{RetroShelfGame, RetroShelfListing, RetroShelfPrivate};
use super::render::html;
use super::state::DemoState;

/// Where RetroShelf's last listing page points: a page robots.txt forbids.
pub const RETROSHELF_PRIVATE_PATH: &str = "/demo/retroshelf/private/staff-picks";

/// RetroShelf's price text: European format, and "Free" for giveaways.
fn retro_price(cents: i64) -> String {
    if cents == 0 {
        "Free".to_owned()
    } else {
        euro_price(cents)
    }
}

pub(super) async fn retroshelf_first_page(
    req: HttpRequest,
    state: web::Data<DemoState>,
) -> HttpResponse {
    retroshelf_listing(req, state, Some(1)).await
}

pub(super) async fn retroshelf_page(
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

pub(super) async fn retroshelf_game(
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

pub(super) async fn retroshelf_private(name: web::Path<String>) -> HttpResponse {
    html(
        RetroShelfPrivate {
            name: name.into_inner(),
        }
        .render(),
    )
}
