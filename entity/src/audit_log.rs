//! One admin action: who did what to which object, when, and from where.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    pub user_id: Option<i64>,
    pub user_name: String,
    /// `task.retry`, `queue.pause`, `lot.cancel`, ...
    pub action: String,
    /// `task`, `queue`, `worker`, `crawl`, `lot`, `mail`.
    pub object_kind: String,
    pub object_id: Option<String>,
    pub detail: Option<String>,
    pub address: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
