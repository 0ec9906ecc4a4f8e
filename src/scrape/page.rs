//! Reading a game page: the profile's extractor runs over a [`Page`], the view
//! of the document every extractor shares.

use std::collections::BTreeMap;

use scraper::Html;
use url::Url;

use super::markup::{ensure_html, static_selector};
use super::{css, jsonld, meta, steam_app_id, ExtractError, Price};
use crate::protocol::worker::{Extractor, Item, Profile};

/// Extracts the offers on a game page with the profile's extractor. Returns at
/// least one item, or says why there is none.
pub fn extract_page(
    html: &str,
    page_url: &Url,
    profile: &Profile,
) -> Result<Vec<Item>, ExtractError> {
    ensure_html(html)?;
    let doc = Html::parse_document(html);
    let page = Page {
        doc: &doc,
        url: canonical_url(&doc, page_url),
        base: page_url,
        profile,
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

    pub(super) fn no_price(&self, title: String) -> ExtractError {
        ExtractError::NoPrice {
            title,
            profile: profile_name(self.profile.extract),
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
        static_selector("a[href], link[href]").and_then(|sel| {
            self.doc
                .select(&sel)
                .filter_map(|el| el.value().attr("href"))
                .find_map(|href| {
                    let url = self.base.join(href.trim()).ok()?;
                    steam_app_id(url.as_str())
                })
        })
    }
}

fn profile_name(extract: Extractor) -> &'static str {
    match extract {
        Extractor::Jsonld => "jsonld",
        Extractor::Meta => "meta",
        Extractor::Css => "css",
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
    use crate::scrape::fixtures::base;

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
