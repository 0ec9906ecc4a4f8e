//! What the extractors share for reading markup: the check that a response is
//! HTML at all, selectors, cleaned text and prices meant for machines.

use scraper::{ElementRef, Selector};

use super::{parse_amount, parse_price, ExtractError, Price, PriceError};

/// Rejects JSON, PDFs, images and plain text before the HTML parser turns
/// them into an empty document and a misleading "no product" error.
pub(super) fn ensure_html(text: &str) -> Result<(), ExtractError> {
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

pub(super) fn selector(field: &'static str, text: &str) -> Result<Selector, ExtractError> {
    Selector::parse(text).map_err(|e| ExtractError::InvalidSelector {
        field,
        selector: text.to_owned(),
        reason: e.to_string(),
    })
}

/// For the fixed selectors in this module; they are known to parse, but a
/// `None` beats a panic should one ever be mistyped.
pub(super) fn static_selector(text: &str) -> Option<Selector> {
    Selector::parse(text).ok()
}

/// Trims, collapses whitespace runs (newlines, nbsp) into single spaces.
pub(super) fn clean_text(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An element's text, cleaned.
pub(super) fn element_text(el: ElementRef<'_>) -> String {
    clean_text(&el.text().collect::<String>())
}

/// A price from markup meant for machines, tolerating display formats
/// ("€7.99") that some stores put there anyway.
pub(super) fn machine_price(text: &str, currency: &str) -> Result<Price, PriceError> {
    parse_amount(text, currency).or_else(|first| parse_price(text, currency).map_err(|_| first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::worker::Extractor;
    use crate::scrape::fixtures::{base, profile};
    use crate::scrape::{extract_listing, extract_page};

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
}
