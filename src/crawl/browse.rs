//! Reading the catalog for the pages and the API: search, sort, pages, and
//! one game with its offers and price history.

use entity::{games, offers, price_points};
use sea_orm::sea_query::{NullOrdering, Order};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};

use crate::domain::title::normalize_title;

/// Games per page.
pub const PAGE_SIZE: u64 = 24;

/// How the games list is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    #[default]
    Name,
    Price,
    Discount,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        match s {
            "name" | "" => Some(Sort::Name),
            "price" => Some(Sort::Price),
            "discount" => Some(Sort::Discount),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Price => "price",
            Sort::Discount => "discount",
        }
    }
}

/// One page of the games list.
#[derive(Debug, Clone, Serialize)]
pub struct GamePage {
    pub games: Vec<games::Model>,
    pub page: u64,
    pub pages: u64,
    pub total: u64,
}

/// Searches (by normalized title), sorts and pages the catalog. `page` is 1-based.
pub async fn list_games(
    db: &impl ConnectionTrait,
    query: &str,
    sort: Sort,
    page: u64,
) -> Result<GamePage, DbErr> {
    let mut select = games::Entity::find();
    // LIKE wildcards in the query are data, not patterns.
    let needle: String = normalize_title(query)
        .chars()
        .filter(|c| !matches!(c, '%' | '_' | '\\'))
        .collect();
    if !needle.is_empty() {
        select = select.filter(games::Column::NormTitle.contains(&needle));
    }
    select = match sort {
        Sort::Name => select.order_by_asc(games::Column::NormTitle),
        Sort::Price => {
            select.order_by_with_nulls(games::Column::BestCents, Order::Asc, NullOrdering::Last)
        }
        Sort::Discount => select
            .order_by_desc(games::Column::DiscountPct)
            .order_by_with_nulls(games::Column::BestCents, Order::Asc, NullOrdering::Last),
    };
    let select = select.order_by_asc(games::Column::Id);
    let paginator = select.paginate(db, PAGE_SIZE);
    let total = paginator.num_items().await?;
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let games = paginator.fetch_page(page - 1).await?;
    Ok(GamePage {
        games,
        page,
        pages,
        total,
    })
}

/// A game with its offers (cheapest first) and its price history (oldest first).
#[derive(Debug, Clone, Serialize)]
pub struct GameDetail {
    #[serde(flatten)]
    pub game: games::Model,
    pub offers: Vec<offers::Model>,
    pub history: Vec<price_points::Model>,
}

pub async fn game_detail(db: &impl ConnectionTrait, id: i64) -> Result<Option<GameDetail>, DbErr> {
    let Some(game) = games::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let offers = offers::Entity::find()
        .filter(offers::Column::GameId.eq(id))
        .order_by_desc(offers::Column::Available)
        .order_by_asc(offers::Column::PriceCents)
        .all(db)
        .await?;
    let history = price_points::Entity::find()
        .filter(price_points::Column::GameId.eq(id))
        .order_by_asc(price_points::Column::At)
        .order_by_asc(price_points::Column::Id)
        .all(db)
        .await?;
    Ok(Some(GameDetail {
        game,
        offers,
        history,
    }))
}
