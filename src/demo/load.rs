//! What a store handler loads before it renders: one listing page of the
//! store's offers, chosen by the page number in the request, or one offer by
//! its slug; either one, or the 404/500 response to send instead.

use actix_web::{HttpRequest, HttpResponse};

use super::catalog::{store_offers, Offer, Store};
use super::pages::ListItem;
use super::render::{not_found, server_error};
use super::state::DemoState;

/// The `page` query parameter: absent → 1; `0`, non-numbers → `None` (a 404).
pub(super) fn query_page(query: &str) -> Option<usize> {
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

pub(super) fn parse_page(raw: &str) -> Option<usize> {
    raw.parse::<usize>().ok().filter(|&n| n >= 1)
}

/// One listing page of a store: its offers, the page count, and whether it is last.
pub(super) struct Page {
    offers: Vec<Offer>,
    pub(super) number: usize,
    pub(super) count: usize,
}

impl Page {
    pub(super) fn is_last(&self) -> bool {
        self.number >= self.count
    }

    pub(super) fn items(&self, price: fn(&Offer) -> String) -> Vec<ListItem> {
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
pub(super) async fn load_page(
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
pub(super) async fn load_offer(
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
