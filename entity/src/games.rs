//! A game in the merged catalog, with its best current price denormalized for
//! sorting and paging.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "games")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub title: String,
    /// The identity key when no external id is known.
    pub norm_title: String,
    /// An external identity such as `steam:620`.
    #[sea_orm(unique)]
    pub ext_key: Option<String>,
    /// The lowest price among available offers.
    pub best_cents: Option<i64>,
    /// The regular price of the best offer.
    pub regular_cents: Option<i64>,
    pub currency: Option<String>,
    pub discount_pct: i32,
    /// The historical low across every store.
    pub low_cents: Option<i64>,
    pub store_count: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::offers::Entity")]
    Offers,
    #[sea_orm(has_many = "super::price_points::Entity")]
    PricePoints,
}

impl Related<super::offers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Offers.def()
    }
}

impl Related<super::price_points::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PricePoints.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
