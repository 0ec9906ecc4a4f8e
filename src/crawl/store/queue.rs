//! The queue's contents: adding tasks to a crawl, and which hosts have tasks
//! ready to lease or in flight, for the Dispatcher's planning.

use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use url::Url;

use crate::crawl::lease::TaskState;
use crate::crawl::sites::host_key;
use crate::db::stmt;
use crate::protocol::worker::TaskKind;

/// A task to add to a crawl.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: TaskKind,
    pub site: String,
    pub url: Url,
}

/// Adds tasks to a crawl; a URL already in the crawl is skipped. Returns how
/// many were new.
#[tracing::instrument(level = "debug", skip_all, fields(crawl = crawl_id, tasks = new.len()))]
pub async fn insert_tasks(
    db: &impl ConnectionTrait,
    crawl_id: i64,
    new: &[NewTask],
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let models: Vec<tasks::ActiveModel> = new
        .iter()
        .filter_map(|t| {
            Some(tasks::ActiveModel {
                crawl_id: Set(crawl_id),
                kind: Set(t.kind),
                site: Set(t.site.clone()),
                url: Set(t.url.to_string()),
                host: Set(host_key(&t.url)?),
                state: Set(TaskState::Queued),
                attempts: Set(0),
                not_before: Set(now),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            })
        })
        .collect();
    if models.is_empty() {
        return Ok(0);
    }
    let mut added = 0;
    // Chunks keep each statement under SQLite's bound-parameter limit.
    for chunk in models.chunks(200) {
        let res = tasks::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([tasks::Column::CrawlId, tasks::Column::Url])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
        added += res;
    }
    Ok(added)
}

/// Hosts that have tasks ready to lease now; none while an admin has paused
/// the queue (the flag is in the database, so it holds on every node).
pub async fn ready_hosts(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all(stmt(
            backend,
            // A loose index scan over `tasks_lease_order`: one probe per host
            // instead of reading every queued task on every dispatch pass.
            // Each probe is an ORDER BY with a LIMIT, not MIN(): with the
            // table's statistics taken while it was nearly empty, PostgreSQL
            // planned MIN() as an aggregate over every queued task of the
            // first host, 1.5 ms a pass on a three-node crawl. The ready
            // task is a scalar subquery with a LIMIT, not EXISTS: PostgreSQL
            // turned EXISTS into a semi-join that read every queued task of
            // every host.
            "WITH RECURSIVE hosts(host) AS ( \
               SELECT (SELECT host FROM tasks WHERE state = $2 ORDER BY host LIMIT 1) \
               UNION ALL \
               SELECT (SELECT t.host FROM tasks t WHERE t.state = $2 AND t.host > hosts.host \
                       ORDER BY t.host LIMIT 1) \
               FROM hosts WHERE hosts.host IS NOT NULL) \
             SELECT host FROM hosts WHERE host IS NOT NULL AND ( \
               SELECT 1 FROM tasks t WHERE t.state = $2 AND t.host = hosts.host \
               AND t.not_before <= $1 LIMIT 1) IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM flags WHERE name = 'queue_paused')",
            vec![now.into(), TaskState::Queued.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "host")).collect()
}
