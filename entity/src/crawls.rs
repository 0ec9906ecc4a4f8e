//! A crawl of every configured site: `running` until its last task is final.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "crawls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub status: CrawlStatus,
    /// What started it: `schedule`, `visitor`, `api` or `admin`.
    pub trigger: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// When the Notifier queued this crawl's digest (or found it owed none).
    #[serde(skip)]
    pub digested_at: Option<DateTimeUtc>,
    /// `done` tasks retention removed; the crawl's counts add them back.
    #[serde(skip)]
    pub pruned_done: i64,
    /// `cancelled` tasks retention removed.
    #[serde(skip)]
    pub pruned_cancelled: i64,
}

string_enum! {
    /// A crawl runs until its last task is final; one runs at a time.
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum CrawlStatus {
        Running = "running",
        Finished = "finished",
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::tasks::Entity")]
    Tasks,
}

impl Related<super::tasks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tasks.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
