//! One page to fetch within a crawl, and where it is in its lifecycle.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub crawl_id: i64,
    pub kind: TaskKind,
    pub site: String,
    pub url: String,
    /// `host[:port]` of the URL, the unit of politeness.
    pub host: String,
    pub state: TaskState,
    pub attempts: i32,
    pub not_before: DateTimeUtc,
    pub lease_token: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// When the leased fetch's page reached the node that leased it: no
    /// longer in flight, though leased until merged. Cleared by the next
    /// lease.
    pub fetched_at: Option<DateTimeUtc>,
    pub worker: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// What a task's page is; the wire protocol's name for it is the stored one.
pub use bazaar_protocol::worker::TaskKind;

string_enum! {
    /// Where a task is in its lifecycle.
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum TaskState {
        Queued = "queued",
        Leased = "leased",
        Done = "done",
        Dead = "dead",
        Cancelled = "cancelled",
    }
}

impl TaskState {
    /// A final task needs no more work; a crawl whose tasks are all final is
    /// complete.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Dead | TaskState::Cancelled
        )
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::crawls::Entity",
        from = "Column::CrawlId",
        to = "super::crawls::Column::Id"
    )]
    Crawl,
}

impl Related<super::crawls::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Crawl.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
