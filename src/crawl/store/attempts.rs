//! Attempts: one `task_attempts` row per lease, opened when it is taken and
//! closed with its outcome when it ends, so the admin pages can show each
//! task's history.

use chrono::{DateTime, Utc};
use entity::task_attempts;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::leases::Leased;
use crate::db::truncate;

/// One `task_attempts` row per new lease, for the admin pages.
pub(super) async fn record_attempts(
    db: &impl ConnectionTrait,
    leased: &[Leased],
    worker: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in leased.chunks(500) {
        let rows = chunk.iter().map(|task| task_attempts::ActiveModel {
            task_id: Set(task.id),
            attempt: Set(task.attempts),
            lease_token: Set(task.lease_token.clone()),
            worker: Set(worker.to_owned()),
            started_at: Set(now),
            ..Default::default()
        });
        task_attempts::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(task_attempts::Column::LeaseToken)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Records how the attempts holding `tokens` ended.
pub(crate) async fn end_attempts(
    db: &impl ConnectionTrait,
    tokens: impl IntoIterator<Item = String>,
    outcome: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let tokens: Vec<String> = tokens.into_iter().collect();
    for chunk in tokens.chunks(500) {
        task_attempts::Entity::update_many()
            .col_expr(task_attempts::Column::FinishedAt, Some(now).into())
            .col_expr(task_attempts::Column::Outcome, Some(outcome).into())
            .col_expr(
                task_attempts::Column::Error,
                error.map(|e| truncate(e, 2000)).into(),
            )
            .filter(task_attempts::Column::LeaseToken.is_in(chunk.iter().map(String::as_str)))
            .filter(task_attempts::Column::FinishedAt.is_null())
            .exec(db)
            .await?;
    }
    Ok(())
}
