//! The mail checks at the edge: `mail::EmailAddress` and `mail::HeaderText` /
//! `mail::ExtraHeader`. Nothing accepted carries a line break or another
//! control character or exceeds its limit, and an accepted address parses
//! again to itself.

#![no_main]

use bazaar::mail::{EmailAddress, ExtraHeader, HeaderText};
use libfuzzer_sys::fuzz_target;

fn safe(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(address) = EmailAddress::parse(text) {
        let shown = address.as_str();
        assert!(safe(shown), "{shown:?}");
        assert!(shown.len() <= 254 && shown.contains('@'), "{shown:?}");
        assert_eq!(shown.trim(), shown);
        assert_eq!(EmailAddress::parse(shown).as_ref(), Ok(&address));
    }
    if let Ok(header) = HeaderText::parse(text) {
        assert!(safe(header.as_str()) && header.as_str().len() <= 998);
        assert_eq!(header.as_str(), text);
    }
    // `Name: value`, as an extra header would be written.
    let (name, value) = text.split_once(':').unwrap_or((text, ""));
    if let Ok(header) = ExtraHeader::parse(name, value) {
        assert!(!header.name().is_empty());
        assert!(header
            .name()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert!(safe(header.value().as_str()));
    }
});
