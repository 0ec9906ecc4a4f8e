//! Offline demo stores (PixelBay, GameVault, RetroShelf) served under `/demo/`,
//! so a fresh server can crawl, merge and show prices without the internet.
//!
//! Each store exposes its offers through a different kind of markup (JSON-LD,
//! OpenGraph/microdata, plain HTML for CSS selectors) to exercise every
//! extractor. Prices depend on a seed held in [`DemoState`]; changing it moves
//! prices so re-crawls have something to notice.

mod catalog;
mod gamevault;
mod load;
mod pages;
mod pixelbay;
mod render;
mod retroshelf;
mod routes;
mod sites;
mod state;

pub use catalog::{
    catalog_titles, decimal_price, euro_price, expected_catalog, ExpectedOffer, Store,
    OUT_OF_STOCK_PER_STORE,
};
pub use pages::{escape_json_for_script, json_for_script};
pub use retroshelf::RETROSHELF_PRIVATE_PATH;
pub use routes::{configure, ROBOTS_TXT};
pub use sites::{sites_toml, SITES_TOML_TEMPLATE};
pub use state::DemoState;

#[cfg(test)]
mod tests;
