//! The one error extraction returns, for game pages and listing pages alike.

use thiserror::Error;

use super::price::PriceError;

/// Why a page yielded nothing. Shown to admins as a task's failure reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtractError {
    #[error("the response is not an HTML page")]
    NotHtml,
    #[error("invalid CSS selector for {field} ({selector:?}): {reason}")]
    InvalidSelector {
        field: &'static str,
        selector: String,
        reason: String,
    },
    #[error("the css profile for {store} has no selectors (profile.css is missing)")]
    MissingCssSelectors { store: String },
    #[error("no product found on the page (looked for {looked_for})")]
    NoProduct { looked_for: String },
    #[error(
        "no price found for {title:?} on the page ({profile} profile of {store}; looked for {looked_for})"
    )]
    NoPrice {
        title: String,
        profile: &'static str,
        store: String,
        looked_for: String,
    },
    #[error("could not read the price of {title:?}: {source}")]
    BadPrice {
        title: String,
        #[source]
        source: PriceError,
    },
}
