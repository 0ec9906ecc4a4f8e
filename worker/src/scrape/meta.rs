//! The `meta` extractor: OpenGraph product tags (`og:title`,
//! `product:price:*`), falling back to schema.org microdata (`itemprop`),
//! which the OpenGraph tags complete. The `jsonld` extractor fills a JSON-LD
//! product's gaps from the same tags.

use std::collections::HashMap;

use super::markup::machine_price;
use super::microdata;
use super::page::Page;
use super::price::parse_currency;
use super::schema::{self, says_unavailable, Block, Fallback, Offer};
use super::trace::Field;
use super::{ExtractError, PriceError};
use crate::protocol::worker::Item;
use crate::scrape::steam::STEAM;
use crate::title::{normalize_title, strip_title};

pub(super) fn extract(page: &Page<'_>) -> Result<Vec<Item>, ExtractError> {
    let rec = page.rec;
    let og = &OpenGraph::read(page);
    if og.get(&TITLE).is_some() && og.has_price() {
        rec.product(|| "OpenGraph tags".to_owned());
        let Some(title) = og.title(page) else {
            rec.note(|| "og:title has no text".to_owned());
            return Err(page.no_product());
        };
        let fallback = og.currency(page).unwrap_or_else(|| page.profile_currency());
        let offer = match og.offer(page, &fallback) {
            Some(Ok(offer)) => offer,
            Some(Err(source)) => {
                let err = ExtractError::BadPrice { title, source };
                rec.note(|| err.to_string());
                return Err(err);
            }
            None => return Err(page.no_price(title)),
        };
        let mut item = page.offer_item(title, offer);
        if let Some(id) = page.steam_link() {
            item.external_ids.insert(STEAM.to_owned(), id);
        }
        rec.item(0);
        return Ok(vec![item]);
    }

    // The microdata may carry the price the meta tags lack.
    let top = microdata::read(page);
    let blocks: Vec<Block<'_>> = top
        .iter()
        .enumerate()
        .map(|(i, item)| Block::new(format!("microdata item {}", i + 1), false, &item.value))
        .collect();
    let nodes: Vec<_> = blocks
        .iter()
        .zip(&top)
        .flat_map(|(block, item)| schema::products(block, &item.value, rec.is_on()))
        .collect();
    rec.page(|| match top.is_empty() {
        true => "no schema.org microdata items".to_owned(),
        false => {
            let listed: Vec<String> = blocks
                .iter()
                .zip(&top)
                .map(|(block, item)| {
                    let el = item.element.value();
                    let found: Vec<String> = nodes
                        .iter()
                        .filter(|n| std::ptr::eq(n.block, block))
                        .map(|n| schema::label(n.product, false))
                        .collect();
                    format!(
                        "{} (<{} itemtype={:?}>): {}",
                        block.name,
                        el.name(),
                        el.attr("itemtype").unwrap_or(""),
                        match found.is_empty() {
                            true => "no product".to_owned(),
                            false => found.join(", "),
                        }
                    )
                })
                .collect();
            listed.join("; ")
        }
    });
    let items = schema::read_products(page, &nodes, Some(og))?;
    if !items.is_empty() {
        return Ok(items);
    }
    if og.get(&TITLE).is_none() {
        return Err(page.no_product());
    }
    rec.product(|| "OpenGraph tags".to_owned());
    match og.title(page) {
        Some(title) => {
            rec.looked(Field::Price, || {
                "OpenGraph product:price:amount, og:price:amount (absent); \
                 schema.org microdata (no product)"
                    .to_owned()
            });
            let err = page.no_price(title);
            rec.note(|| err.to_string());
            Err(err)
        }
        None => {
            rec.note(|| "og:title has no text".to_owned());
            Err(page.no_product())
        }
    }
}

const TITLE: [&str; 1] = ["og:title"];
const AMOUNT: [&str; 2] = ["product:price:amount", "og:price:amount"];
const CURRENCY: [&str; 2] = ["product:price:currency", "og:price:currency"];
const SALE_AMOUNT: [&str; 1] = ["product:sale_price:amount"];
const SALE_CURRENCY: [&str; 1] = ["product:sale_price:currency"];
const ORIGINAL_AMOUNT: [&str; 1] = ["product:original_price:amount"];
const ORIGINAL_CURRENCY: [&str; 1] = ["product:original_price:currency"];
const AVAILABILITY: [&str; 2] = ["product:availability", "og:availability"];

/// A page's `<meta property|name=... content=...>` tags, by lowercased key;
/// the first occurrence of a key wins.
pub(super) struct OpenGraph {
    tags: HashMap<String, String>,
}

impl OpenGraph {
    pub(super) fn read(page: &Page<'_>) -> OpenGraph {
        let mut tags: HashMap<String, String> = HashMap::new();
        if let Some(sel) = super::markup::static_selector("meta[content]") {
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
        page.rec.page(|| {
            let mut keys: Vec<&str> = tags
                .keys()
                .map(String::as_str)
                .filter(|k| k.starts_with("og:") || k.starts_with("product:"))
                .collect();
            keys.sort_unstable();
            match keys.is_empty() {
                true => "no OpenGraph tags".to_owned(),
                false => format!("OpenGraph tags: {}", keys.join(", ")),
            }
        });
        OpenGraph { tags }
    }

    /// The first of `keys` with a value, and that key.
    fn get(&self, keys: &[&'static str]) -> Option<(&'static str, &str)> {
        keys.iter().find_map(|k| {
            let v = self.tags.get(*k).filter(|v| !v.is_empty())?;
            Some((*k, v.as_str()))
        })
    }

    fn has_price(&self) -> bool {
        self.get(&AMOUNT)
            .or_else(|| self.get(&SALE_AMOUNT))
            .is_some()
    }

    /// The `og:title`, cleaned and stripped; recorded as the title's rule.
    pub(super) fn title(&self, page: &Page<'_>) -> Option<String> {
        match self.get(&TITLE) {
            Some((key, raw)) => page.title(raw, || format!("OpenGraph {key} {raw:?}")),
            None => {
                page.rec
                    .looked(Field::Title, || "OpenGraph og:title (absent)".to_owned());
                None
            }
        }
    }

    /// Whether the tags are about the product titled `title` (a page with
    /// several products has tags about one of them at most).
    pub(super) fn describes(&self, title: &str, page: &Page<'_>) -> bool {
        self.get(&TITLE).is_some_and(|(_, raw)| {
            let (og, _) = strip_title(&super::markup::clean_text(raw), &page.profile.title_strip);
            normalize_title(&og) == normalize_title(title)
        })
    }

    /// The currency the tags state, as an offer's fallback.
    pub(super) fn currency(&self, page: &Page<'_>) -> Option<Fallback> {
        let (key, text) = self.get(&CURRENCY)?;
        let code = parse_currency(text, &page.profile.currency).ok()?;
        Some(Fallback {
            code,
            rule: page.rec.describe(|| format!("OpenGraph {key} {text:?}")),
        })
    }

    /// The offer the tags state: the sale price when there is one (the
    /// price is then the regular one), else the price. `None` without
    /// either.
    pub(super) fn offer(
        &self,
        page: &Page<'_>,
        fallback: &Fallback,
    ) -> Option<Result<Offer, PriceError>> {
        let sale = self.get(&SALE_AMOUNT);
        let ((key, amount), currency_keys) = match sale {
            Some(found) => (found, &SALE_CURRENCY[..]),
            None => (self.get(&AMOUNT)?, &CURRENCY[..]),
        };
        Some(self.read_offer(page, fallback, key, amount, currency_keys))
    }

    fn read_offer(
        &self,
        page: &Page<'_>,
        fallback: &Fallback,
        key: &'static str,
        amount: &str,
        currency_keys: &[&'static str],
    ) -> Result<Offer, PriceError> {
        let rec = page.rec;
        let (currency, currency_rule) = match self.get(currency_keys) {
            Some((ckey, text)) => (
                parse_currency(text, &fallback.code)?,
                rec.describe(|| format!("OpenGraph {ckey} {text:?}")),
            ),
            None => (fallback.code.clone(), fallback.rule.clone()),
        };
        let price = machine_price(amount, &currency)?;
        let currency_rule = match price.currency == currency {
            true => currency_rule,
            false => rec.describe(|| format!("the price text {amount:?}")),
        };
        let price_rule = rec.describe(|| format!("OpenGraph {key} {amount:?}"));
        let mut offer = Offer::priced(price, price_rule, currency_rule);
        self.fill(page, &mut offer);
        Ok(offer)
    }

    /// Fills what an offer lacks from the tags: the regular price (the
    /// original price, or the price when the offer is the sale price) and
    /// the availability.
    pub(super) fn fill(&self, page: &Page<'_>, offer: &mut Offer) {
        let rec = page.rec;
        if offer.regular.is_none() {
            let original = match self.get(&SALE_AMOUNT) {
                Some(_) => self.get(&AMOUNT).map(|found| (found, &CURRENCY[..])),
                None => self
                    .get(&ORIGINAL_AMOUNT)
                    .map(|found| (found, &ORIGINAL_CURRENCY[..])),
            };
            match original {
                Some(((key, amount), currency_keys)) => {
                    let currency = self
                        .get(currency_keys)
                        .and_then(|(_, c)| parse_currency(c, &offer.price.currency).ok())
                        .unwrap_or_else(|| offer.price.currency.clone());
                    match machine_price(amount, &currency) {
                        Ok(regular) => offer
                            .set_regular(page, regular, || format!("OpenGraph {key} {amount:?}")),
                        Err(e) => offer
                            .regular_looked
                            .extend(rec.describe(|| format!("OpenGraph {key} {amount:?}: {e}"))),
                    }
                }
                None => offer.regular_looked.extend(
                    rec.describe(|| "OpenGraph product:original_price:amount (absent)".to_owned()),
                ),
            }
        }
        if offer.available.is_none() {
            if let Some((key, text)) = self.get(&AVAILABILITY) {
                offer.available = Some(!says_unavailable(text));
                offer.availability_rule = rec.describe(|| format!("OpenGraph {key} {text:?}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::worker::{Extractor, Item, Profile};
    use crate::scrape::fixtures::{profile, EURO_MICRODATA, HUMBLE_STORE, NUUVEM_GAME};
    use crate::scrape::{extract_page, extract_page_traced, ExtractError, Field};
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

    fn read(html: &str, url: &str, p: &Profile) -> Item {
        let url = Url::parse(url).unwrap();
        let (items, trace) = extract_page_traced(html, &url, p);
        let mut items = items.unwrap_or_else(|e| panic!("{e}\n{trace}"));
        assert_eq!(items.len(), 1, "{items:?}");
        items.remove(0)
    }

    #[test]
    fn nuuvem_microdata_aggregate_offer_reads_its_low_price_text() {
        let url = "https://www.nuuvem.example/br-pt/item/hollow-knight";
        let mut p = profile(Extractor::Meta);
        p.currency = "BRL".to_owned();
        let item = read(NUUVEM_GAME, url, &p);
        // The seller's name is the seller's, not the game's.
        assert_eq!(item.title, "Hollow Knight");
        assert_eq!((item.price_cents, item.currency.as_str()), (2799, "BRL"));
        assert_eq!(item.regular_cents, None);
        assert!(item.available);
        assert_eq!(item.external_ids["steam"], "367520");

        // A site in euros reads the reais the text names.
        let url = Url::parse(url).unwrap();
        p.currency = "EUR".to_owned();
        let (items, trace) = extract_page_traced(NUUVEM_GAME, &url, &p);
        assert_eq!(items.unwrap()[0].currency, "BRL");
        let rule = |f| trace.products[0].field(f).and_then(|t| t.rule.clone());
        assert_eq!(
            rule(Field::Price).as_deref(),
            Some(r#"microdata item 1, Product > offers > lowPrice "R$ 27,99""#)
        );
        assert_eq!(
            rule(Field::Currency).as_deref(),
            Some(r#"the price text "R$ 27,99""#)
        );
        assert_eq!(
            rule(Field::ExternalId).as_deref(),
            Some(
                r#"microdata item 1, Product > sameAs "https://store.steampowered.com/app/367520/Hollow_Knight/""#
            )
        );
        assert_eq!(
            trace.page[1],
            r#"microdata item 1 (<div itemtype="http://schema.org/Product">): Product "Hollow Knight""#
        );

        // No offers left: sold out.
        let html = NUUVEM_GAME
            .replace(r#"content="2""#, r#"content="0""#)
            .replace(
                r#"<link itemprop="availability" href="http://schema.org/InStock">"#,
                "",
            );
        assert!(!read(&html, url.as_str(), &p).available);
    }

    #[test]
    fn german_microdata_prices_in_specifications_and_a_steam_identifier() {
        let url = "https://spielekiste.example/spiele/baldurs-gate-3";
        let mut p = profile(Extractor::Meta);
        p.title_strip = vec![
            "{title} kaufen".to_owned(),
            "{title} | Spielekiste".to_owned(),
        ];
        let item = read(EURO_MICRODATA, url, &p);
        assert_eq!(item.title, "Baldur's Gate 3");
        assert_eq!(
            (item.price_cents, item.regular_cents, item.currency.as_str()),
            (4499, Some(5999), "EUR")
        );
        assert!(item.available);
        assert_eq!(item.external_ids["steam"], "1086940");

        // A page without JSON-LD has nothing for the jsonld profile.
        let err = extract_page(
            EURO_MICRODATA,
            &Url::parse(url).unwrap(),
            &profile(Extractor::Jsonld),
        )
        .unwrap_err();
        assert!(matches!(err, ExtractError::NoProduct { .. }), "{err}");
    }

    #[test]
    fn humble_sale_price_tags_and_the_stores_title_text() {
        let mut p = profile(Extractor::Meta);
        p.title_strip = vec!["Buy {title} from the Humble Store".to_owned()];
        let item = read(HUMBLE_STORE, "https://www.humble.example/store/hades", &p);
        assert_eq!(item.title, "Hades");
        assert_eq!(
            (item.price_cents, item.regular_cents, item.currency.as_str()),
            (1249, Some(2499), "USD")
        );
    }

    #[test]
    fn microdata_offers_in_several_shapes_are_read() {
        let page = |offers: &str| {
            format!(
                r#"<html><body><div itemscope itemtype="https://schema.org/Product">
                <h1 itemprop="name">Celeste</h1>{offers}</div></body></html>"#
            )
        };
        let offer = |offers: &str| {
            run(&page(offers)).map(|items| {
                let i = &items[0];
                (
                    i.price_cents,
                    i.regular_cents,
                    i.currency.clone(),
                    i.available,
                )
            })
        };
        // Two offers: the cheapest one to buy.
        assert_eq!(
            offer(
                r#"<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
                     <meta itemprop="price" content="12.99"><meta itemprop="priceCurrency" content="USD">
                   </div>
                   <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
                     <meta itemprop="price" content="9.99"><meta itemprop="priceCurrency" content="USD">
                     <link itemprop="availability" href="https://schema.org/OutOfStock">
                   </div>"#
            ),
            Ok((1299, None, "USD".to_owned(), true))
        );
        // An itemprop named by its full URL; a currency as a sign.
        assert_eq!(
            offer(
                r#"<div itemprop="http://schema.org/offers" itemscope itemtype="http://schema.org/Offer">
                     <span itemprop="http://schema.org/price">4,99</span>
                     <meta itemprop="priceCurrency" content="£">
                   </div>"#
            ),
            Ok((499, None, "GBP".to_owned(), true))
        );
        // An aggregate of one offer gives its highest price.
        assert_eq!(
            offer(
                r#"<div itemprop="offers" itemscope itemtype="https://schema.org/AggregateOffer">
                     <meta itemprop="highPrice" content="19.99"><meta itemprop="offerCount" content="1">
                   </div>"#
            ),
            Ok((1999, None, "EUR".to_owned(), true))
        );
        // An aggregate of several without a low price: not a price.
        assert!(matches!(
            offer(
                r#"<div itemprop="offers" itemscope itemtype="https://schema.org/AggregateOffer">
                     <meta itemprop="highPrice" content="19.99"><meta itemprop="offerCount" content="3">
                   </div>"#
            ),
            Err(ExtractError::NoPrice { .. })
        ));
    }
}
