//! What a crawl changed in the catalog: the material of the digest mails.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub crawl_id: i64,
    pub game_id: i64,
    pub store: Option<String>,
    pub kind: ChangeKind,
    pub old_cents: Option<i64>,
    pub new_cents: Option<i64>,
    pub at: DateTimeUtc,
}

string_enum! {
    /// A kind of change recorded for the digest.
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum ChangeKind {
        NewGame = "new_game",
        PriceDrop = "price_drop",
        BackInStock = "back_in_stock",
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::games::Entity",
        from = "Column::GameId",
        to = "super::games::Column::Id"
    )]
    Game,
}

impl Related<super::games::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Game.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
