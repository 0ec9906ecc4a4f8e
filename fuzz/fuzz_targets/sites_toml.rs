//! `crawl::sites::Sites::parse` on any `sites.toml`. A configuration that
//! loads names each site once, with at least one fetch slot per host, and
//! only start URLs the crawler may fetch.

#![no_main]

use bazaar::crawl::sites::{is_allowed, Sites};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sites) = Sites::parse(text, "http://127.0.0.1:8080") else {
        return;
    };
    for site in sites.iter() {
        let found = sites.get(&site.name).expect("a site is found by its name");
        assert_eq!(found.name, site.name);
        assert!(site.politeness.concurrency >= 1);
        for url in &site.start {
            assert!(
                is_allowed(url, &site.profile.allowed_hosts),
                "site {:?} starts at {url}, which its crawl would refuse",
                site.name
            );
        }
        for host in &site.profile.allowed_hosts {
            assert!(sites.politeness_for(host).concurrency >= 1);
        }
    }
});
