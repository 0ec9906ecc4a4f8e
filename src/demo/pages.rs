//! Askama page models for the demo stores, plus the JSON-LD escaping they rely on.

use askama::Template;
use serde::Serialize;

/// A game in a listing page.
pub struct ListItem {
    pub slug: String,
    pub title: String,
    pub price: String,
}

#[derive(Template)]
#[template(path = "demo/pixelbay/listing.html")]
pub struct PixelBayListing {
    pub games: Vec<ListItem>,
    pub page: usize,
    pub pages: usize,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "demo/pixelbay/game.html")]
pub struct PixelBayGame {
    pub title: String,
    pub price: String,
    pub regular: String,
    pub available: bool,
    pub steam_url: Option<String>,
    /// Already escaped for a `<script>` element by [`json_for_script`].
    pub json_ld: String,
}

#[derive(Template)]
#[template(path = "demo/gamevault/listing.html")]
pub struct GameVaultListing {
    pub games: Vec<ListItem>,
    pub page: usize,
    pub pages: usize,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "demo/gamevault/game.html")]
pub struct GameVaultGame {
    pub title: String,
    pub price: String,
    pub regular: String,
    pub available: bool,
    pub steam_url: Option<String>,
    /// Microdata instead of OpenGraph price tags (every third catalog game).
    pub microdata: bool,
}

#[derive(Template)]
#[template(path = "demo/retroshelf/listing.html")]
pub struct RetroShelfListing {
    pub games: Vec<ListItem>,
    pub page: usize,
    pub pages: usize,
    pub next: Option<String>,
    /// Only on the last page: a link robots.txt forbids, to test that crawlers obey it.
    pub private_link: Option<String>,
}

#[derive(Template)]
#[template(path = "demo/retroshelf/game.html")]
pub struct RetroShelfGame {
    pub title: String,
    pub now: String,
    pub was: String,
    pub available: bool,
    pub steam_id: Option<String>,
}

#[derive(Template)]
#[template(path = "demo/retroshelf/private.html")]
pub struct RetroShelfPrivate {
    pub name: String,
}

#[derive(Template)]
#[template(path = "demo/not_found.html")]
pub struct NotFound {
    pub path: String,
}

/// schema.org `VideoGame` as PixelBay publishes it. Field order mirrors the
/// documented shape so the page source reads naturally.
#[derive(Serialize)]
pub struct VideoGameLd<'a> {
    #[serde(rename = "@context")]
    pub context: &'static str,
    #[serde(rename = "@type")]
    pub kind: &'static str,
    pub name: &'a str,
    #[serde(rename = "sameAs", skip_serializing_if = "Option::is_none")]
    pub same_as: Option<String>,
    pub offers: OfferLd,
}

#[derive(Serialize)]
pub struct OfferLd {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    pub price: String,
    #[serde(rename = "priceCurrency")]
    pub price_currency: &'static str,
    pub availability: &'static str,
    #[serde(rename = "priceSpecification")]
    pub price_specification: PriceSpecLd,
}

#[derive(Serialize)]
pub struct PriceSpecLd {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    #[serde(rename = "priceType")]
    pub price_type: &'static str,
    pub price: String,
    #[serde(rename = "priceCurrency")]
    pub price_currency: &'static str,
}

/// Serialises `value` as JSON that is safe to paste verbatim inside
/// `<script type="application/ld+json">`.
///
/// The HTML parser ends a script element at the first `</script`, whatever the
/// JSON means, and `<!--` switches it into a comment-like state; both can only
/// occur inside JSON strings, where `<\/` and `<\u0021--` are equivalent escapes.
pub fn json_for_script<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    Ok(escape_json_for_script(&serde_json::to_string(value)?))
}

/// The escaping step of [`json_for_script`], for already serialised JSON.
pub fn escape_json_for_script(json: &str) -> String {
    json.replace("</", "<\\/").replace("<!--", "<\\u0021--")
}
