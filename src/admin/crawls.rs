//! The crawl history as admins see it: crawls newest first, each with its
//! tasks counted by state.

use std::collections::BTreeMap;

use entity::{crawls, tasks};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{offset, Page, PER_PAGE};
use crate::crawl::lease::TaskState;
use crate::crawl::store::CrawlReport;

/// One page of crawls, newest first, with their task counts.
pub async fn list(db: &impl ConnectionTrait, page: u64) -> Result<Page<CrawlReport>, DbErr> {
    let page = page.max(1);
    let total = crawls::Entity::find().count(db).await?;
    let rows = crawls::Entity::find()
        .order_by_desc(crawls::Column::Id)
        .offset(offset(page))
        .limit(PER_PAGE)
        .all(db)
        .await?;
    // One query for the whole page rather than one per crawl.
    let counts: Vec<(i64, String, i64)> = tasks::Entity::find()
        .select_only()
        .column(tasks::Column::CrawlId)
        .column(tasks::Column::State)
        .column_as(tasks::Column::Id.count(), "n")
        .filter(tasks::Column::CrawlId.is_in(rows.iter().map(|c| c.id)))
        .group_by(tasks::Column::CrawlId)
        .group_by(tasks::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    let items = rows
        .into_iter()
        .map(|crawl| {
            let mut tasks: BTreeMap<String, u64> = TaskState::ALL
                .into_iter()
                .map(|s| (s.as_str().to_owned(), 0))
                .collect();
            for (_, state, n) in counts.iter().filter(|(id, _, _)| *id == crawl.id) {
                tasks.insert(state.clone(), u64::try_from(*n).unwrap_or(0));
            }
            CrawlReport { crawl, tasks }
        })
        .collect();
    Ok(Page::new(items, page, total))
}
