//! `scrape::Robots` on any robots.txt: parsing never fails, a crawl delay is
//! capped at a minute, robots.txt itself is always allowed, and a file
//! without a Disallow line disallows nothing. The input's last line is also
//! asked about as a path.

#![no_main]

use std::time::Duration;

use bazaar::scrape::Robots;
use libfuzzer_sys::fuzz_target;

const UA: &str = "Bazaar/0.1 (+https://bazaar.example/bot)";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let robots = Robots::parse(text, UA);
    assert!(robots
        .crawl_delay()
        .is_none_or(|d| d <= Duration::from_secs(60)));
    assert!(robots.allows("/robots.txt"));
    let asked = text.lines().last().unwrap_or("");
    let allowed = robots.allows(asked);
    robots.allows("/");
    robots.allows("/games?page=2");
    if !text.to_ascii_lowercase().contains("disallow") {
        assert!(allowed, "{asked:?} refused without any Disallow");
    }
});
