//! The demo catalog: which games each demo store sells and at what (seeded) price.
//!
//! Everything here is deterministic so that integration tests can predict the
//! exact catalog a crawl of the demo stores must produce (see
//! [`expected_catalog`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// The catalog data; kept in a data file so operators can read and edit it.
const CATALOG_TOML: &str = include_str!("catalog.toml");

/// How many games each store shows as out of stock for any given seed.
/// A fixed count (rather than a probability) keeps tests stable.
pub const OUT_OF_STOCK_PER_STORE: usize = 3;

/// Discounts (percent) a store may apply. Repeated zeros make "full price" common,
/// like in a real shop.
const DISCOUNTS: [i64; 10] = [0, 0, 10, 15, 20, 25, 33, 40, 50, 60];

/// One of the three demo stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Store {
    PixelBay,
    GameVault,
    RetroShelf,
}

impl Store {
    pub const ALL: [Store; 3] = [Store::PixelBay, Store::GameVault, Store::RetroShelf];

    /// URL segment and catalog key, e.g. `pixelbay`.
    pub fn slug(self) -> &'static str {
        match self {
            Store::PixelBay => "pixelbay",
            Store::GameVault => "gamevault",
            Store::RetroShelf => "retroshelf",
        }
    }

    /// Display name; the crawler's site profile uses the same string.
    pub fn name(self) -> &'static str {
        match self {
            Store::PixelBay => "PixelBay",
            Store::GameVault => "GameVault",
            Store::RetroShelf => "RetroShelf",
        }
    }

    /// Games per listing page; deliberately different per store so that
    /// pagination is exercised with different remainders.
    pub fn per_page(self) -> usize {
        match self {
            Store::PixelBay => 8,
            Store::GameVault => 7,
            Store::RetroShelf => 6,
        }
    }

    pub fn from_slug(slug: &str) -> Option<Store> {
        Store::ALL.into_iter().find(|s| s.slug() == slug)
    }
}

/// A game as written in `catalog.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogGame {
    pub slug: String,
    pub title: String,
    #[serde(default)]
    pub steam_id: Option<String>,
    pub base_cents: i64,
    pub stores: Vec<String>,
    /// Stores that give this game away (price 0).
    #[serde(default)]
    pub free_at: Vec<String>,
    /// Store slug -> the title as that store spells it.
    #[serde(default)]
    pub titles: BTreeMap<String, String>,
}

impl CatalogGame {
    pub fn sold_at(&self, store: Store) -> bool {
        self.stores.iter().any(|s| s == store.slug())
    }

    /// The title as `store` displays it.
    pub fn title_at(&self, store: Store) -> &str {
        self.titles.get(store.slug()).unwrap_or(&self.title)
    }

    fn free_at(&self, store: Store) -> bool {
        self.free_at.iter().any(|s| s == store.slug())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    game: Vec<CatalogGame>,
}

/// Parses and validates the catalog text.
fn parse_catalog(text: &str) -> Result<Vec<CatalogGame>, String> {
    let file: CatalogFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut seen = std::collections::BTreeSet::new();
    for game in &file.game {
        if !seen.insert(game.slug.as_str()) {
            return Err(format!("duplicate slug {:?}", game.slug));
        }
        // Slugs end up in URLs unescaped, so keep them to a safe alphabet.
        if game.slug.is_empty()
            || !game
                .slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("bad slug {:?}", game.slug));
        }
        if let Some(id) = &game.steam_id {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad steam id {id:?} for {}", game.slug));
            }
        }
        if game.base_cents <= 0 {
            return Err(format!("base price must be positive for {}", game.slug));
        }
        let keys = game
            .stores
            .iter()
            .chain(&game.free_at)
            .chain(game.titles.keys());
        for key in keys {
            if Store::from_slug(key).is_none() {
                return Err(format!("unknown store {key:?} for {}", game.slug));
            }
        }
    }
    Ok(file.game)
}

/// The parsed catalog, parsed once. An error here is a bug in `catalog.toml`
/// (a unit test guards it), so callers turn it into a 500 page, not a panic.
pub fn catalog() -> Result<&'static [CatalogGame], &'static str> {
    static CATALOG: OnceLock<Result<Vec<CatalogGame>, String>> = OnceLock::new();
    match CATALOG.get_or_init(|| parse_catalog(CATALOG_TOML)) {
        Ok(games) => Ok(games),
        Err(e) => Err(e),
    }
}

/// FNV-1a: a tiny stable hash, so prices do not depend on std's randomised hasher.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") hash differently.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// splitmix64 finaliser: spreads the seed over all bits so seeds 1 and 2 differ a lot.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn mix(store: Store, slug: &str, seed: u64, salt: &str) -> u64 {
    splitmix64(
        fnv1a(&[store.slug().as_bytes(), slug.as_bytes(), salt.as_bytes()]) ^ splitmix64(seed),
    )
}

/// One game as offered by one store under one seed.
#[derive(Clone, Copy, Debug)]
pub struct Offer {
    pub game: &'static CatalogGame,
    /// Position in the whole catalog (GameVault switches markup on it).
    pub index: usize,
    pub store: Store,
    pub price_cents: i64,
    pub regular_cents: i64,
    pub available: bool,
}

impl Offer {
    pub fn title(&self) -> &'static str {
        self.game.title_at(self.store)
    }

    /// GameVault renders every third catalog game with microdata instead of OpenGraph.
    pub fn uses_microdata(&self) -> bool {
        self.store == Store::GameVault && (self.index + 1).is_multiple_of(3)
    }
}

/// Sale price for a paid game: base minus a seeded discount, then moved down to
/// the nearest price ending in 9 cents, as shops do ("14,99 €", not "14,99.2").
fn sale_price(base_cents: i64, store: Store, slug: &str, seed: u64) -> i64 {
    let len = DISCOUNTS.len() as u64;
    let pct = DISCOUNTS[(mix(store, slug, seed, "price") % len) as usize];
    if pct == 0 {
        return base_cents;
    }
    let raw = base_cents * (100 - pct) / 100;
    let nines = raw - raw % 10 + 9;
    // raw is at least 40% of a positive base, so this stays positive.
    if nines > raw {
        (nines - 10).max(1)
    } else {
        nines
    }
}

/// All offers of `store` in catalog order (the order listings show them in).
pub fn store_offers(store: Store, seed: u64) -> Result<Vec<Offer>, &'static str> {
    let games = catalog()?;
    let mut offers: Vec<Offer> = games
        .iter()
        .enumerate()
        .filter(|(_, g)| g.sold_at(store))
        .map(|(index, game)| {
            let free = game.free_at(store);
            Offer {
                game,
                index,
                store,
                price_cents: if free {
                    0
                } else {
                    sale_price(game.base_cents, store, &game.slug, seed)
                },
                regular_cents: game.base_cents,
                available: true,
            }
        })
        .collect();
    // Out of stock: the OUT_OF_STOCK_PER_STORE paid games with the lowest
    // seeded hash, so the set changes with the seed but its size never does.
    let mut candidates: Vec<(u64, usize)> = offers
        .iter()
        .enumerate()
        .filter(|(_, o)| o.price_cents > 0)
        .map(|(i, o)| (mix(store, &o.game.slug, seed, "stock"), i))
        .collect();
    candidates.sort_unstable();
    for &(_, i) in candidates.iter().take(OUT_OF_STOCK_PER_STORE) {
        offers[i].available = false;
    }
    Ok(offers)
}

/// What a correct crawl of one store page must yield.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedOffer {
    pub slug: &'static str,
    /// Canonical title (what a merged catalog should converge on).
    pub title: &'static str,
    /// The title exactly as the store displays it (may differ in case or ™/®).
    pub store_title: &'static str,
    pub steam_id: Option<&'static str>,
    /// "PixelBay", "GameVault" or "RetroShelf".
    pub store: &'static str,
    pub price_cents: i64,
    pub regular_cents: i64,
    pub available: bool,
    /// How the page exposes the offer: "jsonld", "opengraph", "microdata" or "css".
    pub markup: &'static str,
    /// False for GameVault's microdata pages, which carry no regular price.
    pub regular_shown: bool,
}

/// Every offer of every demo store under `seed`, stores in PixelBay, GameVault,
/// RetroShelf order, games in catalog order. Empty only if the catalog is broken
/// (which a unit test rules out).
pub fn expected_catalog(seed: u64) -> Vec<ExpectedOffer> {
    let mut out = Vec::new();
    for store in Store::ALL {
        let Ok(offers) = store_offers(store, seed) else {
            return Vec::new();
        };
        for o in offers {
            let markup = match store {
                Store::PixelBay => "jsonld",
                Store::GameVault if o.uses_microdata() => "microdata",
                Store::GameVault => "opengraph",
                Store::RetroShelf => "css",
            };
            out.push(ExpectedOffer {
                slug: &o.game.slug,
                title: &o.game.title,
                store_title: o.title(),
                steam_id: o.game.steam_id.as_deref(),
                store: store.name(),
                price_cents: o.price_cents,
                regular_cents: o.regular_cents,
                available: o.available,
                markup,
                regular_shown: markup != "microdata",
            });
        }
    }
    out
}

/// Canonical titles of all catalog games, in catalog order.
pub fn catalog_titles() -> Vec<&'static str> {
    catalog()
        .map(|games| games.iter().map(|g| g.title.as_str()).collect())
        .unwrap_or_default()
}

/// "7.99" — the machine-readable decimal used in JSON-LD and meta tags.
pub fn decimal_price(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// "1.299,00 €" — European display format ("." groups thousands, "," before cents).
pub fn euro_price(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    let units = (c / 100).to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3);
    for (i, ch) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(ch);
    }
    format!("{sign}{grouped},{:02} €", c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_file_parses_and_validates() {
        let games = catalog().expect("catalog.toml must be valid");
        assert!((36..=44).contains(&games.len()));
        let without_steam = games.iter().filter(|g| g.steam_id.is_none()).count();
        assert!((6..=10).contains(&without_steam));
    }

    #[test]
    fn each_store_carries_between_18_and_24_games() {
        for store in Store::ALL {
            let n = store_offers(store, 1).unwrap().len();
            assert!((18..=24).contains(&n), "{store:?} has {n}");
        }
    }

    #[test]
    fn some_games_are_in_several_stores_and_a_few_in_only_one() {
        let games = catalog().unwrap();
        let single = games.iter().filter(|g| g.stores.len() == 1).count();
        let multi = games.iter().filter(|g| g.stores.len() >= 2).count();
        assert!((2..=10).contains(&single));
        assert!(multi >= 25);
    }

    #[test]
    fn exactly_three_games_per_store_are_out_of_stock() {
        for seed in [0, 1, 42, u64::MAX] {
            for store in Store::ALL {
                let offers = store_offers(store, seed).unwrap();
                let out = offers.iter().filter(|o| !o.available).count();
                assert_eq!(out, OUT_OF_STOCK_PER_STORE);
            }
        }
    }

    #[test]
    fn one_game_is_free_at_retroshelf_only() {
        let free: Vec<_> = expected_catalog(7)
            .into_iter()
            .filter(|o| o.price_cents == 0)
            .collect();
        assert_eq!(free.len(), 1);
        assert_eq!(free[0].store, "RetroShelf");
        assert!(free[0].available);
    }

    #[test]
    fn prices_are_discounts_of_at_most_sixty_percent() {
        for o in expected_catalog(3) {
            assert!(o.price_cents <= o.regular_cents);
            if o.price_cents > 0 {
                // 60% off, then rounded down to a price ending in 9 cents.
                assert!(o.price_cents * 100 > o.regular_cents * 40 - 1100);
            }
        }
    }

    #[test]
    fn changing_the_seed_moves_prices_both_ways() {
        let a = expected_catalog(1);
        let b = expected_catalog(2);
        assert_eq!(a.len(), b.len());
        let dropped = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| y.price_cents < x.price_cents)
            .count();
        let rose = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| y.price_cents > x.price_cents)
            .count();
        assert!(dropped >= 3 && rose >= 3, "dropped {dropped}, rose {rose}");
    }

    #[test]
    fn the_same_seed_gives_the_same_catalog() {
        assert_eq!(expected_catalog(99), expected_catalog(99));
    }

    #[test]
    fn decimal_prices_always_have_two_digits() {
        assert_eq!(decimal_price(799), "7.99");
        assert_eq!(decimal_price(5), "0.05");
        assert_eq!(decimal_price(0), "0.00");
        assert_eq!(decimal_price(129900), "1299.00");
    }

    #[test]
    fn euro_prices_group_thousands_with_dots() {
        assert_eq!(euro_price(799), "7,99 €");
        assert_eq!(euro_price(129900), "1.299,00 €");
        assert_eq!(euro_price(123456789), "1.234.567,89 €");
        assert_eq!(euro_price(99900), "999,00 €");
    }

    #[test]
    fn a_broken_catalog_is_reported_not_panicked_on() {
        assert!(parse_catalog("[[game]]\nslug = \"x\"").is_err());
        let dup = "[[game]]\nslug=\"a\"\ntitle=\"A\"\nbase_cents=1\nstores=[\"pixelbay\"]\n";
        assert!(parse_catalog(&format!("{dup}{dup}")).is_err());
        let bad_store = "[[game]]\nslug=\"a\"\ntitle=\"A\"\nbase_cents=1\nstores=[\"nope\"]\n";
        assert!(parse_catalog(bad_store).is_err());
    }
}
