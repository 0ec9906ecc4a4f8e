//! `scrape::extract_page` with the JSON-LD extractor
//! (`<script type="application/ld+json">` offers) on any page; every offer
//! it returns passes `common::extract::check`.

#![no_main]

use std::sync::OnceLock;

use bazaar::protocol::worker::{Extractor, Profile};
use libfuzzer_sys::fuzz_target;
use url::Url;

#[path = "common/extract.rs"]
mod extract;

fn setup() -> &'static (Url, Profile) {
    static SETUP: OnceLock<(Url, Profile)> = OnceLock::new();
    SETUP.get_or_init(|| extract::setup(Extractor::Jsonld, None))
}

fuzz_target!(|data: &[u8]| {
    let (url, profile) = setup();
    extract::check(data, url, profile);
});
