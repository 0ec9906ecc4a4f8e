//! One page to fetch within a crawl, and where it is in its lifecycle.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub crawl_id: i64,
    /// `listing` or `page`.
    pub kind: String,
    pub site: String,
    pub url: String,
    /// `host[:port]` of the URL, the unit of politeness.
    pub host: String,
    /// `queued`, `leased`, `done`, `dead` or `cancelled`.
    pub state: String,
    pub attempts: i32,
    pub not_before: DateTimeUtc,
    pub lease_token: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub worker: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
