//! `scrape::extract_page` with the JSON-LD extractor (`<script type="application/ld+json">` offers) on any page. What
//! it returns is at least one offer from the profile's store, with a clean
//! title, a sane price, a currency code, a URL on the fetched host and a
//! Steam id of digits.

#![no_main]

use std::sync::OnceLock;

use bazaar::protocol::worker::{Extractor, Profile};
use bazaar::scrape::extract_page;
use libfuzzer_sys::fuzz_target;
use url::Url;

fn setup() -> &'static (Url, Profile) {
    static SETUP: OnceLock<(Url, Profile)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let url = Url::parse("https://shop.example/game/portal-2?ref=list").expect("a URL");
        let profile = Profile {
            extract: Extractor::Jsonld,
            store: "TestStore".to_owned(),
            currency: "EUR".to_owned(),
            allowed_hosts: vec!["shop.example".to_owned()],
            links: "a.game".to_owned(),
            next: Some("a[rel=next]".to_owned()),
            css: None,
        };
        (url, profile)
    })
}

fuzz_target!(|data: &[u8]| {
    let (url, profile) = setup();
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
});
