//! The outbox as admins see it: mails by status, and retrying failed ones.

use chrono::{DateTime, Utc};
use entity::outbox;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{offset, Page, PER_PAGE};
use crate::db::stmt;
use crate::mail::MailStatus;

const STATUSES: [MailStatus; 5] = [
    MailStatus::Pending,
    MailStatus::Sending,
    MailStatus::Sent,
    MailStatus::Failed,
    MailStatus::Cancelled,
];

/// The status `/admin/mail?status=` names, or why it is not one.
pub fn parse_status(text: &str) -> Result<Option<MailStatus>, String> {
    super::one_of("status", text, &STATUSES, MailStatus::as_str)
}

/// Newest first, optionally of one status.
pub async fn list(
    db: &impl ConnectionTrait,
    status: Option<MailStatus>,
    page: u64,
) -> Result<Page<outbox::Model>, DbErr> {
    let page = page.max(1);
    let mut query = outbox::Entity::find();
    if let Some(status) = status {
        query = query.filter(outbox::Column::Status.eq(status));
    }
    let total = query.clone().count(db).await?;
    let items = query
        .order_by_desc(outbox::Column::Id)
        .offset(offset(page))
        .limit(PER_PAGE)
        .all(db)
        .await?;
    Ok(Page::new(items, page, total))
}

/// Mails per status.
pub async fn counts(db: &impl ConnectionTrait) -> Result<Vec<(String, u64)>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all(stmt(
            backend,
            "SELECT status, COUNT(*) AS n FROM outbox GROUP BY status",
            vec![],
        ))
        .await?;
    let mut counts: Vec<(String, u64)> = STATUSES
        .into_iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for row in rows {
        let status: String = row.try_get("", "status")?;
        let n: i64 = row.try_get("", "n")?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
            slot.1 = u64::try_from(n).unwrap_or(0);
        }
    }
    Ok(counts)
}

/// A failed mail, due again now with a fresh count of attempts. False if it
/// was not failed.
pub async fn retry(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let res = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, MailStatus::Pending.into())
        .col_expr(outbox::Column::Attempts, 0.into())
        .col_expr(outbox::Column::NextAttemptAt, now.into())
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::Status.eq(MailStatus::Failed))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}
