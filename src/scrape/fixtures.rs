//! What the extractors' unit tests share: a profile for a given extractor, and the
//! URL of the listing page they read.

use url::Url;

use crate::protocol::worker::{Extractor, Profile};

pub(super) fn profile(extract: Extractor) -> Profile {
    Profile {
        extract,
        store: "TestStore".to_owned(),
        currency: "EUR".to_owned(),
        allowed_hosts: vec!["shop.example".to_owned()],
        links: "a.game-link".to_owned(),
        next: Some("a[rel=next]".to_owned()),
        css: None,
        title_strip: Vec::new(),
    }
}

pub(super) fn base() -> Url {
    Url::parse("https://shop.example/games/?page=1").unwrap()
}
