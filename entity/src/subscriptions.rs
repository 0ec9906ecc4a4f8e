//! A mail subscription: the crawl digest (`topic = "digest"`) or a price
//! alert on one game (`topic = "game:{id}"`, with a target price). Each is
//! `pending` until its confirmation link is followed, then `confirmed`,
//! until `unsubscribed`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub email: String,
    pub topic: String,
    pub game_id: Option<i64>,
    /// An alert fires when the game's best price is at or below this.
    pub target_cents: Option<i64>,
    /// A new target asked for on a confirmed alert, applied when its
    /// confirmation link is followed.
    pub pending_target_cents: Option<i64>,
    pub status: SubscriptionStatus,
    /// The keyed hash of the latest confirmation token; the token itself is
    /// only in the mail.
    pub token_hash: Option<String>,
    pub token_expires_at: Option<DateTimeUtc>,
    pub confirm_sent_at: Option<DateTimeUtc>,
    /// Confirmation mails queued so far; part of each one's outbox key.
    pub confirms_sent: i32,
    /// An alert is armed until it fires, and armed again once the price is
    /// back above the target.
    pub armed: bool,
    /// Times the alert fired; part of each alert mail's outbox key.
    pub fired: i32,
    pub created_at: DateTimeUtc,
    pub confirmed_at: Option<DateTimeUtc>,
    pub unsubscribed_at: Option<DateTimeUtc>,
}

string_enum! {
    /// Where a subscription stands: only a confirmed one gets mail.
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum SubscriptionStatus {
        /// Its confirmation link has not been followed yet.
        Pending = "pending",
        Confirmed = "confirmed",
        Unsubscribed = "unsubscribed",
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
