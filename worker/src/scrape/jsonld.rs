//! The `jsonld` extractor: schema.org products with offers (see
//! `schema.rs`) from `<script type="application/ld+json">` blocks. What a
//! product lacks (a price, a currency, the availability) comes from the
//! page's OpenGraph tags when they are about the same product.

use serde_json::Value;

use super::markup::static_selector;
use super::meta::OpenGraph;
use super::page::Page;
use super::schema::{self, Block};
use super::ExtractError;
use crate::protocol::worker::Item;

pub(super) fn extract(page: &Page<'_>) -> Result<Vec<Item>, ExtractError> {
    let rec = page.rec;
    let mut values: Vec<(usize, Value)> = Vec::new();
    let mut count = 0;
    if let Some(sel) = static_selector("script[type]") {
        for script in page.doc.select(&sel) {
            let kind = script.value().attr("type").unwrap_or("");
            let kind = kind.split(';').next().unwrap_or("").trim();
            if !kind.eq_ignore_ascii_case("application/ld+json") {
                continue;
            }
            count += 1;
            let text: String = script.text().collect();
            // One broken block (a CMS template bug) must not hide the others.
            match serde_json::from_str::<Value>(strip_wrappers(&text)) {
                Ok(value) => values.push((count, value)),
                Err(e) => rec.page(|| format!("JSON-LD block {count}: not JSON ({e})")),
            }
        }
    }
    if count == 0 {
        rec.page(|| "no JSON-LD blocks (script type=application/ld+json)".to_owned());
    }
    let blocks: Vec<Block<'_>> = values
        .iter()
        .map(|(n, value)| Block::new(format!("JSON-LD block {n}"), true, value))
        .collect();
    let mut nodes = Vec::new();
    for (block, (_, value)) in blocks.iter().zip(&values) {
        let found = schema::products(block, value, rec.is_on());
        rec.page(|| {
            let labels: Vec<String> = found
                .iter()
                .map(|n| schema::label(n.product, true))
                .collect();
            match labels.is_empty() {
                true => format!("{}: no product ({})", block.name, top_types(value)),
                false => format!("{}: {}", block.name, labels.join(", ")),
            }
        });
        nodes.extend(found);
    }

    // The page's OpenGraph tags fill what a JSON-LD product lacks. A page
    // without JSON-LD products is not read from them alone: that is the
    // meta profile's job, and a site checked with the wrong profile should
    // say so.
    let og = OpenGraph::read(page);
    match schema::read_products(page, &nodes, Some(&og))? {
        items if items.is_empty() => Err(page.no_product()),
        items => Ok(items),
    }
}

/// The types of a block's top-level nodes, for a trace of a block without
/// products.
fn top_types(value: &Value) -> String {
    let nodes: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => match o.get("@graph") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => vec![value],
        },
        _ => vec![],
    };
    let types: Vec<&str> = nodes
        .iter()
        .filter_map(|v| v.as_object())
        .map(schema::type_name)
        .collect();
    match types.is_empty() {
        true => "no typed nodes".to_owned(),
        false => format!("types {}", types.join(", ")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::worker::{Extractor, Profile};
    use crate::scrape::fixtures::{
        profile, EPIC_STORE, GOG_GAME, HUMBLE_STORE, INSTANT_GAMING, PIXEL_CRATE,
    };
    use crate::scrape::{extract_page, extract_page_traced, Field, Trace};
    use crate::title::normalize_title;
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
    fn commented_json_is_tolerated() {
        assert_eq!(strip_wrappers(" <!-- {\"a\":1} --> "), "{\"a\":1}");
        assert_eq!(strip_wrappers("//<![CDATA[\n{\"a\":1}\n//]]>"), "{\"a\":1}");
    }

    fn store_page(html: &str, url: &str, p: &Profile) -> (Vec<Item>, Trace) {
        let url = Url::parse(url).unwrap();
        let (items, trace) = extract_page_traced(html, &url, p);
        (items.unwrap_or_else(|e| panic!("{e}\n{trace}")), trace)
    }

    fn rule(trace: &Trace, product: usize, field: Field) -> String {
        trace.products[product]
            .field(field)
            .and_then(|f| f.rule.clone())
            .unwrap_or_else(|| panic!("no rule for {field:?} in\n{trace}"))
    }

    #[test]
    fn gog_offers_per_region_give_the_one_in_the_sites_currency() {
        let url = "https://www.gog.example/en/game/the_witcher_3";
        let (items, trace) = store_page(GOG_GAME, url, &profile(Extractor::Jsonld));
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(
            item.title,
            "The Witcher 3: Wild Hunt - Game of the Year Edition"
        );
        assert_eq!(
            item.url,
            "https://www.gog.example/en/game/the_witcher_3_wild_hunt_game_of_the_year_edition"
        );
        assert_eq!(
            (item.price_cents, item.regular_cents, item.currency.as_str()),
            (1249, Some(4999), "EUR")
        );
        assert!(item.available);
        assert_eq!(
            rule(&trace, 0, Field::Price),
            r#"JSON-LD block 1, Product > offers[1] > price "12.49" (the one offer in EUR of 2)"#
        );
        assert_eq!(
            rule(&trace, 0, Field::RegularPrice),
            r#"JSON-LD block 1, Product > offers[1] > priceSpecification (StrikethroughPrice) > price "49.99""#
        );

        let mut usd = profile(Extractor::Jsonld);
        usd.currency = "USD".to_owned();
        let (items, _) = store_page(GOG_GAME, url, &usd);
        assert_eq!(
            (items[0].price_cents, items[0].currency.as_str()),
            (999, "USD")
        );
    }

    #[test]
    fn humble_product_without_offers_takes_its_price_from_the_opengraph_tags() {
        let url = "https://www.humble.example/store/hades";
        let mut p = profile(Extractor::Jsonld);
        p.currency = "EUR".to_owned();
        let (items, trace) = store_page(HUMBLE_STORE, url, &p);
        let item = &items[0];
        assert_eq!(item.title, "Hades");
        assert_eq!(
            (item.price_cents, item.regular_cents, item.currency.as_str()),
            (1249, Some(2499), "USD")
        );
        assert!(item.available);
        assert_eq!(
            rule(&trace, 0, Field::Title),
            r#"JSON-LD block 1, Product > name "Hades""#
        );
        assert_eq!(
            rule(&trace, 0, Field::Price),
            r#"OpenGraph product:sale_price:amount "12.49""#
        );
        assert_eq!(
            rule(&trace, 0, Field::RegularPrice),
            r#"OpenGraph product:price:amount "24.99""#
        );
        assert_eq!(
            rule(&trace, 0, Field::Currency),
            r#"OpenGraph product:sale_price:currency "USD""#
        );
        assert_eq!(
            rule(&trace, 0, Field::Availability),
            r#"OpenGraph product:availability "in stock""#
        );
        let price = trace.products[0].field(Field::Price).unwrap();
        assert_eq!(
            price.looked_at,
            ["JSON-LD block 1, Product > offers (absent)"]
        );

        // Without the tags, the product is a page without a price.
        let bare = HUMBLE_STORE.replace("product:", "x-product:");
        let err = extract_page(&bare, &Url::parse(url).unwrap(), &p).unwrap_err();
        assert!(matches!(err, ExtractError::NoPrice { .. }), "{err}");
    }

    #[test]
    fn opengraph_tags_about_another_product_fill_nothing() {
        // Two products, and the tags name neither: no price for either.
        let html = page(&[
            r#"{"@type":"VideoGame","name":"Hades"}"#,
            r#"{"@type":"VideoGame","name":"Hades II"}"#,
        ])
        .replace(
            "<title>",
            r#"<meta property="og:title" content="Bastion"><meta property="product:price:amount" content="9.99"><title>"#,
        );
        assert!(matches!(run(&html), Err(ExtractError::NoPrice { .. })));
        // Naming one of them (store text aside) fills that one.
        let mut p = profile(Extractor::Jsonld);
        p.title_strip = vec!["Buy {title}".to_owned()];
        let html = html.replace(r#"content="Bastion""#, r#"content="Buy HADES™""#);
        let url = Url::parse("https://pixelbay.example/hades").unwrap();
        let items = extract_page(&html, &url, &p).unwrap();
        let got: Vec<(&str, i64)> = items
            .iter()
            .map(|i| (i.title.as_str(), i.price_cents))
            .collect();
        assert_eq!(got, [("Hades", 999)]);
    }

    #[test]
    fn epic_free_game_after_an_unrelated_block_costs_nothing() {
        let url = "https://store.epicgames.example/en-US/p/fortnite";
        let (items, trace) = store_page(EPIC_STORE, url, &profile(Extractor::Jsonld));
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].title, "Fortnite");
        assert_eq!(
            (items[0].price_cents, items[0].currency.as_str()),
            (0, "USD")
        );
        assert!(items[0].available);
        assert_eq!(
            trace.page[..2],
            [
                "JSON-LD block 1: no product (types WebSite)",
                r#"JSON-LD block 2: VideoGame "Fortnite""#,
            ]
        );
        // Stores write "Free" where the number goes, too.
        for free in [r#""Free""#, r#""Free to Play""#, r#""0.00""#] {
            let html = EPIC_STORE.replace(r#""price":0"#, &format!(r#""price":{free}"#));
            let (items, _) = store_page(&html, url, &profile(Extractor::Jsonld));
            assert_eq!(items[0].price_cents, 0, "{free}");
        }
    }

    #[test]
    fn instant_gaming_offer_is_found_by_its_id_and_the_title_stripped() {
        let url = "https://www.instant-gaming.example/fr/7872-acheter-elden-ring-pc-steam-europe/";
        let mut p = profile(Extractor::Jsonld);
        p.title_strip = vec!["{title} (PC) - Steam".to_owned()];
        let (items, trace) = store_page(INSTANT_GAMING, url, &p);
        let item = &items[0];
        assert_eq!(item.title, "Elden Ring");
        assert_eq!(
            (item.price_cents, item.regular_cents, item.currency.as_str()),
            (3599, Some(5999), "EUR")
        );
        assert!(item.available);
        assert_eq!(item.external_ids["steam"], "1245620");
        assert_eq!(
            rule(&trace, 0, Field::Title),
            r#"JSON-LD block 1, @graph[2] > Product > name "Elden Ring (PC) - Steam", title_strip "{title} (PC) - Steam""#
        );
        assert_eq!(
            rule(&trace, 0, Field::Price),
            r#"JSON-LD block 1, @graph[2] > Product > offers > price "35,99""#
        );
        assert_eq!(
            rule(&trace, 0, Field::Availability),
            r#"JSON-LD block 1, @graph[2] > Product > offers > availability "InStock""#
        );
        assert_eq!(
            rule(&trace, 0, Field::ExternalId),
            r#"JSON-LD block 1, @graph[2] > Product > identifier (propertyID "Steam App ID") > value "1245620""#
        );
        // The offer node itself is not a product; nothing else is read.
        assert_eq!(trace.products.len(), 1);
    }

    #[test]
    fn shopify_variants_are_one_offer_each_and_editions_stay_apart() {
        let url = "https://pixelcrate.example/products/hades";
        let (items, trace) = store_page(PIXEL_CRATE, url, &profile(Extractor::Jsonld));
        let got: Vec<(&str, i64, &str, bool)> = items
            .iter()
            .map(|i| {
                (
                    i.title.as_str(),
                    i.price_cents,
                    i.currency.as_str(),
                    i.available,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("Hades - Standard Edition", 2499, "USD", true),
                ("Hades - Deluxe Edition", 3499, "USD", false),
            ]
        );
        assert_ne!(
            normalize_title(&items[0].title),
            normalize_title(&items[1].title)
        );
        assert_eq!(
            trace.products[1].source,
            r#"JSON-LD block 1, ProductGroup > hasVariant[1] > Product "Hades - Deluxe Edition""#
        );
    }
}
