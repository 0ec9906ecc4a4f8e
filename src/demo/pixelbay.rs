//! PixelBay: game pages carry their offer as JSON-LD.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::catalog::{decimal_price, Offer, Store};
use super::load::{load_offer, load_page, query_page};
use super::pages::{
    json_for_script, OfferLd, PixelBayGame, PixelBayListing, PriceSpecLd, VideoGameLd,
};
use super::render::{html, server_error, steam_url};
use super::state::DemoState;

fn plain_price(o: &Offer) -> String {
    format!("€{}", decimal_price(o.price_cents))
}

pub(super) async fn pixelbay_listing(
    req: HttpRequest,
    state: web::Data<DemoState>,
) -> HttpResponse {
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

pub(super) async fn pixelbay_game(
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
