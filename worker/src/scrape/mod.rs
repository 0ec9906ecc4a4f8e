//! Reading store pages: offers from game pages (through the profile's
//! extractor) and links from listing pages. Pure functions over HTML text, so
//! workers can run them anywhere and tests need no network.

mod css;
mod error;
pub mod fetch;
pub mod hosts;
mod jsonld;
mod listing;
mod markup;
mod meta;
mod microdata;
mod page;
pub mod price;
pub mod robots;
mod schema;
pub mod steam;
mod trace;

pub use error::ExtractError;
pub use listing::extract_listing;
pub use page::{extract_page, extract_page_traced};
pub use price::{parse_amount, parse_currency, parse_price, Price, PriceError};
pub use robots::Robots;
pub use steam::steam_app_id;
pub use trace::{Field, FieldTrace, ProductTrace, Trace};

#[cfg(test)]
mod fixtures;
