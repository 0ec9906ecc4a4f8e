//! An auction lot: the rules fixed when it was listed, the state bids change,
//! and, once it has ended, its outcome. `version` is bumped by every change
//! and written with a compare-and-set, so concurrent writers never lose one.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "lots")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub title: String,
    pub description: String,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    pub starting_cents: i64,
    /// Hidden from bidders: below it the lot is not sold.
    pub reserve_cents: Option<i64>,
    /// JSON list of increment tiers (`auction::Increments`).
    pub increments: String,
    pub starts_at: DateTimeUtc,
    /// The current end: the listed end, moved later by soft close.
    pub ends_at: DateTimeUtc,
    /// The end as listed, before any extension.
    pub listed_ends_at: DateTimeUtc,
    /// Soft close never moves `ends_at` past this.
    pub hard_end: DateTimeUtc,
    pub soft_close_secs: i64,
    pub status: LotStatus,
    /// The visible price; the starting price before the first bid.
    pub current_cents: i64,
    pub leader_id: Option<i64>,
    /// Hidden from everyone but the leader.
    pub leader_max_cents: Option<i64>,
    pub leader_max_placed_at: Option<DateTimeUtc>,
    /// Rows in `bids` for this lot.
    pub bid_count: i64,
    /// The compare-and-set counter, and the `seq` of the lot's events.
    pub version: i64,
    pub winner_id: Option<i64>,
    pub final_cents: Option<i64>,
    /// Once ended: `sold`, `reserve_not_met`, `no_bids` or `cancelled`.
    pub outcome: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

string_enum! {
    /// Where a lot is in its life. Only a running lot takes bids. The name
    /// is also the one sent on the wire.
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum LotStatus {
        Scheduled = "scheduled",
        Running = "running",
        Finished = "finished",
        /// Withdrawn by an admin before it ended: it takes no bids and
        /// neither opens nor closes, because `place_bid`, `open` and `close`
        /// each act on one other status only.
        Cancelled = "cancelled",
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::bids::Entity")]
    Bids,
}

impl Related<super::bids::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Bids.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
