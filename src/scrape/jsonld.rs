//! The `jsonld` extractor: schema.org `Product`/`VideoGame`/
//! `SoftwareApplication` nodes with `offers`, from `<script
//! type="application/ld+json">` blocks.

use serde_json::{Map, Value};

use super::markup::{clean_text, machine_price, static_selector};
use super::page::Page;
use super::trace::Field;
use super::{ExtractError, Price};
use crate::protocol::worker::Item;
use crate::scrape::steam::{digits_only, steam_app_id, STEAM};

type Object = Map<String, Value>;

/// Nesting we follow through `@graph`/`mainEntity`; real pages use one or two.
const MAX_DEPTH: usize = 6;

pub(super) fn extract(page: &Page<'_>) -> Result<Vec<Item>, ExtractError> {
    let rec = page.rec;
    // (block number, product), blocks counted from 1 in page order.
    let mut products: Vec<(usize, Object)> = Vec::new();
    if let Some(sel) = static_selector("script[type]") {
        let mut block = 0;
        for script in page.doc.select(&sel) {
            let kind = script.value().attr("type").unwrap_or("");
            let kind = kind.split(';').next().unwrap_or("").trim();
            if !kind.eq_ignore_ascii_case("application/ld+json") {
                continue;
            }
            block += 1;
            let text: String = script.text().collect();
            // One broken block (a CMS template bug) must not hide the others.
            match serde_json::from_str::<Value>(strip_wrappers(&text)) {
                Ok(value) => {
                    let before = products.len();
                    let mut found = Vec::new();
                    collect_products(value, 0, &mut found);
                    products.extend(found.into_iter().map(|p| (block, p)));
                    rec.page(|| {
                        let names: Vec<String> =
                            products[before..].iter().map(|(_, p)| label(p)).collect();
                        match names.is_empty() {
                            true => format!("JSON-LD block {block}: no Product, VideoGame or SoftwareApplication"),
                            false => format!("JSON-LD block {block}: {}", names.join(", ")),
                        }
                    });
                }
                Err(e) => rec.page(|| format!("JSON-LD block {block}: not JSON ({e})")),
            }
        }
        if block == 0 {
            rec.page(|| "no JSON-LD blocks (script type=application/ld+json)".to_owned());
        }
    }

    let mut items: Vec<Item> = Vec::new();
    let mut first_failure: Option<ExtractError> = None;
    for (block, product) in &products {
        rec.product(|| format!("JSON-LD block {block}, {}", label(product)));
        match product_item(page, *block, product) {
            Ok(Some(item)) => {
                let duplicate = items.iter().position(|i| {
                    i.title == item.title
                        && i.price_cents == item.price_cents
                        && i.currency == item.currency
                });
                match duplicate {
                    Some(i) => rec.note(|| format!("same offer as item {}", i + 1)),
                    None => {
                        rec.item(items.len());
                        items.push(item);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                rec.note(|| e.to_string());
                first_failure.get_or_insert(e);
            }
        }
    }
    if !items.is_empty() {
        return Ok(items);
    }
    Err(first_failure.unwrap_or_else(|| page.no_product()))
}

/// A product as a trace names it: its type and name.
fn label(product: &Object) -> String {
    let kind = types(product)
        .first()
        .map_or("Product", |t| short_name(t))
        .to_owned();
    match product.get("name").and_then(text_of) {
        Some(name) => format!("{kind} {:?}", clean_text(&decode_entities(&name))),
        None => kind,
    }
}

/// Some sites wrap the JSON in an HTML comment or CDATA section.
fn strip_wrappers(text: &str) -> &str {
    let mut t = text.trim();
    for (open, close) in [
        ("<!--", "-->"),
        ("//<![CDATA[", "//]]>"),
        ("<![CDATA[", "]]>"),
    ] {
        if let Some(inner) = t.strip_prefix(open).and_then(|s| s.strip_suffix(close)) {
            t = inner.trim();
        }
    }
    t
}

fn collect_products(value: Value, depth: usize, out: &mut Vec<Object>) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Array(values) => {
            for v in values {
                collect_products(v, depth + 1, out);
            }
        }
        Value::Object(mut obj) => {
            let graph = obj.remove("@graph");
            let main = if is_product(&obj) {
                None
            } else {
                obj.remove("mainEntity")
            };
            if is_product(&obj) {
                out.push(obj);
            }
            for nested in [graph, main].into_iter().flatten() {
                collect_products(nested, depth + 1, out);
            }
        }
        _ => {}
    }
}

fn is_product(obj: &Object) -> bool {
    types(obj).iter().any(|t| {
        matches!(
            short_name(t),
            "Product" | "VideoGame" | "SoftwareApplication"
        )
    })
}

fn types(obj: &Object) -> Vec<&str> {
    match obj.get("@type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// "https://schema.org/InStock" and "schema:InStock" both mean "InStock".
fn short_name(value: &str) -> &str {
    value.trim().rsplit(['/', ':', '#']).next().unwrap_or(value)
}

fn has_type(obj: &Object, name: &str) -> bool {
    types(obj).iter().any(|t| short_name(t) == name)
}

/// `Ok(None)`: a product without a name (a fragment of markup), which
/// is only worth an error when nothing else on the page works.
fn product_item(
    page: &Page<'_>,
    block: usize,
    product: &Object,
) -> Result<Option<Item>, ExtractError> {
    let rec = page.rec;
    let kind = types(product).first().map_or("Product", |t| short_name(t));
    let at = |path: &str| format!("JSON-LD block {block}, {kind} > {path}");
    let Some(raw) = product.get("name").and_then(text_of) else {
        rec.looked(Field::Title, || at("name (absent)"));
        rec.note(|| "no name".to_owned());
        return Ok(None);
    };
    let title = clean_text(&decode_entities(&raw));
    if title.is_empty() {
        rec.looked(Field::Title, || at("name (empty)"));
        rec.note(|| "no name".to_owned());
        return Ok(None);
    }
    rec.found(Field::Title, || at(&format!("name {raw:?}")));
    let offers = objects(product.get("offers"));
    if offers.is_empty() {
        rec.looked(Field::Price, || at("offers (absent)"));
        return Err(page.no_price(title));
    }
    let mut found: Vec<Offer> = Vec::new();
    let mut first_error = None;
    for (n, offer) in offers.iter().enumerate() {
        let path = if offers.len() == 1 {
            "offers".to_owned()
        } else {
            format!("offers[{n}]")
        };
        match read_offer(offer, &page.profile.currency) {
            Ok(Some(o)) => found.push(Offer { path, ..o }),
            Ok(None) => rec.looked(Field::Price, || {
                at(&format!(
                    "{path} (no price, lowPrice or priceSpecification price)"
                ))
            }),
            Err(source) => {
                rec.looked(Field::Price, || at(&format!("{path}: {source}")));
                first_error.get_or_insert(source);
            }
        }
    }
    // Several offers (editions, sellers): the cheapest one we can buy.
    let best = found
        .iter()
        .filter(|o| o.available)
        .min_by_key(|o| o.price.cents)
        .or_else(|| found.iter().min_by_key(|o| o.price.cents))
        .cloned();
    let Some(offer) = best else {
        return Err(match first_error {
            Some(source) => ExtractError::BadPrice { title, source },
            None => page.no_price(title),
        });
    };
    let choice = if found.len() > 1 {
        format!(" (the cheapest available of {} offers)", found.len())
    } else {
        String::new()
    };
    rec.found(Field::Price, || {
        at(&format!(
            "{} > {} {:?}{choice}",
            offer.path, offer.price_key, offer.amount
        ))
    });
    rec.found(Field::Currency, || match &offer.currency_key {
        Some(key) => at(&format!("{} > {key}", offer.path)),
        None => format!("profile currency {:?}", page.profile.currency),
    });
    match offer.regular {
        Some(_) => rec.found(Field::RegularPrice, || {
            at(&format!("{} > priceSpecification (ListPrice or StrikethroughPrice)", offer.path))
        }),
        None => rec.looked(Field::RegularPrice, || {
            at(&format!("{} > priceSpecification (no ListPrice or StrikethroughPrice in the offer's currency)", offer.path))
        }),
    }
    match &offer.availability {
        Some(a) => rec.found(Field::Availability, || {
            at(&format!("{} > availability {a:?}", offer.path))
        }),
        None => rec.found(Field::Availability, || {
            at(&format!("{} > availability absent: available", offer.path))
        }),
    }

    let mut item = page.item(title, offer.price);
    item.regular_cents = offer.regular;
    item.available = offer.available;
    if let Some(id) = steam_id(page, block, product).or_else(|| page.steam_link()) {
        item.external_ids.insert(STEAM.to_owned(), id);
    }
    Ok(Some(item))
}

#[derive(Clone)]
struct Offer {
    price: Price,
    regular: Option<i64>,
    available: bool,
    /// Where the offer is in its product, for traces.
    path: String,
    /// The key the amount came from (`price`, `lowPrice`, ...) and its text.
    price_key: &'static str,
    amount: String,
    currency_key: Option<&'static str>,
    availability: Option<String>,
}

fn read_offer(offer: &Object, default_currency: &str) -> Result<Option<Offer>, super::PriceError> {
    let specs = objects(offer.get("priceSpecification"));
    let (currency, currency_key) = match offer.get("priceCurrency").and_then(text_of) {
        Some(c) => (c, Some("priceCurrency")),
        None => match specs
            .iter()
            .find_map(|s| s.get("priceCurrency").and_then(text_of))
        {
            Some(c) => (c, Some("priceSpecification > priceCurrency")),
            None => (default_currency.to_owned(), None),
        },
    };

    let aggregate = has_type(offer, "AggregateOffer");
    let own = if aggregate {
        [
            ("lowPrice", offer.get("lowPrice")),
            ("price", offer.get("price")),
        ]
    } else {
        [("price", offer.get("price")), ("price", None)]
    };
    let amount = own
        .into_iter()
        .find_map(|(key, v)| Some((key, text_of(v?)?)))
        // No price of its own: the sale price may sit in an untyped specification.
        .or_else(|| {
            specs.iter().filter(|s| !is_regular_spec(s)).find_map(|s| {
                Some((
                    "priceSpecification > price",
                    s.get("price").and_then(text_of)?,
                ))
            })
        });
    let Some((price_key, amount)) = amount else {
        if aggregate {
            // An AggregateOffer without lowPrice may still list its offers.
            let nested: Vec<Offer> = objects(offer.get("offers"))
                .into_iter()
                .filter_map(|o| read_offer(o, &currency).ok().flatten())
                .collect();
            return Ok(nested
                .into_iter()
                .min_by_key(|o| o.price.cents)
                .map(|o| Offer {
                    price_key: "offers > price",
                    ..o
                }));
        }
        return Ok(None);
    };
    let price = machine_price(&amount, &currency)?;

    let regular = specs.iter().filter(|s| is_regular_spec(s)).find_map(|s| {
        let amount = s.get("price").and_then(text_of)?;
        let currency = s
            .get("priceCurrency")
            .and_then(text_of)
            .unwrap_or(currency.clone());
        let regular = machine_price(&amount, &currency).ok()?;
        // A list price in another currency cannot be compared with the offer.
        (regular.currency == price.currency).then_some(regular.cents)
    });
    let availability = offer.get("availability").and_then(text_of);
    let available = !availability.as_deref().is_some_and(is_unavailable);
    Ok(Some(Offer {
        price,
        regular,
        available,
        path: String::new(),
        price_key,
        amount,
        currency_key,
        availability,
    }))
}

fn is_regular_spec(spec: &Object) -> bool {
    spec.get("priceType").and_then(text_of).is_some_and(|t| {
        let t = short_name(&t).to_owned();
        t.ends_with("ListPrice") || t.ends_with("StrikethroughPrice")
    })
}

/// schema.org availability values (or their bare names) that mean "cannot buy".
pub(super) fn is_unavailable(availability: &str) -> bool {
    let name = short_name(availability).to_ascii_lowercase();
    ["outofstock", "soldout", "discontinued"]
        .iter()
        .any(|s| name.ends_with(s))
}

fn steam_id(page: &Page<'_>, block: usize, product: &Object) -> Option<String> {
    let same_as = match product.get("sameAs") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(text_of).collect(),
        _ => vec![],
    };
    if let Some((url, id)) = same_as.iter().find_map(|u| Some((u, steam_app_id(u)?))) {
        page.rec.found(Field::ExternalId, || {
            format!("JSON-LD block {block}, sameAs {url:?}")
        });
        return Some(id);
    }
    page.rec.looked(Field::ExternalId, || {
        format!("JSON-LD block {block}, sameAs (no Steam store URL)")
    });
    let id = objects(product.get("identifier"))
        .into_iter()
        .find_map(|pv| {
            let property = pv.get("propertyID").and_then(text_of)?;
            if !property.trim().eq_ignore_ascii_case(STEAM) {
                return None;
            }
            digits_only(&pv.get("value").and_then(text_of)?)
        });
    match &id {
        Some(id) => page.rec.found(Field::ExternalId, || {
            format!("JSON-LD block {block}, identifier propertyID \"Steam\" value {id:?}")
        }),
        None => page.rec.looked(Field::ExternalId, || {
            format!("JSON-LD block {block}, identifier (no propertyID \"Steam\")")
        }),
    }
    id
}

/// The objects in a value that may be one object or an array of them.
fn objects(value: Option<&Value>) -> Vec<&Object> {
    match value {
        Some(Value::Object(o)) => vec![o],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).collect(),
        _ => vec![],
    }
}

/// Strings as they are, numbers as their JSON text ("7.99", "8").
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// JSON-LD is raw script text, so entities the CMS escaped stay escaped; the
/// common ones are undone here (unknown ones are left alone).
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => ' ',
                _ => {
                    let code = match name.strip_prefix('#') {
                        Some(hex) if hex.starts_with(['x', 'X']) => {
                            u32::from_str_radix(&hex[1..], 16).ok()
                        }
                        Some(dec) => dec.parse().ok(),
                        None => None,
                    };
                    char::from_u32(code?)?
                }
            };
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::worker::{Extractor, Profile};
    use crate::scrape::{extract_page, fixtures::profile};
    use url::Url;

    fn run(html: &str) -> Result<Vec<Item>, ExtractError> {
        let url = Url::parse("https://pixelbay.example/game/portal-2").unwrap();
        extract_page(html, &url, &profile(Extractor::Jsonld))
    }

    fn page(blocks: &[&str]) -> String {
        let scripts: String = blocks
            .iter()
            .map(|b| format!("<script type=\"application/ld+json\">{b}</script>\n"))
            .collect();
        format!(
            "<!doctype html><html><head><title>x</title>{scripts}</head><body><h1>x</h1></body></html>"
        )
    }

    const PIXELBAY: &str = r#"{"@context":"https://schema.org","@type":"VideoGame","name":"Portal 2","sameAs":"https://store.steampowered.com/app/620/","offers":{"@type":"Offer","price":"7.99","priceCurrency":"EUR","availability":"https://schema.org/InStock","priceSpecification":{"@type":"UnitPriceSpecification","priceType":"https://schema.org/ListPrice","price":"9.99","priceCurrency":"EUR"}}}"#;

    #[test]
    fn pixelbay_video_game_with_list_price_is_extracted() {
        let items = run(&page(&[PIXELBAY])).unwrap();
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(item.title, "Portal 2");
        assert_eq!(item.store, "TestStore");
        assert_eq!(item.url, "https://pixelbay.example/game/portal-2");
        assert_eq!(item.price_cents, 799);
        assert_eq!(item.regular_cents, Some(999));
        assert_eq!(item.currency, "EUR");
        assert!(item.available);
        assert_eq!(
            item.external_ids.get("steam").map(String::as_str),
            Some("620")
        );
    }

    #[test]
    fn graph_with_aggregate_offer_and_numeric_prices_is_extracted() {
        let block = r#"{"@context":"https://schema.org","@graph":[
            {"@type":"WebSite","name":"PixelBay"},
            {"@type":["Product","VideoGame"],"name":"  Doom &amp; Friends\n Eternal ",
             "identifier":{"@type":"PropertyValue","propertyID":"Steam","value":782330},
             "offers":{"@type":"AggregateOffer","lowPrice":19.9,"highPrice":39.99,"priceCurrency":"usd",
                       "availability":"http://schema.org/SoldOut"}}]}"#;
        let items = run(&page(&[block])).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].title, "Doom & Friends Eternal");
        assert_eq!(items[0].price_cents, 1990);
        assert_eq!(items[0].currency, "USD");
        assert!(!items[0].available);
        assert_eq!(items[0].regular_cents, None);
        assert_eq!(items[0].external_ids["steam"], "782330");
    }

    #[test]
    fn broken_block_is_skipped_when_another_block_works() {
        let items = run(&page(&["{\"@type\": \"Product\", broken", PIXELBAY])).unwrap();
        assert_eq!(items[0].title, "Portal 2");
    }

    #[test]
    fn top_level_array_yields_one_item_per_product_with_an_offer() {
        let block = r#"[
            {"@type":"SoftwareApplication","name":"Quake","offers":[
                {"@type":"Offer","price":"4.99","priceCurrency":"EUR","availability":"OutOfStock"},
                {"@type":"Offer","price":5,"priceCurrency":"EUR"}]},
            {"@type":"Product","name":"Teaser without offers"},
            {"@type":"Product","name":"Hexen","sameAs":["https://example.com/x","https://store.steampowered.com/app/2360/Hexen/"],
             "offers":{"@type":"Offer","price":"0.00","priceCurrency":"EUR"}}
        ]"#;
        let items = run(&page(&[block])).unwrap();
        let got: Vec<(&str, i64, bool)> = items
            .iter()
            .map(|i| (i.title.as_str(), i.price_cents, i.available))
            .collect();
        assert_eq!(got, vec![("Quake", 500, true), ("Hexen", 0, true)]);
        assert_eq!(items[1].external_ids["steam"], "2360");
        assert!(items[0].external_ids.is_empty());
    }

    #[test]
    fn offer_without_currency_uses_the_profile_currency_and_strikethrough_counts() {
        let block = r#"{"@type":"Product","name":"Celeste","offers":{"@type":"Offer","price":"12,49",
            "priceSpecification":[{"@type":"UnitPriceSpecification","price":"12.49"},
                                  {"@type":"UnitPriceSpecification","priceType":"StrikethroughPrice","price":"19.99"}]}}"#;
        let mut p: Profile = profile(Extractor::Jsonld);
        p.currency = "GBP".to_owned();
        let url = Url::parse("https://pixelbay.example/celeste").unwrap();
        let items = extract_page(&page(&[block]), &url, &p).unwrap();
        assert_eq!(items[0].price_cents, 1249);
        assert_eq!(items[0].currency, "GBP");
        assert_eq!(items[0].regular_cents, Some(1999));
    }

    #[test]
    fn main_entity_of_a_web_page_is_found_and_steam_links_in_the_body_count() {
        let html = r#"<html><head><script type="application/ld+json">
            {"@type":"ItemPage","mainEntity":{"@type":"VideoGame","name":"Portal","offers":{"price":"1.99","priceCurrency":"EUR"}}}
            </script></head><body><a href="https://store.steampowered.com/app/400/">Steam</a></body></html>"#;
        let items = run(html).unwrap();
        assert_eq!(items[0].title, "Portal");
        assert_eq!(items[0].external_ids["steam"], "400");
    }

    #[test]
    fn product_without_price_is_a_no_price_error_naming_the_profile() {
        let block = r#"{"@type":"VideoGame","name":"Portal 2","offers":{"@type":"Offer","availability":"InStock"}}"#;
        let err = run(&page(&[block])).unwrap_err();
        assert!(matches!(err, ExtractError::NoPrice { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("Portal 2") && msg.contains("jsonld") && msg.contains("TestStore"),
            "{msg}"
        );
    }

    #[test]
    fn unreadable_price_is_reported_with_the_reason() {
        let block = r#"{"@type":"VideoGame","name":"Portal 2","offers":{"@type":"Offer","price":"-3","priceCurrency":"EUR"}}"#;
        let err = run(&page(&[block])).unwrap_err();
        assert!(matches!(err, ExtractError::BadPrice { .. }), "{err}");
    }

    #[test]
    fn page_without_products_is_a_no_product_error() {
        let block = r#"{"@type":"Organization","name":"PixelBay"}"#;
        let err = run(&page(&[block, "not json at all"])).unwrap_err();
        assert!(matches!(err, ExtractError::NoProduct { .. }));
        assert_eq!(
            err.to_string(),
            "no product found on the page (looked for JSON-LD Product/VideoGame offers)"
        );
    }

    #[test]
    fn commented_json_and_entities_are_tolerated() {
        assert_eq!(strip_wrappers(" <!-- {\"a\":1} --> "), "{\"a\":1}");
        assert_eq!(
            decode_entities("Tom &amp; Jerry&#39;s &#x2122; & co &bogus;"),
            "Tom & Jerry's ™ & co &bogus;"
        );
        assert_eq!(decode_entities("a &#99999999; b"), "a &#99999999; b");
    }
}
