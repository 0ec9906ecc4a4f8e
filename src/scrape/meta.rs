//! The `meta` extractor: OpenGraph product tags (`og:title`,
//! `product:price:*`), falling back to schema.org microdata (`itemprop`).

use std::collections::HashMap;

use scraper::ElementRef;

use super::jsonld::is_unavailable;
use super::markup::{clean_text, element_text, machine_price, static_selector};
use super::page::Page;
use super::trace::Field;
use super::{parse_price, ExtractError};
use crate::protocol::worker::Item;
use crate::scrape::steam::STEAM;

pub(super) fn extract(page: &Page<'_>) -> Result<Vec<Item>, ExtractError> {
    let og = opengraph(page)?;
    let mut items = match &og {
        OpenGraph::Item(item) => vec![(**item).clone()],
        OpenGraph::TitleOnly(title) => {
            // The microdata may carry the price the meta tags lack.
            match microdata(page)? {
                items if !items.is_empty() => items,
                _ => {
                    page.rec.product(|| "OpenGraph tags".to_owned());
                    page.rec
                        .found(Field::Title, || format!("OpenGraph og:title {title:?}"));
                    page.rec.looked(Field::Price, || {
                        "OpenGraph product:price:amount, og:price:amount (absent); schema.org microdata (no product with a price)".to_owned()
                    });
                    return Err(page.no_price(title.clone()));
                }
            }
        }
        OpenGraph::Nothing => microdata(page)?,
    };
    if items.is_empty() {
        return Err(page.no_product());
    }
    if let Some(id) = page.steam_link() {
        for item in &mut items {
            item.external_ids
                .entry(STEAM.to_owned())
                .or_insert_with(|| id.clone());
        }
    }
    if let OpenGraph::Item(_) = og {
        page.rec.item(0);
    }
    Ok(items)
}

enum OpenGraph {
    Item(Box<Item>),
    TitleOnly(String),
    Nothing,
}

fn opengraph(page: &Page<'_>) -> Result<OpenGraph, ExtractError> {
    // One pass over the meta tags; the first occurrence of a key wins.
    let mut tags: HashMap<String, String> = HashMap::new();
    if let Some(sel) = static_selector("meta[content]") {
        for el in page.doc.select(&sel) {
            let v = el.value();
            let Some(key) = v.attr("property").or_else(|| v.attr("name")) else {
                continue;
            };
            let content = v.attr("content").unwrap_or("");
            tags.entry(key.trim().to_ascii_lowercase())
                .or_insert_with(|| content.trim().to_owned());
        }
    }
    let rec = page.rec;
    rec.page(|| {
        let mut keys: Vec<&String> = tags
            .keys()
            .filter(|k| k.starts_with("og:") || k.starts_with("product:"))
            .collect();
        keys.sort();
        match keys.is_empty() {
            true => "no OpenGraph tags".to_owned(),
            false => format!(
                "OpenGraph tags: {}",
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    });
    // The first of `keys` with a value, and that key.
    let get = |keys: &[&'static str]| {
        keys.iter()
            .find_map(|k| Some((*k, tags.get(*k).filter(|v| !v.is_empty())?.clone())))
    };
    let absent = |keys: &[&str]| format!("OpenGraph {} (absent)", keys.join(", "));
    let Some((_, raw_title)) = get(&["og:title"]) else {
        return Ok(OpenGraph::Nothing);
    };
    let title = clean_text(&raw_title);
    const AMOUNT: [&str; 2] = ["product:price:amount", "og:price:amount"];
    let Some((amount_key, amount)) = get(&AMOUNT) else {
        return Ok(OpenGraph::TitleOnly(title));
    };
    rec.product(|| "OpenGraph tags".to_owned());
    rec.found(Field::Title, || format!("OpenGraph og:title {raw_title:?}"));
    const CURRENCY: [&str; 2] = ["product:price:currency", "og:price:currency"];
    let currency = match get(&CURRENCY) {
        Some((key, c)) => {
            rec.found(Field::Currency, || format!("OpenGraph {key} {c:?}"));
            c
        }
        None => {
            rec.looked(Field::Currency, || absent(&CURRENCY));
            rec.found(Field::Currency, || {
                format!("profile currency {:?}", page.profile.currency)
            });
            page.profile.currency.clone()
        }
    };
    let price = machine_price(&amount, &currency).map_err(|source| {
        rec.looked(Field::Price, || {
            format!("OpenGraph {amount_key} {amount:?}: {source}")
        });
        ExtractError::BadPrice {
            title: title.clone(),
            source,
        }
    })?;
    rec.found(Field::Price, || {
        format!("OpenGraph {amount_key} {amount:?}")
    });
    const REGULAR: [&str; 1] = ["product:original_price:amount"];
    let regular = get(&REGULAR).and_then(|(key, amount)| {
        let currency = get(&["product:original_price:currency"])
            .map(|(_, c)| c)
            .unwrap_or(currency.clone());
        let regular = machine_price(&amount, &currency).ok()?;
        let same = regular.currency == price.currency;
        match same {
            true => rec.found(Field::RegularPrice, || {
                format!("OpenGraph {key} {amount:?}")
            }),
            false => rec.looked(Field::RegularPrice, || {
                format!(
                    "OpenGraph {key} {amount:?} (in {}, not {})",
                    regular.currency, price.currency
                )
            }),
        }
        same.then_some(regular.cents)
    });
    if get(&REGULAR).is_none() {
        rec.looked(Field::RegularPrice, || absent(&REGULAR));
    }
    const AVAILABILITY: [&str; 2] = ["product:availability", "og:availability"];
    let available = match get(&AVAILABILITY) {
        Some((key, a)) => {
            rec.found(Field::Availability, || format!("OpenGraph {key} {a:?}"));
            !availability_says_out(&a)
        }
        None => {
            rec.found(Field::Availability, || {
                format!("{} absent: available", AVAILABILITY.join(", "))
            });
            true
        }
    };
    let mut item = page.item(title, price);
    item.regular_cents = regular;
    item.available = available;
    Ok(OpenGraph::Item(Box::new(item)))
}

/// OpenGraph availability is free text in practice: "instock", "in stock",
/// "oos", "out of stock", "preorder", or a schema.org URL.
fn availability_says_out(value: &str) -> bool {
    let squashed: String = value
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '/')
        .collect();
    squashed == "oos" || is_unavailable(&squashed) || squashed.ends_with("unavailable")
}

fn microdata(page: &Page<'_>) -> Result<Vec<Item>, ExtractError> {
    let Some(scope_sel) = static_selector("[itemtype]") else {
        return Ok(vec![]);
    };
    let is_product = |el: &ElementRef<'_>| {
        let t = el
            .value()
            .attr("itemtype")
            .unwrap_or("")
            .to_ascii_lowercase();
        [
            "schema.org/product",
            "schema.org/videogame",
            "schema.org/softwareapplication",
        ]
        .iter()
        .any(|p| t.contains(p))
    };
    let rec = page.rec;
    let mut items = Vec::new();
    let mut first_failure = None;
    let mut count = 0;
    for scope in page.doc.select(&scope_sel).filter(is_product) {
        // A product nested in another (a bundle's parts) belongs to its parent.
        let nested = scope
            .ancestors()
            .filter_map(ElementRef::wrap)
            .any(|a| is_product(&a));
        if nested {
            continue;
        }
        count += 1;
        rec.product(|| {
            format!(
                "microdata item {count} (<{} itemtype={:?}>)",
                scope.value().name(),
                scope.value().attr("itemtype").unwrap_or("")
            )
        });
        match microdata_item(page, scope) {
            Ok(Some(item)) => {
                rec.item(items.len());
                items.push(item);
            }
            Ok(None) => rec.note(|| "no name".to_owned()),
            Err(e) => {
                rec.note(|| e.to_string());
                first_failure.get_or_insert(e);
            }
        }
    }
    if count == 0 {
        rec.page(|| {
            "no schema.org microdata products (itemtype Product, VideoGame or SoftwareApplication)"
                .to_owned()
        });
    }
    match (items.is_empty(), first_failure) {
        (true, Some(e)) => Err(e),
        _ => Ok(items),
    }
}

fn microdata_item(page: &Page<'_>, scope: ElementRef<'_>) -> Result<Option<Item>, ExtractError> {
    let rec = page.rec;
    let Some(title) = prop(scope, "name")
        .map(|t| clean_text(&t))
        .filter(|t| !t.is_empty())
    else {
        rec.looked(Field::Title, || {
            "microdata itemprop=name (absent or empty)".to_owned()
        });
        return Ok(None);
    };
    rec.found(Field::Title, || {
        format!("microdata itemprop=name {title:?}")
    });
    let currency = match prop(scope, "priceCurrency").filter(|c| !c.is_empty()) {
        Some(c) => {
            rec.found(Field::Currency, || {
                format!("microdata itemprop=priceCurrency {c:?}")
            });
            c
        }
        None => {
            rec.looked(Field::Currency, || {
                "microdata itemprop=priceCurrency (absent)".to_owned()
            });
            rec.found(Field::Currency, || {
                format!("profile currency {:?}", page.profile.currency)
            });
            page.profile.currency.clone()
        }
    };
    let price = match prop_element(scope, "price") {
        None => {
            rec.looked(Field::Price, || {
                "microdata itemprop=price (absent)".to_owned()
            });
            return Err(page.no_price(title));
        }
        Some(el) => match el.value().attr("content") {
            Some(content) => {
                rec.found(Field::Price, || {
                    format!("microdata itemprop=price content={content:?}")
                });
                machine_price(content, &currency)
            }
            None => {
                let text = element_text(el);
                rec.found(Field::Price, || {
                    format!("microdata itemprop=price text {text:?}")
                });
                parse_price(&text, &currency)
            }
        },
    };
    let price = price.map_err(|source| ExtractError::BadPrice {
        title: title.clone(),
        source,
    })?;
    rec.looked(Field::RegularPrice, || "microdata: not read".to_owned());
    let availability = prop(scope, "availability");
    match &availability {
        Some(a) => rec.found(Field::Availability, || {
            format!("microdata itemprop=availability {a:?}")
        }),
        None => rec.found(Field::Availability, || {
            "microdata itemprop=availability absent: available".to_owned()
        }),
    }
    let available = !availability.is_some_and(|a| availability_says_out(&a));
    let mut item = page.item(title, price);
    item.available = available;
    Ok(Some(item))
}

/// The first element carrying `itemprop=name` inside `scope`, preferring one
/// that belongs to `scope` itself over one in a nested item (an offer's
/// seller has a name too).
fn prop_element<'a>(scope: ElementRef<'a>, name: &str) -> Option<ElementRef<'a>> {
    let sel = static_selector("[itemprop]")?;
    let mut fallback = None;
    for el in scope.select(&sel) {
        let props = el.value().attr("itemprop").unwrap_or("");
        if !props.split_whitespace().any(|p| p == name) {
            continue;
        }
        let owner = el
            .ancestors()
            .filter_map(ElementRef::wrap)
            .find(|a| a.value().attr("itemscope").is_some());
        if owner.is_none_or(|o| o.id() == scope.id()) {
            return Some(el);
        }
        fallback.get_or_insert(el);
    }
    fallback
}

/// An itemprop's value: `content`, else `href` on links, else the text.
fn prop(scope: ElementRef<'_>, name: &str) -> Option<String> {
    let el = prop_element(scope, name)?;
    let v = el.value();
    let value = v
        .attr("content")
        .or_else(|| v.attr("href"))
        .map(str::to_owned)
        .unwrap_or_else(|| element_text(el));
    Some(value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use crate::protocol::worker::{Extractor, Item};
    use crate::scrape::{
        extract_page, extract_page_traced, fixtures::profile, ExtractError, Field,
    };
    use url::Url;

    fn run(html: &str) -> Result<Vec<Item>, ExtractError> {
        let url = Url::parse("https://gamevault.example/p/portal-2?ref=list").unwrap();
        extract_page(html, &url, &profile(Extractor::Meta))
    }

    const OPENGRAPH: &str = r#"<!DOCTYPE html>
<html><head>
  <meta charset="utf-8">
  <link rel="canonical" href="https://gamevault.example/p/portal-2">
  <meta property="og:type" content="product">
  <meta property="og:title" content="Portal 2 &amp; Co™">
  <meta property="product:price:amount" content="7.99">
  <meta property="product:price:currency" content="EUR">
  <meta property="product:original_price:amount" content="9.99">
  <meta property="product:original_price:currency" content="EUR">
  <meta property="product:availability" content="instock">
</head><body>
  <h1>Portal 2</h1>
  <a href="https://store.steampowered.com/app/620/">On Steam</a>
</body></html>"#;

    #[test]
    fn gamevault_opengraph_page_is_extracted() {
        let items = run(OPENGRAPH).unwrap();
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(item.title, "Portal 2 & Co™");
        assert_eq!(item.url, "https://gamevault.example/p/portal-2");
        assert_eq!(item.price_cents, 799);
        assert_eq!(item.regular_cents, Some(999));
        assert_eq!(item.currency, "EUR");
        assert!(item.available);
        assert_eq!(item.external_ids["steam"], "620");
    }

    #[test]
    fn the_trace_names_the_opengraph_tags_each_field_came_from() {
        let url = Url::parse("https://gamevault.example/p/portal-2").unwrap();
        let (items, trace) = extract_page_traced(OPENGRAPH, &url, &profile(Extractor::Meta));
        assert_eq!(items.unwrap()[0].price_cents, 799);
        let product = &trace.products[0];
        assert_eq!(product.source, "OpenGraph tags");
        let rule = |f| product.field(f).and_then(|t| t.rule.clone());
        assert_eq!(
            rule(Field::Title).as_deref(),
            Some(r#"OpenGraph og:title "Portal 2 & Co™""#)
        );
        assert_eq!(
            rule(Field::Price).as_deref(),
            Some(r#"OpenGraph product:price:amount "7.99""#)
        );
        assert_eq!(
            rule(Field::RegularPrice).as_deref(),
            Some(r#"OpenGraph product:original_price:amount "9.99""#)
        );
        assert_eq!(
            rule(Field::Currency).as_deref(),
            Some(r#"OpenGraph product:price:currency "EUR""#)
        );
        assert_eq!(
            rule(Field::Availability).as_deref(),
            Some(r#"OpenGraph product:availability "instock""#)
        );
    }

    #[test]
    fn opengraph_out_of_stock_words_mark_the_offer_unavailable() {
        for word in [
            "oos",
            "out of stock",
            "OutOfStock",
            "https://schema.org/OutOfStock",
            "sold out",
        ] {
            let html = OPENGRAPH.replace(r#"content="instock""#, &format!("content=\"{word}\""));
            assert!(!run(&html).unwrap()[0].available, "{word}");
        }
        for word in ["in stock", "preorder", "pending"] {
            let html = OPENGRAPH.replace(r#"content="instock""#, &format!("content=\"{word}\""));
            assert!(run(&html).unwrap()[0].available, "{word}");
        }
    }

    const MICRODATA: &str = r#"<html><head><title>Doom Eternal | GameVault</title></head><body>
  <div itemscope itemtype="https://schema.org/VideoGame">
    <h1 itemprop="name">
      DOOM   Eternal
    </h1>
    <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
      <span itemprop="seller" itemscope itemtype="https://schema.org/Organization"><span itemprop="name">GameVault</span></span>
      <span itemprop="price" content="19.99">19,99 €</span>
      <meta itemprop="priceCurrency" content="EUR">
      <link itemprop="availability" href="https://schema.org/OutOfStock">
    </div>
  </div>
  <a href="//store.steampowered.com/app/782330/">Steam</a>
</body></html>"#;

    #[test]
    fn microdata_is_the_fallback_without_opengraph() {
        let items = run(MICRODATA).unwrap();
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(item.title, "DOOM Eternal");
        assert_eq!(item.url, "https://gamevault.example/p/portal-2?ref=list");
        assert_eq!(item.price_cents, 1999);
        assert_eq!(item.currency, "EUR");
        assert!(!item.available);
        assert_eq!(item.external_ids["steam"], "782330");
    }

    #[test]
    fn microdata_price_text_is_parsed_when_there_is_no_content() {
        let html = MICRODATA
            .replace(r#" content="19.99""#, "")
            .replace("19,99 €", "1.299,00 €");
        assert_eq!(run(&html).unwrap()[0].price_cents, 129_900);
    }

    #[test]
    fn opengraph_title_without_price_falls_back_to_microdata() {
        let html = MICRODATA.replace(
            "<title>",
            r#"<meta property="og:title" content="Doom"><title>"#,
        );
        assert_eq!(run(&html).unwrap()[0].price_cents, 1999);
    }

    #[test]
    fn title_without_any_price_is_a_no_price_error() {
        let html = r#"<html><head><meta property="og:title" content="Portal 2"></head><body></body></html>"#;
        let err = run(html).unwrap_err();
        assert!(matches!(err, ExtractError::NoPrice { .. }), "{err}");
        assert!(err.to_string().contains("meta profile"), "{err}");
    }

    #[test]
    fn page_without_product_markup_is_a_no_product_error() {
        let err = run("<html><head><title>Hi</title></head><body><p>Hello</p></body></html>")
            .unwrap_err();
        assert!(matches!(err, ExtractError::NoProduct { .. }), "{err}");
    }

    #[test]
    fn unreadable_opengraph_price_is_reported() {
        let html = OPENGRAPH.replace(r#"content="7.99""#, r#"content="call us""#);
        assert!(matches!(run(&html), Err(ExtractError::BadPrice { .. })));
    }
}
