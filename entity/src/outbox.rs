//! A mail in the outbox: queued once by its key, then leased, sent and
//! marked by the Mailer (`pending` → `sending` → `sent` or `failed`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Kind, subject and recipient, e.g. `digest:crawl-12:ana@example.com`.
    #[sea_orm(unique)]
    pub key: String,
    pub kind: MailKind,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    /// Extra headers as a JSON object of name → value (`List-Id`, ...).
    pub headers: Json,
    pub status: MailStatus,
    /// Sends tried so far, counting the one under way.
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// While `sending`: when the lease runs out and the mail is due again.
    pub leased_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

string_enum! {
    /// What a mail is.
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
    pub enum MailKind {
        /// Asks to follow a subscription's confirmation link.
        Confirm = "confirm",
        /// What a crawl changed.
        Digest = "digest",
        /// A game's price reached a subscriber's target.
        Alert = "alert",
    }
}

string_enum! {
    /// Where a mail stands.
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum MailStatus {
        Pending = "pending",
        Sending = "sending",
        Sent = "sent",
        Failed = "failed",
        /// Never to be sent: its subscriber unsubscribed before it went out.
        Cancelled = "cancelled",
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
