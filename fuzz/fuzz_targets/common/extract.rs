//! What the three extractor targets share: the page's URL, a profile for
//! the extractor under test, and the checks every offer extracted from any
//! page must pass: at least one offer from the profile's store, with a
//! clean title, a sane price, a currency code, a URL on the fetched host
//! and a Steam id of digits.

use bazaar::protocol::worker::{CssSelectors, Extractor, Profile};
use bazaar::scrape::extract_page;
use url::Url;

/// The page's URL and a profile with `extract` and `css`.
pub fn setup(extract: Extractor, css: Option<CssSelectors>) -> (Url, Profile) {
    let url = Url::parse("https://shop.example/game/portal-2?ref=list").expect("a URL");
    let profile = Profile {
        extract,
        store: "TestStore".to_owned(),
        currency: "EUR".to_owned(),
        allowed_hosts: vec!["shop.example".to_owned()],
        links: "a.game".to_owned(),
        next: Some("a[rel=next]".to_owned()),
        css,
        title_strip: vec!["Buy {title}".to_owned(), "{title} | Shop".to_owned()],
    };
    (url, profile)
}

/// Extracts from `data` as a worker would, and checks every offer.
pub fn check(data: &[u8], url: &Url, profile: &Profile) {
    // Workers read bodies as UTF-8, replacing what is not.
    let html = String::from_utf8_lossy(data);
    let Ok(items) = extract_page(&html, url, profile) else {
        return;
    };
    assert!(!items.is_empty());
    for item in items {
        assert_eq!(item.store, profile.store);
        assert!(!item.title.is_empty(), "{item:?}");
        assert_eq!(
            item.title.split_whitespace().collect::<Vec<_>>().join(" "),
            item.title
        );
        assert!(
            (0..=100_000_000_000).contains(&item.price_cents),
            "{item:?}"
        );
        assert!(item.regular_cents.is_none_or(|c| c >= 0), "{item:?}");
        assert!(
            item.currency.len() == 3 && item.currency.bytes().all(|b| b.is_ascii_uppercase()),
            "{item:?}"
        );
        let item_url = Url::parse(&item.url).expect("an item's URL parses");
        assert_eq!(item_url.host_str(), url.host_str(), "{item:?}");
        for id in item.external_ids.values() {
            assert!(!id.is_empty() && id.len() <= 10 && id.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
