//! Merging store offers into the game catalog: identity, offers, price history
//! and the changes a crawl caused (docs/architecture.md §2).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use entity::{changes, games, offers, price_points};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, Value,
};

use crate::db::{placeholders, stmt};
use crate::domain::title::normalize_title;
use crate::protocol::worker::Item;

pub use entity::changes::ChangeKind;

/// What merging one batch of items did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MergeStats {
    pub new_games: u32,
    pub price_changes: u32,
}

/// A game's external identity, when the store gave one (`steam:620`).
pub fn external_key(item: &Item) -> Option<String> {
    item.external_ids
        .get("steam")
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .map(|id| format!("steam:{id}"))
}

/// How many rows one statement reads or writes, well under SQLite's limit on
/// bound parameters.
const CHUNK: usize = 200;

/// Merges a batch of store offers into the catalog, with the same outcome as
/// merging them one after another in order, in a handful of statements: the
/// games and offers involved are read at once, merged in memory, and written
/// back in bulk. Each item is `(crawl id, offer)`.
pub async fn merge_items(
    db: &impl ConnectionTrait,
    items: &[(i64, &Item)],
    now: DateTime<Utc>,
    stats: &mut MergeStats,
) -> Result<(), DbErr> {
    if items.is_empty() {
        return Ok(());
    }
    let mut catalog = Catalog::load(db, items).await?;
    let mut touched = Vec::with_capacity(items.len());
    for &(crawl_id, item) in items {
        let game = catalog.game_for(crawl_id, item, now, stats);
        touched.push(game);
    }
    let ids = catalog.insert_new_games(db).await?;
    for game in &mut touched {
        if let Some(&id) = ids.get(game) {
            *game = id;
        }
    }
    catalog.load_offers(db, &touched).await?;
    for (&(crawl_id, item), &game) in items.iter().zip(&touched) {
        catalog.apply(crawl_id, game, item, now, stats);
    }
    catalog.write(db, now).await
}

/// The part of the catalog a batch touches, held in memory while merging.
#[derive(Default)]
struct Catalog {
    games: HashMap<i64, games::Model>,
    by_ext: HashMap<String, i64>,
    by_norm: HashMap<String, Vec<i64>>,
    /// Ordered by game, so one game's offers are a range, not a scan.
    offers: BTreeMap<(i64, String), offers::Model>,
    /// Offers to write.
    dirty_offers: Vec<(i64, String)>,
    dirty_games: Vec<i64>,
    /// Games first seen in this batch, by the provisional ids (below zero)
    /// they have until `insert_new_games`, in the order they were found.
    new_games: Vec<i64>,
    points: Vec<price_points::ActiveModel>,
    changes: Vec<changes::ActiveModel>,
}

impl Catalog {
    async fn load(db: &impl ConnectionTrait, items: &[(i64, &Item)]) -> Result<Catalog, DbErr> {
        let keys: BTreeSet<String> = items.iter().filter_map(|(_, i)| external_key(i)).collect();
        let norms: BTreeSet<String> = items
            .iter()
            .map(|(_, i)| normalize_title(&i.title))
            .collect();
        let mut catalog = Catalog::default();
        let keys: Vec<String> = keys.into_iter().collect();
        for chunk in keys.chunks(CHUNK) {
            let found = games::Entity::find()
                .filter(games::Column::ExtKey.is_in(chunk.iter().cloned()))
                .all(db)
                .await?;
            found.into_iter().for_each(|g| catalog.add_game(g));
        }
        let norms: Vec<String> = norms.into_iter().collect();
        for chunk in norms.chunks(CHUNK) {
            let found = games::Entity::find()
                .filter(games::Column::NormTitle.is_in(chunk.iter().cloned()))
                .all(db)
                .await?;
            found.into_iter().for_each(|g| catalog.add_game(g));
        }
        for ids in catalog.by_norm.values_mut() {
            ids.sort_unstable();
        }
        Ok(catalog)
    }

    fn add_game(&mut self, game: games::Model) {
        if self.games.contains_key(&game.id) {
            return;
        }
        if let Some(key) = &game.ext_key {
            self.by_ext.insert(key.clone(), game.id);
        }
        self.by_norm
            .entry(game.norm_title.clone())
            .or_default()
            .push(game.id);
        self.games.insert(game.id, game);
    }

    fn touch_game(&mut self, id: i64) {
        if !self.dirty_games.contains(&id) {
            self.dirty_games.push(id);
        }
    }

    /// The game an offer belongs to, made if the catalog has none: a new
    /// game has a provisional id until `insert_new_games`.
    fn game_for(
        &mut self,
        crawl_id: i64,
        item: &Item,
        now: DateTime<Utc>,
        stats: &mut MergeStats,
    ) -> i64 {
        let ext_key = external_key(item);
        if let Some(&id) = ext_key.as_ref().and_then(|k| self.by_ext.get(k)) {
            return id;
        }
        let norm = normalize_title(&item.title);
        // Without an external id (or with one the catalog has not seen), the
        // normalized title decides, but never across two different external ids.
        let by_title = self.by_norm.get(&norm).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|id| self.games[id].ext_key.is_none() || ext_key.is_none())
        });
        if let Some(id) = by_title {
            if let Some(key) = ext_key {
                let game = self.games.get_mut(&id).expect("indexed game");
                if game.ext_key.is_none() {
                    game.ext_key = Some(key.clone());
                    self.by_ext.insert(key, id);
                }
            }
            return id;
        }
        // Later offers in the batch find the new game by its provisional id,
        // and `insert_new_games` writes every new game of the batch in a few
        // statements. A first crawl is all new games: inserted one by one,
        // as they once were, 12,000 pages were 12,000 round trips.
        let id = -1 - i64::try_from(self.new_games.len()).unwrap_or(i64::MAX - 1);
        self.new_games.push(id);
        self.add_game(games::Model {
            id,
            title: item.title.clone(),
            norm_title: norm,
            ext_key,
            best_cents: None,
            regular_cents: None,
            currency: None,
            discount_pct: 0,
            low_cents: None,
            store_count: 0,
            created_at: now,
            updated_at: now,
        });
        stats.new_games += 1;
        self.record(
            crawl_id,
            id,
            &item.store,
            ChangeKind::NewGame,
            None,
            item.price_cents,
            now,
        );
        id
    }

    /// Inserts the batch's new games and gives each its id in place of its
    /// provisional one, here and in the changes recorded for it. Returns
    /// the ids, by provisional id.
    async fn insert_new_games(
        &mut self,
        db: &impl ConnectionTrait,
    ) -> Result<HashMap<i64, i64>, DbErr> {
        let mut ids = HashMap::with_capacity(self.new_games.len());
        for chunk in std::mem::take(&mut self.new_games).chunks(CHUNK) {
            // A statement of its own: sea-orm asks SQLite for no RETURNING,
            // which every SQLite it builds with (3.35 and later) has.
            let mut rows = Vec::with_capacity(chunk.len());
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
            for id in chunk {
                let game = &self.games[id];
                rows.push(format!("({}, 0, 0)", placeholders(values.len() + 1, 5)));
                values.extend([
                    game.title.clone().into(),
                    game.norm_title.clone().into(),
                    game.ext_key.clone().into(),
                    game.created_at.into(),
                    game.updated_at.into(),
                ]);
            }
            let sql = format!(
                "INSERT INTO games (title, norm_title, ext_key, created_at, updated_at, \
                   discount_pct, store_count) VALUES {} RETURNING id, norm_title, ext_key",
                rows.join(", ")
            );
            let backend = db.get_database_backend();
            let inserted = db.query_all(stmt(backend, &sql, values)).await?;
            // Matched by identity rather than trusting the order of the rows
            // returned: within a batch no two new games share both their
            // normalized title and their external id.
            let mut provisional: HashMap<(String, Option<String>), i64> = chunk
                .iter()
                .map(|id| {
                    let game = &self.games[id];
                    ((game.norm_title.clone(), game.ext_key.clone()), *id)
                })
                .collect();
            for row in inserted {
                let key = (row.try_get("", "norm_title")?, row.try_get("", "ext_key")?);
                let old = provisional.remove(&key).ok_or_else(|| {
                    DbErr::Custom(format!("inserted a game nobody asked for: {key:?}"))
                })?;
                ids.insert(old, row.try_get("", "id")?);
            }
            if !provisional.is_empty() {
                return Err(DbErr::Custom(format!(
                    "{} new games were not inserted",
                    provisional.len()
                )));
            }
        }
        for (&old, &new) in &ids {
            let mut game = self.games.remove(&old).expect("a new game is loaded");
            game.id = new;
            if let Some(key) = &game.ext_key {
                self.by_ext.insert(key.clone(), new);
            }
            self.games.insert(new, game);
        }
        for id in self.by_norm.values_mut().flatten() {
            if let Some(&new) = ids.get(id) {
                *id = new;
            }
        }
        for change in &mut self.changes {
            if let Some(&new) = change.game_id.try_as_ref().and_then(|id| ids.get(id)) {
                change.game_id = Set(new);
            }
        }
        Ok(ids)
    }

    async fn load_offers(&mut self, db: &impl ConnectionTrait, games: &[i64]) -> Result<(), DbErr> {
        let ids: BTreeSet<i64> = games.iter().copied().collect();
        let ids: Vec<i64> = ids.into_iter().collect();
        for chunk in ids.chunks(CHUNK) {
            let found = offers::Entity::find()
                .filter(offers::Column::GameId.is_in(chunk.iter().copied()))
                .all(db)
                .await?;
            for offer in found {
                self.offers
                    .insert((offer.game_id, offer.store.clone()), offer);
            }
        }
        Ok(())
    }

    /// Applies one offer to its game: the offer itself, the price history,
    /// the changes, and the game's denormalized prices.
    fn apply(
        &mut self,
        crawl_id: i64,
        game_id: i64,
        item: &Item,
        now: DateTime<Utc>,
        stats: &mut MergeStats,
    ) {
        let key = (game_id, item.store.clone());
        let price_changed = match self.offers.get(&key) {
            None => true,
            Some(offer) => {
                let changed =
                    offer.price_cents != item.price_cents || offer.currency != item.currency;
                let (old_price, was_available, same_currency) = (
                    offer.price_cents,
                    offer.available,
                    offer.currency == item.currency,
                );
                if changed && item.price_cents < old_price && same_currency {
                    self.record(
                        crawl_id,
                        game_id,
                        &item.store,
                        ChangeKind::PriceDrop,
                        Some(old_price),
                        item.price_cents,
                        now,
                    );
                }
                if !was_available && item.available {
                    self.record(
                        crawl_id,
                        game_id,
                        &item.store,
                        ChangeKind::BackInStock,
                        None,
                        item.price_cents,
                        now,
                    );
                }
                changed
            }
        };
        let offer = self
            .offers
            .entry(key.clone())
            .or_insert_with(|| offers::Model {
                id: 0,
                game_id,
                store: item.store.clone(),
                title: String::new(),
                url: String::new(),
                price_cents: 0,
                regular_cents: None,
                currency: String::new(),
                available: false,
                updated_at: now,
            });
        offer.title = item.title.clone();
        offer.url = item.url.clone();
        offer.price_cents = item.price_cents;
        offer.regular_cents = item.regular_cents;
        offer.currency = item.currency.clone();
        offer.available = item.available;
        offer.updated_at = now;
        if !self.dirty_offers.contains(&key) {
            self.dirty_offers.push(key);
        }
        if price_changed {
            stats.price_changes += 1;
            self.points.push(price_points::ActiveModel {
                game_id: Set(game_id),
                store: Set(item.store.clone()),
                price_cents: Set(item.price_cents),
                currency: Set(item.currency.clone()),
                at: Set(now),
                ..Default::default()
            });
        }
        self.refresh_game(game_id, &item.currency, now);
    }

    /// Recomputes a game's best price, discount and historical low from its
    /// offers as they stand after this item.
    fn refresh_game(&mut self, game_id: i64, item_currency: &str, now: DateTime<Utc>) {
        let game = self.games.get(&game_id).expect("loaded game");
        // Prices compare only within one currency: the game's, else the item's.
        let currency = game
            .currency
            .clone()
            .unwrap_or_else(|| item_currency.to_owned());
        let mut store_count = 0;
        let mut best: Option<&offers::Model> = None;
        let of_game = (game_id, String::new())..(game_id + 1, String::new());
        for offer in self.offers.range(of_game).map(|(_, o)| o) {
            store_count += 1;
            if offer.available
                && offer.currency == currency
                && best.is_none_or(|b| offer.price_cents < b.price_cents)
            {
                best = Some(offer);
            }
        }
        let best_cents = best.map(|o| o.price_cents);
        let regular_cents = best.and_then(|o| o.regular_cents);
        let discount = best.map(discount_pct).unwrap_or(0);
        let game = self.games.get_mut(&game_id).expect("loaded game");
        game.low_cents = match (game.low_cents, best_cents) {
            (Some(low), Some(now)) => Some(low.min(now)),
            (low, now) => low.or(now),
        };
        game.best_cents = best_cents;
        game.regular_cents = regular_cents;
        game.discount_pct = discount;
        game.currency = Some(currency);
        game.store_count = store_count;
        game.updated_at = now;
        self.touch_game(game_id);
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        crawl_id: i64,
        game_id: i64,
        store: &str,
        kind: ChangeKind,
        old_cents: Option<i64>,
        new_cents: i64,
        now: DateTime<Utc>,
    ) {
        self.changes.push(changes::ActiveModel {
            crawl_id: Set(crawl_id),
            game_id: Set(game_id),
            store: Set(Some(store.to_owned())),
            kind: Set(kind),
            old_cents: Set(old_cents),
            new_cents: Set(Some(new_cents)),
            at: Set(now),
            ..Default::default()
        });
    }

    /// Writes what the batch changed, a few statements per table.
    async fn write(mut self, db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<(), DbErr> {
        // In key order, as every node writes them: two nodes merging offers
        // of the same games take the rows' locks in one order, and never
        // deadlock.
        self.dirty_offers.sort_unstable();
        self.dirty_games.sort_unstable();
        let offers: Vec<offers::ActiveModel> = self
            .dirty_offers
            .iter()
            .map(|key| {
                let o = &self.offers[key];
                offers::ActiveModel {
                    game_id: Set(o.game_id),
                    store: Set(o.store.clone()),
                    title: Set(o.title.clone()),
                    url: Set(o.url.clone()),
                    price_cents: Set(o.price_cents),
                    regular_cents: Set(o.regular_cents),
                    currency: Set(o.currency.clone()),
                    available: Set(o.available),
                    updated_at: Set(now),
                    ..Default::default()
                }
            })
            .collect();
        for chunk in offers.chunks(CHUNK) {
            offers::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([offers::Column::GameId, offers::Column::Store])
                        .update_columns([
                            offers::Column::Title,
                            offers::Column::Url,
                            offers::Column::PriceCents,
                            offers::Column::RegularCents,
                            offers::Column::Currency,
                            offers::Column::Available,
                            offers::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
        }
        // Every column is given so the row is valid as an insert; the id
        // always exists, so each one is an update.
        let games: Vec<games::ActiveModel> = self
            .dirty_games
            .iter()
            .map(|id| self.games[id].clone().into_active_model().reset_all())
            .collect();
        for chunk in games.chunks(CHUNK) {
            games::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::column(games::Column::Id)
                        .update_columns([
                            games::Column::ExtKey,
                            games::Column::BestCents,
                            games::Column::RegularCents,
                            games::Column::Currency,
                            games::Column::DiscountPct,
                            games::Column::LowCents,
                            games::Column::StoreCount,
                            games::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
        }
        for chunk in self.points.chunks(CHUNK) {
            price_points::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(db)
                .await?;
        }
        for chunk in self.changes.chunks(CHUNK) {
            changes::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(db)
                .await?;
        }
        Ok(())
    }
}

/// The offer's discount off its regular price, in whole percent.
pub fn discount_pct(offer: &offers::Model) -> i32 {
    match offer.regular_cents {
        Some(regular) if regular > offer.price_cents && regular > 0 => {
            i32::try_from((regular - offer.price_cents) * 100 / regular).unwrap_or(0)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn item(steam: Option<&str>) -> Item {
        Item {
            title: "Portal 2".into(),
            store: "PixelBay".into(),
            url: "http://x/p".into(),
            price_cents: 799,
            regular_cents: Some(999),
            currency: "EUR".into(),
            available: true,
            external_ids: steam
                .map(|s| BTreeMap::from([("steam".to_owned(), s.to_owned())]))
                .unwrap_or_default(),
        }
    }

    #[actix_web::test]
    async fn new_games_of_a_batch_are_inserted_together_and_found_by_later_offers() {
        let (_dir, db, crawl) = crate::crawl::store::running_crawl_db().await;
        let now = Utc::now();
        let at = |store: &str, title: &str, steam: Option<&str>, cents| Item {
            store: store.into(),
            title: title.into(),
            price_cents: cents,
            ..item(steam)
        };
        // Portal 2 from two stores (one knows its Steam id, one does not),
        // Celeste from one: two new games, the second offer of Portal 2
        // finding the game the first one made.
        let offers = [
            at("PixelBay", "Portal 2", Some("620"), 799),
            at("GameVault", "Celeste", None, 1999),
            at("RetroShelf", "PORTAL 2™", None, 699),
        ];
        let items: Vec<(i64, &Item)> = offers.iter().map(|o| (crawl, o)).collect();
        let mut stats = MergeStats::default();
        merge_items(&db, &items, now, &mut stats)
            .await
            .expect("merge");
        assert_eq!(stats.new_games, 2);

        let games = games::Entity::find().all(&db).await.expect("games");
        let id_of = |title: &str| {
            games
                .iter()
                .find(|g| g.title == title)
                .unwrap_or_else(|| panic!("{title} missing from {games:?}"))
                .id
        };
        let (portal, celeste) = (id_of("Portal 2"), id_of("Celeste"));
        assert_eq!(games.len(), 2, "{games:?}");
        let portal_row = games.iter().find(|g| g.id == portal).expect("portal");
        assert_eq!(portal_row.ext_key.as_deref(), Some("steam:620"));
        assert_eq!(portal_row.best_cents, Some(699));
        assert_eq!(portal_row.store_count, 2);
        let mut stores: Vec<(String, i64)> = offers::Entity::find()
            .all(&db)
            .await
            .expect("offers")
            .into_iter()
            .map(|o| (o.store, o.game_id))
            .collect();
        stores.sort();
        assert_eq!(
            stores,
            vec![
                ("GameVault".to_owned(), celeste),
                ("PixelBay".to_owned(), portal),
                ("RetroShelf".to_owned(), portal),
            ]
        );
        let mut new_games: Vec<i64> = changes::Entity::find()
            .filter(changes::Column::Kind.eq(ChangeKind::NewGame))
            .all(&db)
            .await
            .expect("changes")
            .into_iter()
            .map(|c| c.game_id)
            .collect();
        new_games.sort_unstable();
        let mut expected = vec![portal, celeste];
        expected.sort_unstable();
        assert_eq!(new_games, expected);
    }

    #[test]
    fn a_steam_id_is_the_external_identity() {
        assert_eq!(
            external_key(&item(Some("620"))).as_deref(),
            Some("steam:620")
        );
        assert_eq!(external_key(&item(None)), None);
        assert_eq!(external_key(&item(Some("62 0; drop"))), None);
    }

    #[test]
    fn discount_is_whole_percent_off_the_regular_price() {
        let offer = offers::Model {
            id: 1,
            game_id: 1,
            store: "s".into(),
            title: "t".into(),
            url: "u".into(),
            price_cents: 799,
            regular_cents: Some(999),
            currency: "EUR".into(),
            available: true,
            updated_at: Utc::now(),
        };
        assert_eq!(discount_pct(&offer), 20);
        assert_eq!(
            discount_pct(&offers::Model {
                regular_cents: None,
                ..offer.clone()
            }),
            0
        );
        assert_eq!(
            discount_pct(&offers::Model {
                regular_cents: Some(500),
                ..offer
            }),
            0
        );
    }
}
