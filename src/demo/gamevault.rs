//! GameVault: game pages carry OpenGraph price tags, or microdata for every
//! third game.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::catalog::{decimal_price, Store};
use super::load::{load_offer, load_page, query_page};
use super::pages::{GameVaultGame, GameVaultListing};
use super::render::{html, steam_url};
use super::state::DemoState;

pub(super) async fn gamevault_listing(
    req: HttpRequest,
    state: web::Data<DemoState>,
) -> HttpResponse {
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

pub(super) async fn gamevault_game(
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
