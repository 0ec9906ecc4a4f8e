//! The task queue as admins see it: filtered, sorted pages of tasks, each
//! task's attempts, and the actions (retry now, cancel, requeue the dead,
//! pause and resume).

use chrono::{DateTime, Utc};
use entity::crawls::CrawlStatus;
use entity::{flags, task_attempts, tasks};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde::Deserialize;

use super::actions::ActionError;
use super::{offset, Page, PER_PAGE};
use crate::crawl::lease::TaskState;
use crate::crawl::store;

/// The flag that stops leasing while it exists.
pub const PAUSED: &str = "queue_paused";
/// The longest URL text filter: a URL, not a novel.
const MAX_QUERY: usize = 200;

/// What `/admin/tasks` is asked to show. Every field is optional; unknown
/// values are refused by `sort()` / `state()` rather than ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TaskFilter {
    #[serde(default)]
    pub state: String,
    pub crawl: Option<i64>,
    #[serde(default)]
    pub site: String,
    /// Text the URL contains.
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sort: String,
    pub page: Option<u64>,
}

/// How the task list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSort {
    /// Most recently changed first (the default: what just happened).
    Updated,
    Id,
    Attempts,
    Url,
}

impl TaskSort {
    pub const ALL: [TaskSort; 4] = [
        TaskSort::Updated,
        TaskSort::Id,
        TaskSort::Attempts,
        TaskSort::Url,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskSort::Updated => "updated",
            TaskSort::Id => "id",
            TaskSort::Attempts => "attempts",
            TaskSort::Url => "url",
        }
    }
}

impl TaskFilter {
    pub fn sort(&self) -> Result<TaskSort, String> {
        super::one_of("sort", &self.sort, &TaskSort::ALL, TaskSort::as_str)
            .map(|sort| sort.unwrap_or(TaskSort::Updated))
    }

    pub fn state(&self) -> Result<Option<TaskState>, String> {
        super::one_of("state", &self.state, &TaskState::ALL, TaskState::as_str)
    }

    /// Checks every field; the error says which one is wrong.
    pub fn check(&self) -> Result<(), String> {
        self.sort()?;
        self.state()?;
        if self.q.chars().count() > MAX_QUERY {
            return Err(format!("the URL text has at most {MAX_QUERY} characters"));
        }
        Ok(())
    }
}

pub async fn list(
    db: &impl ConnectionTrait,
    filter: &TaskFilter,
) -> Result<Page<tasks::Model>, DbErr> {
    let mut cond = Condition::all();
    if let Ok(Some(state)) = filter.state() {
        cond = cond.add(tasks::Column::State.eq(state));
    }
    if let Some(crawl) = filter.crawl {
        cond = cond.add(tasks::Column::CrawlId.eq(crawl));
    }
    if !filter.site.is_empty() {
        cond = cond.add(tasks::Column::Site.eq(filter.site.as_str()));
    }
    if !filter.q.is_empty() {
        // Bound as a parameter, never spliced into the SQL.
        cond = cond.add(tasks::Column::Url.contains(filter.q.as_str()));
    }
    let page = filter.page.unwrap_or(1).max(1);
    let query = tasks::Entity::find().filter(cond);
    let total = query.clone().count(db).await?;
    let query = match filter.sort().unwrap_or(TaskSort::Updated) {
        TaskSort::Updated => query
            .order_by_desc(tasks::Column::UpdatedAt)
            .order_by_desc(tasks::Column::Id),
        TaskSort::Id => query.order_by_asc(tasks::Column::Id),
        TaskSort::Attempts => query
            .order_by_desc(tasks::Column::Attempts)
            .order_by_asc(tasks::Column::Id),
        TaskSort::Url => query
            .order_by_asc(tasks::Column::Url)
            .order_by_asc(tasks::Column::Id),
    };
    let items = query.offset(offset(page)).limit(PER_PAGE).all(db).await?;
    Ok(Page::new(items, page, total))
}

/// A task and its attempts, oldest first.
pub async fn detail(
    db: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<(tasks::Model, Vec<task_attempts::Model>)>, DbErr> {
    let Some(task) = tasks::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let attempts = task_attempts::Entity::find()
        .filter(task_attempts::Column::TaskId.eq(id))
        .order_by_asc(task_attempts::Column::Attempt)
        .order_by_asc(task_attempts::Column::Id)
        .all(db)
        .await?;
    Ok(Some((task, attempts)))
}

/// Tasks per state over the whole queue, as `outbox::counts` gives mail's.
pub async fn counts(db: &impl ConnectionTrait) -> Result<Vec<(String, u64)>, DbErr> {
    store::task_counts(db, None).await
}

/// Makes a queued (backing off) or dead task due now. A dead task's crawl
/// runs again until the task is final, when it can (see `reopen`).
pub async fn retry_now(
    db: &(impl ConnectionTrait + TransactionTrait),
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), ActionError> {
    let txn = crate::db::begin_write(db).await?;
    let task = tasks::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(ActionError::NoSuchTask(id))?;
    let res = tasks::Entity::update_many()
        .col_expr(tasks::Column::State, TaskState::Queued.into())
        .col_expr(tasks::Column::NotBefore, now.into())
        .col_expr(tasks::Column::UpdatedAt, now.into())
        .filter(tasks::Column::Id.eq(id))
        .filter(tasks::Column::State.is_in([TaskState::Queued, TaskState::Dead]))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(ActionError::NotRetriable {
            id,
            state: task.state,
        });
    }
    reopen(&txn, &[task.crawl_id]).await?;
    txn.commit().await?;
    Ok(())
}

/// Cancels a queued or leased task. A worker still fetching it is fenced
/// off: its lease token goes, so its result changes nothing. The task, the
/// attempt its lease named and its crawl change together.
pub async fn cancel(
    db: &(impl ConnectionTrait + TransactionTrait),
    id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), ActionError> {
    let txn = crate::db::begin_write(db).await?;
    let task = tasks::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or(ActionError::NoSuchTask(id))?;
    let res = store::cancelling(reason, now)
        .filter(tasks::Column::Id.eq(id))
        .filter(tasks::Column::State.is_in([TaskState::Queued, TaskState::Leased]))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(ActionError::NotCancellable {
            id,
            state: task.state,
        });
    }
    if let Some(token) = task.lease_token.filter(|_| task.state == TaskState::Leased) {
        store::end_attempts(&txn, [token], "cancelled", Some(reason), now).await?;
    }
    store::complete_if_done(&txn, task.crawl_id, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Every dead task back to the queue, due now. Returns how many.
pub async fn requeue_dead(
    db: &(impl ConnectionTrait + TransactionTrait),
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let txn = crate::db::begin_write(db).await?;
    let crawls: Vec<i64> = tasks::Entity::find()
        .select_only()
        .column(tasks::Column::CrawlId)
        .distinct()
        .filter(tasks::Column::State.eq(TaskState::Dead))
        .into_tuple()
        .all(&txn)
        .await?;
    let res = tasks::Entity::update_many()
        .col_expr(tasks::Column::State, TaskState::Queued.into())
        .col_expr(tasks::Column::NotBefore, now.into())
        .col_expr(tasks::Column::UpdatedAt, now.into())
        .filter(tasks::Column::State.eq(TaskState::Dead))
        .exec(&txn)
        .await?;
    reopen(&txn, &crawls).await?;
    txn.commit().await?;
    Ok(res.rows_affected)
}

/// A crawl given work again runs until that work is final, so its progress
/// and digest include it. Only one crawl runs at a time, and the newest is
/// the one the dashboard follows: so only the newest crawl reopens, and only
/// while no other runs. Otherwise the tasks still run, on their own, and the
/// older crawl's record stays as it ended.
async fn reopen(db: &impl ConnectionTrait, crawl_ids: &[i64]) -> Result<(), DbErr> {
    let Some(&newest) = crawl_ids.iter().max() else {
        return Ok(());
    };
    db.execute(crate::db::stmt(
        db.get_database_backend(),
        "UPDATE crawls SET status = $2, finished_at = NULL \
         WHERE id = $1 AND id = (SELECT MAX(id) FROM crawls) \
         AND NOT EXISTS (SELECT 1 FROM crawls WHERE status = $2 AND id <> $1)",
        vec![newest.into(), CrawlStatus::Running.into()],
    ))
    .await?;
    Ok(())
}

/// Who paused the queue and when, if it is paused.
pub async fn paused(db: &impl ConnectionTrait) -> Result<Option<flags::Model>, DbErr> {
    flags::Entity::find_by_id(PAUSED.to_owned()).one(db).await
}

/// Pauses leasing on every node (tasks already leased run to their end).
pub async fn pause(db: &impl ConnectionTrait, by: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    flags::Entity::insert(flags::ActiveModel {
        name: Set(PAUSED.to_owned()),
        set_by: Set(by.to_owned()),
        set_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(flags::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub async fn resume(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    flags::Entity::delete_by_id(PAUSED.to_owned())
        .exec(db)
        .await?;
    Ok(())
}
