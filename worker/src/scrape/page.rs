//! Reading a game page: the profile's extractor runs over a [`Page`], the view
//! of the document every extractor shares.

use std::collections::BTreeMap;

use scraper::Html;
use url::Url;

use super::markup::{clean_text, ensure_html, static_selector};
use super::schema::{Fallback, Offer};
use super::trace::{Field, Recorder, Trace};
use super::{css, jsonld, meta, steam_app_id, ExtractError, Price};
use crate::protocol::worker::{Extractor, Item, Profile};
use crate::title::strip_title;

/// Extracts the offers on a game page with the profile's extractor. Returns at
/// least one item, or says why there is none.
pub fn extract_page(
    html: &str,
    page_url: &Url,
    profile: &Profile,
) -> Result<Vec<Item>, ExtractError> {
    extract(html, page_url, profile, &Recorder::off())
}

/// [`extract_page`], also telling which rule produced each field of each
/// offer, and where the extractor looked when nothing did (see [`Trace`]).
/// The offers are the ones `extract_page` returns.
pub fn extract_page_traced(
    html: &str,
    page_url: &Url,
    profile: &Profile,
) -> (Result<Vec<Item>, ExtractError>, Trace) {
    let rec = Recorder::on();
    let result = extract(html, page_url, profile, &rec);
    (result, rec.into_trace())
}

fn extract(
    html: &str,
    page_url: &Url,
    profile: &Profile,
    rec: &Recorder,
) -> Result<Vec<Item>, ExtractError> {
    if let Err(e) = ensure_html(html) {
        rec.page(|| "not an HTML page".to_owned());
        return Err(e);
    }
    let doc = Html::parse_document(html);
    let page = Page {
        doc: &doc,
        url: canonical_url(&doc, page_url),
        base: page_url,
        profile,
        rec,
    };
    let items = match profile.extract {
        Extractor::Jsonld => jsonld::extract(&page)?,
        Extractor::Meta => meta::extract(&page)?,
        Extractor::Css => css::extract(&page)?,
    };
    if items.is_empty() {
        // Extractors report their own reasons; this is a backstop.
        return Err(ExtractError::NoProduct {
            looked_for: looked_for(profile.extract).to_owned(),
        });
    }
    Ok(items)
}

/// What an extractor needs to know about the page it reads.
pub(super) struct Page<'a> {
    pub(super) doc: &'a Html,
    /// The URL put on items: the canonical one when trustworthy.
    url: String,
    /// The URL the page was fetched from, for resolving relative links.
    base: &'a Url,
    pub(super) profile: &'a Profile,
    /// Where the extractor says how it read the page, when tracing.
    pub(super) rec: &'a Recorder,
}

impl Page<'_> {
    pub(super) fn item(&self, title: String, price: Price) -> Item {
        Item {
            title,
            store: self.profile.store.clone(),
            url: self.url.clone(),
            price_cents: price.cents,
            regular_cents: None,
            currency: price.currency,
            available: true,
            external_ids: BTreeMap::new(),
        }
    }

    /// The item for an offer read from structured data, its fields' rules
    /// recorded.
    pub(super) fn offer_item(&self, title: String, offer: Offer) -> Item {
        let rec = self.rec;
        if let Some(rule) = offer.price_rule {
            rec.found(Field::Price, || rule);
        }
        if let Some(rule) = offer.currency_rule {
            rec.found(Field::Currency, || rule);
        }
        for place in offer.regular_looked {
            rec.looked(Field::RegularPrice, || place);
        }
        if let Some(rule) = offer.regular_rule {
            rec.found(Field::RegularPrice, || rule);
        }
        match offer.availability_rule {
            Some(rule) => rec.found(Field::Availability, || rule),
            None => rec.found(Field::Availability, || "not stated: available".to_owned()),
        }
        let mut item = self.item(title, offer.price);
        item.regular_cents = offer.regular;
        item.available = offer.available.unwrap_or(true);
        item
    }

    /// A title as read from the page: whitespace collapsed and the profile's
    /// `title_strip` patterns applied. `None` when nothing is left; else
    /// `rule` (and the patterns that applied) becomes the title's rule.
    pub(super) fn title(&self, raw: &str, rule: impl FnOnce() -> String) -> Option<String> {
        let cleaned = clean_text(raw);
        let (title, applied) = strip_title(&cleaned, &self.profile.title_strip);
        if title.is_empty() {
            return None;
        }
        self.rec.found(Field::Title, || match applied.is_empty() {
            true => rule(),
            false => format!(
                "{}, title_strip {}",
                rule(),
                applied
                    .iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(" then ")
            ),
        });
        Some(title)
    }

    /// The profile's currency, as an offer's fallback.
    pub(super) fn profile_currency(&self) -> Fallback {
        Fallback {
            code: self.profile.currency.clone(),
            rule: self
                .rec
                .describe(|| format!("profile currency {:?}", self.profile.currency)),
        }
    }

    pub(super) fn no_price(&self, title: String) -> ExtractError {
        ExtractError::NoPrice {
            title,
            profile: self.profile.extract.as_str(),
            store: self.profile.store.clone(),
            looked_for: looked_for(self.profile.extract).to_owned(),
        }
    }

    pub(super) fn no_product(&self) -> ExtractError {
        ExtractError::NoProduct {
            looked_for: looked_for(self.profile.extract).to_owned(),
        }
    }

    /// The Steam app id of the first Steam store link on the page.
    pub(super) fn steam_link(&self) -> Option<String> {
        let sel = static_selector("a[href], link[href]")?;
        let found = self.doc.select(&sel).find_map(|el| {
            let href = el.value().attr("href")?;
            let url = self.base.join(href.trim()).ok()?;
            Some((steam_app_id(url.as_str())?, el, href))
        });
        match found {
            Some((id, el, href)) => {
                self.rec.found(Field::ExternalId, || {
                    format!(
                        "first Steam store link, <{} href={href:?}>",
                        el.value().name()
                    )
                });
                Some(id)
            }
            None => {
                self.rec.looked(Field::ExternalId, || {
                    "Steam store links (a[href], link[href]): none".to_owned()
                });
                None
            }
        }
    }
}

fn looked_for(extract: Extractor) -> &'static str {
    match extract {
        Extractor::Jsonld => "JSON-LD Product/VideoGame offers",
        Extractor::Meta => "OpenGraph product:price tags and schema.org microdata",
        Extractor::Css => "the css profile's selectors",
    }
}

/// The page's `<link rel=canonical>` when it stays on the fetched host (a
/// canonical on another host could redirect offers to a different store).
fn canonical_url(doc: &Html, page_url: &Url) -> String {
    let canonical = static_selector("link[rel~=canonical][href]").and_then(|sel| {
        let href = doc.select(&sel).next()?.value().attr("href")?;
        let mut url = page_url.join(href.trim()).ok()?;
        url.set_fragment(None);
        (matches!(url.scheme(), "http" | "https") && url.host_str() == page_url.host_str())
            .then_some(url)
    });
    match canonical {
        Some(url) => url.into(),
        None => page_url.as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::fixtures::{base, profile};

    const PORTAL: &str = r#"<html><head><script type="application/ld+json">{"@context":"https://schema.org","@type":"VideoGame","name":"Portal 2","offers":{"@type":"Offer","price":"7.99","availability":"https://schema.org/InStock"}}</script></head>
<body><a href="https://store.steampowered.com/app/620/">Steam</a></body></html>"#;

    #[test]
    fn a_traced_extraction_returns_the_same_offers_and_names_each_fields_rule() {
        let p = profile(Extractor::Jsonld);
        let (items, trace) = extract_page_traced(PORTAL, &base(), &p);
        assert_eq!(items, extract_page(PORTAL, &base(), &p));
        assert_eq!(
            trace.lines(),
            vec![
                r#"page: JSON-LD block 1: VideoGame "Portal 2""#,
                "page: no OpenGraph tags",
                r#"product 1: JSON-LD block 1, VideoGame "Portal 2" -> item 1"#,
                r#"  title: JSON-LD block 1, VideoGame > name "Portal 2""#,
                r#"  price: JSON-LD block 1, VideoGame > offers > price "7.99""#,
                "  regular price: not found; looked at JSON-LD block 1, VideoGame > offers > \
                 priceSpecification (no ListPrice, StrikethroughPrice or MSRP); \
                 OpenGraph product:original_price:amount (absent)",
                r#"  currency: profile currency "EUR""#,
                r#"  availability: JSON-LD block 1, VideoGame > offers > availability "https://schema.org/InStock""#,
                "  external id: first Steam store link, <a href=\"https://store.steampowered.com/app/620/\"> \
                 (after JSON-LD block 1, VideoGame > sameAs, url (no Steam store URL), \
                 identifier (no Steam propertyID))",
            ]
        );
        assert_eq!(trace.to_string(), trace.lines().join("\n") + "\n");
    }

    #[test]
    fn a_failed_extraction_is_traced_with_where_it_looked() {
        let html = PORTAL.replace(r#""price":"7.99","#, "");
        let (result, trace) = extract_page_traced(&html, &base(), &profile(Extractor::Jsonld));
        let err = result.unwrap_err();
        assert!(matches!(err, ExtractError::NoPrice { .. }), "{err}");
        let product = &trace.products[0];
        assert_eq!(product.item, None);
        assert_eq!(product.note.as_deref(), Some(err.to_string().as_str()));
        let price = product.field(Field::Price).unwrap();
        assert_eq!(price.rule, None);
        assert_eq!(
            price.looked_at,
            vec![
                "JSON-LD block 1, VideoGame > offers (no price, lowPrice or priceSpecification price)",
                "OpenGraph product:price:amount, og:price:amount (absent)",
            ]
        );

        let (result, trace) = extract_page_traced("{}", &base(), &profile(Extractor::Jsonld));
        assert_eq!(result, Err(ExtractError::NotHtml));
        assert_eq!(trace.lines(), vec!["page: not an HTML page"]);
    }

    #[test]
    fn canonical_url_is_used_only_on_the_same_host() {
        let doc = Html::parse_document(
            r#"<html><head><link rel="canonical" href="/game/portal-2#x"></head></html>"#,
        );
        assert_eq!(
            canonical_url(&doc, &base()),
            "https://shop.example/game/portal-2"
        );
        let doc = Html::parse_document(
            r#"<html><head><link rel="canonical" href="https://evil.example/game"></head></html>"#,
        );
        assert_eq!(canonical_url(&doc, &base()), base().as_str());
        let doc = Html::parse_document("<html><head></head></html>");
        assert_eq!(canonical_url(&doc, &base()), base().as_str());
    }
}
