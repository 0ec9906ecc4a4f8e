//! The audit log: every admin action, who did it, when, to what, from where.

use chrono::{DateTime, Utc};
use entity::audit_log;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryOrder, QuerySelect,
};

use super::{offset, Page, PER_PAGE};
use crate::db::truncate;

/// Who acts: an admin account, or the API token.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub name: String,
    pub address: Option<String>,
}

/// What was done, to which object.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub action: &'a str,
    pub object_kind: &'a str,
    pub object_id: Option<String>,
    pub detail: Option<String>,
}

pub async fn record(
    db: &impl ConnectionTrait,
    actor: &Actor,
    entry: Entry<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    audit_log::ActiveModel {
        at: Set(now),
        user_id: Set(actor.user_id),
        user_name: Set(truncate(&actor.name, 64)),
        action: Set(entry.action.to_owned()),
        object_kind: Set(entry.object_kind.to_owned()),
        object_id: Set(entry.object_id),
        detail: Set(entry.detail.map(|d| truncate(&d, 2000))),
        address: Set(actor.address.as_deref().map(|a| truncate(a, 64))),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Newest first.
pub async fn list(db: &impl ConnectionTrait, page: u64) -> Result<Page<audit_log::Model>, DbErr> {
    let page = page.max(1);
    let total = audit_log::Entity::find().count(db).await?;
    let items = audit_log::Entity::find()
        .order_by_desc(audit_log::Column::Id)
        .offset(offset(page))
        .limit(PER_PAGE)
        .all(db)
        .await?;
    Ok(Page::new(items, page, total))
}
