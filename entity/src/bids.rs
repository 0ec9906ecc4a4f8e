//! A move of a lot's visible price: typed by a bidder, or placed by the
//! system on a bidder's maximum (`proxy`). The rows one bid writes share
//! `seq`, the lot's `version` after that bid, and are ordered by `ord`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bids")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub lot_id: i64,
    pub seq: i64,
    /// Position within the rows of one `seq`, from 0.
    pub ord: i16,
    /// Whose bid this row is.
    pub user_id: i64,
    pub amount_cents: i64,
    /// The maximum the bidder set with this bid, on their own rows; none on
    /// rows the system placed for someone else.
    pub max_cents: Option<i64>,
    /// Placed by the system on the bidder's maximum, not typed by them.
    pub proxy: bool,
    pub placed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::lots::Entity",
        from = "Column::LotId",
        to = "super::lots::Column::Id",
        on_delete = "Cascade"
    )]
    Lot,
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id"
    )]
    Bidder,
}

impl Related<super::lots::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Lot.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Bidder.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
