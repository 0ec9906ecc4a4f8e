//! Merging store offers into the game catalog: identity, offers, price history
//! and the changes a crawl caused (DESIGN §2).

use chrono::{DateTime, Utc};
use entity::{changes, games, offers, price_points};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter,
};

use crate::domain::title::normalize_title;
use crate::protocol::worker::Item;

/// A kind of change recorded for the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    NewGame,
    PriceDrop,
    BackInStock,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::NewGame => "new_game",
            ChangeKind::PriceDrop => "price_drop",
            ChangeKind::BackInStock => "back_in_stock",
        }
    }
}

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

/// Merges one store offer into the catalog.
pub async fn merge_item(
    db: &impl ConnectionTrait,
    crawl_id: i64,
    item: &Item,
    now: DateTime<Utc>,
    stats: &mut MergeStats,
) -> Result<(), DbErr> {
    let game = find_or_create_game(db, crawl_id, item, now, stats).await?;
    let existing = offers::Entity::find()
        .filter(offers::Column::GameId.eq(game.id))
        .filter(offers::Column::Store.eq(&item.store))
        .one(db)
        .await?;
    let price_changed = match existing {
        None => {
            offers::ActiveModel {
                game_id: Set(game.id),
                store: Set(item.store.clone()),
                title: Set(item.title.clone()),
                url: Set(item.url.clone()),
                price_cents: Set(item.price_cents),
                regular_cents: Set(item.regular_cents),
                currency: Set(item.currency.clone()),
                available: Set(item.available),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await?;
            true
        }
        Some(offer) => {
            let changed = offer.price_cents != item.price_cents || offer.currency != item.currency;
            if changed && item.price_cents < offer.price_cents && offer.currency == item.currency {
                record(
                    db,
                    crawl_id,
                    game.id,
                    Some(&item.store),
                    ChangeKind::PriceDrop,
                    Some(offer.price_cents),
                    Some(item.price_cents),
                    now,
                )
                .await?;
            }
            if !offer.available && item.available {
                record(
                    db,
                    crawl_id,
                    game.id,
                    Some(&item.store),
                    ChangeKind::BackInStock,
                    None,
                    Some(item.price_cents),
                    now,
                )
                .await?;
            }
            let mut active = offer.into_active_model();
            active.title = Set(item.title.clone());
            active.url = Set(item.url.clone());
            active.price_cents = Set(item.price_cents);
            active.regular_cents = Set(item.regular_cents);
            active.currency = Set(item.currency.clone());
            active.available = Set(item.available);
            active.updated_at = Set(now);
            active.update(db).await?;
            changed
        }
    };
    if price_changed {
        stats.price_changes += 1;
        price_points::ActiveModel {
            game_id: Set(game.id),
            store: Set(item.store.clone()),
            price_cents: Set(item.price_cents),
            currency: Set(item.currency.clone()),
            at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    refresh_game(db, game, item, now).await
}

async fn find_or_create_game(
    db: &impl ConnectionTrait,
    crawl_id: i64,
    item: &Item,
    now: DateTime<Utc>,
    stats: &mut MergeStats,
) -> Result<games::Model, DbErr> {
    let ext_key = external_key(item);
    let norm = normalize_title(&item.title);
    if let Some(key) = &ext_key {
        if let Some(game) = games::Entity::find()
            .filter(games::Column::ExtKey.eq(key))
            .one(db)
            .await?
        {
            return Ok(game);
        }
    }
    // Without an external id (or with one the catalog has not seen), the
    // normalized title decides, but never across two different external ids.
    let by_title = games::Entity::find()
        .filter(games::Column::NormTitle.eq(&norm))
        .all(db)
        .await?
        .into_iter()
        .find(|g| g.ext_key.is_none() || ext_key.is_none());
    if let Some(game) = by_title {
        if game.ext_key.is_none() && ext_key.is_some() {
            let mut active = game.into_active_model();
            active.ext_key = Set(ext_key);
            return active.update(db).await;
        }
        return Ok(game);
    }
    let game = games::ActiveModel {
        title: Set(item.title.clone()),
        norm_title: Set(norm),
        ext_key: Set(ext_key),
        discount_pct: Set(0),
        store_count: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    stats.new_games += 1;
    record(
        db,
        crawl_id,
        game.id,
        Some(&item.store),
        ChangeKind::NewGame,
        None,
        Some(item.price_cents),
        now,
    )
    .await?;
    Ok(game)
}

/// Recomputes a game's denormalized best price, discount and historical low.
async fn refresh_game(
    db: &impl ConnectionTrait,
    game: games::Model,
    item: &Item,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let all = offers::Entity::find()
        .filter(offers::Column::GameId.eq(game.id))
        .all(db)
        .await?;
    // Prices compare only within one currency: the game's, else the item's.
    let currency = game
        .currency
        .clone()
        .unwrap_or_else(|| item.currency.clone());
    let best = all
        .iter()
        .filter(|o| o.available && o.currency == currency)
        .min_by_key(|o| o.price_cents);
    let low = match (game.low_cents, best.map(|o| o.price_cents)) {
        (Some(low), Some(now)) => Some(low.min(now)),
        (low, now) => low.or(now),
    };
    let store_count = i32::try_from(all.len()).unwrap_or(i32::MAX);
    let mut active = game.into_active_model();
    active.best_cents = Set(best.map(|o| o.price_cents));
    active.regular_cents = Set(best.and_then(|o| o.regular_cents));
    active.discount_pct = Set(best.map(discount_pct).unwrap_or(0));
    active.currency = Set(Some(currency));
    active.low_cents = Set(low);
    active.store_count = Set(store_count);
    active.updated_at = Set(now);
    active.update(db).await?;
    Ok(())
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

#[allow(clippy::too_many_arguments)]
async fn record(
    db: &impl ConnectionTrait,
    crawl_id: i64,
    game_id: i64,
    store: Option<&str>,
    kind: ChangeKind,
    old_cents: Option<i64>,
    new_cents: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    changes::ActiveModel {
        crawl_id: Set(crawl_id),
        game_id: Set(game_id),
        store: Set(store.map(str::to_owned)),
        kind: Set(kind.as_str().to_owned()),
        old_cents: Set(old_cents),
        new_cents: Set(new_cents),
        at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
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
