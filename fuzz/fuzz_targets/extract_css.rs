//! `scrape::extract_page` with the css extractor, with the selectors of a
//! real profile (the RetroShelf demo store), on any page; every offer it
//! returns passes `common::extract::check`.

#![no_main]

use std::sync::OnceLock;

use bazaar::protocol::worker::{CssSelectors, Extractor, Profile};
use libfuzzer_sys::fuzz_target;
use url::Url;

#[path = "common/extract.rs"]
mod extract;

fn setup() -> &'static (Url, Profile) {
    static SETUP: OnceLock<(Url, Profile)> = OnceLock::new();
    SETUP.get_or_init(|| {
        extract::setup(
            Extractor::Css,
            Some(CssSelectors {
                title: "h1.title".to_owned(),
                price: ".price .now".to_owned(),
                regular_price: Some(".price .was".to_owned()),
                unavailable: Some(".stock.out".to_owned()),
                steam_id: Some(".steam-id".to_owned()),
            }),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (url, profile) = setup();
    extract::check(data, url, profile);
});
