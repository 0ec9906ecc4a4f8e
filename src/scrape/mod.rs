//! Reading store pages: offers from game pages (through the profile's
//! extractor) and links from listing pages. Pure functions over HTML text, so
//! workers can run them anywhere and tests need no network.

mod css;
pub mod fetch;
mod jsonld;
mod meta;
pub mod price;
pub mod robots;
pub mod steam;

use std::collections::{BTreeMap, HashSet};

use scraper::{ElementRef, Html, Selector};
use thiserror::Error;
use url::Url;

use crate::protocol::worker::{Extractor, Item, Link, Profile, TaskKind};
pub use price::{parse_amount, parse_price, Price, PriceError};
pub use robots::Robots;
pub use steam::steam_app_id;

/// Why a page yielded nothing. Shown to admins as a task's failure reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtractError {
    #[error("the response is not an HTML page")]
    NotHtml,
    #[error("invalid CSS selector for {field} ({selector:?}): {reason}")]
    InvalidSelector {
        field: &'static str,
        selector: String,
        reason: String,
    },
    #[error("the css profile for {store} has no selectors (profile.css is missing)")]
    MissingCssSelectors { store: String },
    #[error("no product found on the page (looked for {looked_for})")]
    NoProduct { looked_for: String },
    #[error(
        "no price found for {title:?} on the page ({profile} profile of {store}; looked for {looked_for})"
    )]
    NoPrice {
        title: String,
        profile: &'static str,
        store: String,
        looked_for: String,
    },
    #[error("could not read the price of {title:?}: {source}")]
    BadPrice {
        title: String,
        #[source]
        source: PriceError,
    },
}

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

/// Extracts game-page links (`profile.links`) and the next listing page
/// (`profile.next`) from a listing page, resolved against `page_url`,
/// without fragments or duplicates, in page order.
pub fn extract_listing(
    html: &str,
    page_url: &Url,
    site: &str,
    profile: &Profile,
) -> Result<Vec<Link>, ExtractError> {
    ensure_html(html)?;
    let links_sel = selector("links", &profile.links)?;
    let next_sel = match &profile.next {
        Some(next) if !next.trim().is_empty() => Some(selector("next", next)?),
        _ => None,
    };
    let doc = Html::parse_document(html);
    let mut seen: HashSet<(String, TaskKind)> = HashSet::new();
    let mut out = Vec::new();
    let mut push = |url: Url, kind: TaskKind| {
        let url = String::from(url);
        if seen.insert((url.clone(), kind)) {
            out.push(Link {
                url,
                site: site.to_owned(),
                kind,
            });
        }
    };
    for el in doc.select(&links_sel) {
        if let Some(url) = element_link(el, page_url) {
            push(url, TaskKind::Page);
        }
    }
    if let Some(next_sel) = next_sel {
        let mut own = page_url.clone();
        own.set_fragment(None);
        for el in doc.select(&next_sel) {
            // A "next" pointing at this very page would loop the crawl.
            if let Some(url) = element_link(el, page_url).filter(|u| *u != own) {
                push(url, TaskKind::Listing);
            }
        }
    }
    Ok(out)
}

/// What an extractor needs to know about the page it reads.
struct Page<'a> {
    doc: &'a Html,
    /// The URL put on items: the canonical one when trustworthy.
    url: String,
    /// The URL the page was fetched from, for resolving relative links.
    base: &'a Url,
    profile: &'a Profile,
}

impl Page<'_> {
    fn item(&self, title: String, price: Price) -> Item {
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

    fn no_price(&self, title: String) -> ExtractError {
        ExtractError::NoPrice {
            title,
            profile: profile_name(self.profile.extract),
            store: self.profile.store.clone(),
            looked_for: looked_for(self.profile.extract).to_owned(),
        }
    }

    fn no_product(&self) -> ExtractError {
        ExtractError::NoProduct {
            looked_for: looked_for(self.profile.extract).to_owned(),
        }
    }

    /// The Steam app id of the first Steam store link on the page.
    fn steam_link(&self) -> Option<String> {
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

/// Rejects JSON, PDFs, images and plain text before the HTML parser turns
/// them into an empty document and a misleading "no product" error.
fn ensure_html(text: &str) -> Result<(), ExtractError> {
    let start = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if start.starts_with('<') {
        return Ok(());
    }
    if start.starts_with(['{', '[']) || start.starts_with("%PDF") || !start.contains('<') {
        return Err(ExtractError::NotHtml);
    }
    // Markup after some junk (a stray BOM variant, a PHP notice) still counts
    // if an html/head/body tag shows up early on.
    let head: String = start
        .chars()
        .take(2048)
        .collect::<String>()
        .to_ascii_lowercase();
    if ["<html", "<head", "<body", "<!doctype"]
        .iter()
        .any(|tag| head.contains(tag))
    {
        Ok(())
    } else {
        Err(ExtractError::NotHtml)
    }
}

fn selector(field: &'static str, text: &str) -> Result<Selector, ExtractError> {
    Selector::parse(text).map_err(|e| ExtractError::InvalidSelector {
        field,
        selector: text.to_owned(),
        reason: e.to_string(),
    })
}

/// For the fixed selectors in this module; they are known to parse, but a
/// `None` beats a panic should one ever be mistyped.
fn static_selector(text: &str) -> Option<Selector> {
    Selector::parse(text).ok()
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

/// The http(s) URL an element points at: its own href, else its first
/// descendant link's (a selector may pick a card rather than its anchor).
fn element_link(el: ElementRef<'_>, base: &Url) -> Option<Url> {
    let href = match el.value().attr("href") {
        Some(href) => href,
        None => {
            let sel = static_selector("a[href]")?;
            el.select(&sel).next()?.value().attr("href")?
        }
    };
    let href = href.trim();
    let lower = href.to_ascii_lowercase();
    if href.is_empty()
        || href.starts_with('#')
        || ["javascript:", "mailto:", "tel:", "data:"]
            .iter()
            .any(|s| lower.starts_with(s))
    {
        return None;
    }
    let mut url = base.join(href).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_fragment(None);
    Some(url)
}

/// Trims, collapses whitespace runs (newlines, nbsp) into single spaces.
fn clean_text(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An element's text, cleaned.
fn element_text(el: ElementRef<'_>) -> String {
    clean_text(&el.text().collect::<String>())
}

/// A price from markup meant for machines, tolerating display formats
/// ("€7.99") that some stores put there anyway.
fn machine_price(text: &str, currency: &str) -> Result<Price, PriceError> {
    parse_amount(text, currency).or_else(|first| parse_price(text, currency).map_err(|_| first))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn profile(extract: Extractor) -> Profile {
        Profile {
            extract,
            store: "TestStore".to_owned(),
            currency: "EUR".to_owned(),
            allowed_hosts: vec!["shop.example".to_owned()],
            links: "a.game-link".to_owned(),
            next: Some("a[rel=next]".to_owned()),
            css: None,
        }
    }

    fn base() -> Url {
        Url::parse("https://shop.example/games/?page=1").unwrap()
    }

    const LISTING: &str = r##"<!doctype html><html><body>
      <ul>
        <li><a class="game-link" href="/game/portal-2#reviews">Portal 2</a></li>
        <li><a class="game-link" href="../game/doom">Doom</a></li>
        <li><a class="game-link" href="https://shop.example/game/portal-2">Portal 2 again</a></li>
        <li><a class="game-link" href="javascript:void(0)">broken</a></li>
        <li><a class="game-link" href="mailto:shop@example.com">mail</a></li>
        <li><a class="game-link" href="">empty</a></li>
        <li><a class="game-link" href="  relative/quake  ">Quake</a></li>
        <li><a class="other" href="/game/not-this">not this</a></li>
      </ul>
      <a rel="next" href="?page=2">Next</a>
      <a rel="next" href="?page=2#top">Next again</a>
    </body></html>"##;

    #[test]
    fn listing_links_are_resolved_deduplicated_and_filtered() {
        let links =
            extract_listing(LISTING, &base(), "pixelbay", &profile(Extractor::Jsonld)).unwrap();
        let got: Vec<(&str, TaskKind)> = links.iter().map(|l| (l.url.as_str(), l.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("https://shop.example/game/portal-2", TaskKind::Page),
                ("https://shop.example/game/doom", TaskKind::Page),
                ("https://shop.example/games/relative/quake", TaskKind::Page),
                ("https://shop.example/games/?page=2", TaskKind::Listing),
            ]
        );
        assert!(links.iter().all(|l| l.site == "pixelbay"));
    }

    #[test]
    fn listing_next_may_be_a_link_element_and_cards_are_followed_to_their_anchor() {
        let html = r#"<html><head><link rel="next" href="/games/?page=3"></head><body>
          <div class="product"><a href="/game/1"><img src="x.png"></a></div>
          <a class="product" href="/game/2">2</a>
          <a class="next" href="/games/?page=1">self</a>
        </body></html>"#;
        let mut p = profile(Extractor::Meta);
        p.links = "a.product, div.product".to_owned();
        p.next = Some("link[rel=next], a.next".to_owned());
        let links = extract_listing(html, &base(), "gamevault", &p).unwrap();
        let got: Vec<&str> = links.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(
            got,
            vec![
                "https://shop.example/game/1",
                "https://shop.example/game/2",
                "https://shop.example/games/?page=3",
            ]
        );
    }

    #[test]
    fn listing_without_links_is_empty_not_an_error() {
        let links = extract_listing(
            "<html><body>Nothing here</body></html>",
            &base(),
            "s",
            &profile(Extractor::Jsonld),
        );
        assert_eq!(links, Ok(vec![]));
    }

    #[test]
    fn invalid_selectors_are_errors_not_panics() {
        let mut p = profile(Extractor::Jsonld);
        p.links = "a[[[".to_owned();
        let err = extract_listing(LISTING, &base(), "s", &p).unwrap_err();
        assert!(
            matches!(err, ExtractError::InvalidSelector { field: "links", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("a[[["));
        let mut p = profile(Extractor::Jsonld);
        p.next = Some(">>>".to_owned());
        assert!(extract_listing(LISTING, &base(), "s", &p).is_err());
    }

    #[test]
    fn non_html_input_is_refused() {
        let p = profile(Extractor::Jsonld);
        for text in [
            "{\"price\": 1}",
            "[1,2]",
            "%PDF-1.7 <<",
            "just words",
            "",
            "   ",
        ] {
            assert_eq!(
                extract_page(text, &base(), &p),
                Err(ExtractError::NotHtml),
                "{text:?}"
            );
            assert_eq!(
                extract_listing(text, &base(), "s", &p),
                Err(ExtractError::NotHtml)
            );
        }
        assert!(ensure_html("\u{feff}<!DOCTYPE html><html></html>").is_ok());
        assert!(ensure_html("Warning: x in y.php\n<html><body></body></html>").is_ok());
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
