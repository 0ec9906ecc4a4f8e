//! Reading a listing page: the links to game pages and to the next listing page.

use std::collections::HashSet;

use scraper::{ElementRef, Html};
use url::Url;

use super::markup::{ensure_html, selector, static_selector};
use super::ExtractError;
use crate::protocol::worker::{Link, Profile, TaskKind};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::worker::Extractor;
    use crate::scrape::fixtures::{base, profile};

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
}
