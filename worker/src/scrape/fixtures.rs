//! What the extractors' unit tests share: a profile for a given extractor, the
//! URL of the listing page they read, and game pages shaped like the ones real
//! stores publish (invented, in the markup styles of Steam, GOG, Humble, Epic,
//! Nuuvem, Instant Gaming, a Shopify shop and a German shop using microdata).

use url::Url;

use crate::protocol::worker::{Extractor, Profile};

pub(super) fn profile(extract: Extractor) -> Profile {
    Profile {
        extract,
        store: "TestStore".to_owned(),
        currency: "EUR".to_owned(),
        allowed_hosts: vec!["shop.example".to_owned()],
        links: "a.game-link".to_owned(),
        next: Some("a[rel=next]".to_owned()),
        css: None,
        title_strip: Vec::new(),
    }
}

pub(super) fn base() -> Url {
    Url::parse("https://shop.example/games/?page=1").unwrap()
}

/// A Steam app page on sale: no structured data, prices in plain HTML.
pub(super) const STEAM_APP: &str = include_str!("fixtures/steam_app.html");
/// JSON-LD `Product` typed as a URL, one offer per region and currency,
/// numeric prices, a `StrikethroughPrice` specification.
pub(super) const GOG_GAME: &str = include_str!("fixtures/gog_game.html");
/// A JSON-LD `Product` without offers; the price is in OpenGraph
/// `product:price`/`product:sale_price` tags, the title has the store's prefix
/// and suffix.
pub(super) const HUMBLE_STORE: &str = include_str!("fixtures/humble_store.html");
/// A free game: `["VideoGame","SoftwareApplication"]` with a price of 0,
/// after an unrelated `WebSite` block.
pub(super) const EPIC_STORE: &str = include_str!("fixtures/epic_store.html");
/// Microdata: an `AggregateOffer` with `lowPrice` as display text in reais,
/// no currency stated, a Steam link in `sameAs`.
pub(super) const NUUVEM_GAME: &str = include_str!("fixtures/nuuvem_game.html");
/// JSON-LD `@graph` whose product refers to its offer by `@id`; a decimal
/// comma, a bare "InStock", a list of `SalePrice`/`ListPrice` specifications,
/// a Steam app id as an `identifier`.
pub(super) const INSTANT_GAMING: &str = include_str!("fixtures/instant_gaming.html");
/// A Shopify-style `ProductGroup` whose editions are `hasVariant` products.
pub(super) const PIXEL_CRATE: &str = include_str!("fixtures/pixel_crate.html");
/// Microdata with the prices only in `priceSpecification`s, as display text.
pub(super) const EURO_MICRODATA: &str = include_str!("fixtures/euro_microdata.html");
