//! What the admin dashboard shows, as one snapshot: the page renders the
//! first one and then receives a fresh one every second (server-sent
//! events), so it stays live without reloading.

use chrono::{DateTime, TimeDelta, Utc};
use entity::crawls::CrawlStatus;
use sea_orm::{ConnectionTrait, DbErr, Value};
use serde::Serialize;

use super::{outbox, tasks};
use crate::crawl::store;
use crate::db::stmt;

/// Minutes of throughput the chart shows.
pub const MINUTES: usize = 15;
/// The chart's size in SVG units.
pub const CHART_WIDTH: u64 = 600;
pub const CHART_HEIGHT: u64 = 120;

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub tasks: Vec<(String, u64)>,
    pub outbox: Vec<(String, u64)>,
    pub crawl: Option<CrawlProgress>,
    /// Attempts finished per minute, oldest first; the last is the minute
    /// under way.
    pub throughput: Vec<u64>,
    pub paused: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrawlProgress {
    pub id: i64,
    pub status: CrawlStatus,
    pub done: u64,
    pub total: u64,
    pub percent: u64,
}

pub async fn snapshot(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Snapshot, DbErr> {
    let crawl = match store::latest_crawl(db).await? {
        Some(latest) => store::crawl_report(db, latest.id).await?.map(|report| {
            let (done, total) = (report.finished_tasks(), report.total());
            CrawlProgress {
                id: report.crawl.id,
                status: report.crawl.status,
                done,
                total,
                percent: (done * 100).checked_div(total).unwrap_or(0),
            }
        }),
        None => None,
    };
    Ok(Snapshot {
        tasks: tasks::counts(db).await?,
        outbox: outbox::counts(db).await?,
        crawl,
        throughput: throughput(db, now).await?,
        paused: tasks::paused(db).await?.map(|f| {
            format!(
                "by {} at {}",
                f.set_by,
                f.set_at.format("%Y-%m-%d %H:%M:%S")
            )
        }),
    })
}

/// Attempts finished in each of the last `MINUTES` minutes, in one query
/// that reads only the window (through the `finished_at` index) and works
/// the same on SQLite and PostgreSQL.
async fn throughput(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<u64>, DbErr> {
    let minutes = i64::try_from(MINUTES).unwrap_or(15);
    let edges: Vec<DateTime<Utc>> = (0..=minutes)
        .map(|i| now - TimeDelta::minutes(minutes - i))
        .collect();
    let sums: Vec<String> = (0..MINUTES)
        .map(|i| {
            format!(
                "SUM(CASE WHEN finished_at >= ${} AND finished_at < ${} THEN 1 ELSE 0 END) AS b{i}",
                i + 1,
                i + 2
            )
        })
        .collect();
    // The last edge is `now`; a little past it catches attempts stamped a
    // moment later by another node's clock.
    let mut values: Vec<Value> = edges.iter().map(|t| (*t).into()).collect();
    if let Some(last) = values.last_mut() {
        *last = (now + TimeDelta::seconds(5)).into();
    }
    let sql = format!(
        "SELECT {} FROM task_attempts WHERE finished_at >= $1",
        sums.join(", ")
    );
    let row = db
        .query_one(stmt(db.get_database_backend(), &sql, values))
        .await?;
    let Some(row) = row else {
        return Ok(vec![0; MINUTES]);
    };
    (0..MINUTES)
        .map(|i| {
            // An empty window sums to NULL.
            let n: Option<i64> = row.try_get("", &format!("b{i}"))?;
            Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
        })
        .collect()
}

/// One bar of the throughput chart, in SVG units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub x: u64,
    pub y: u64,
    pub width: u64,
    pub height: u64,
    pub count: u64,
}

/// The bars for `per_minute`, scaled so the busiest minute fills the height.
pub fn bars(per_minute: &[u64]) -> Vec<Bar> {
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let n = u64::try_from(per_minute.len().max(1)).unwrap_or(1);
    let slot = CHART_WIDTH / n;
    per_minute
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let height = count * CHART_HEIGHT / max;
            Bar {
                x: u64::try_from(i).unwrap_or(0) * slot + 1,
                y: CHART_HEIGHT - height,
                width: slot.saturating_sub(2),
                height,
                count,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_minute() {
        let bars = bars(&[0, 5, 10]);
        assert_eq!(bars.len(), 3);
        assert_eq!(bars[0].height, 0);
        assert_eq!(bars[1].height, CHART_HEIGHT / 2);
        assert_eq!(bars[2].height, CHART_HEIGHT);
        assert_eq!(bars[2].y, 0);
        assert_eq!(bars[1].x, CHART_WIDTH / 3 + 1);
        assert!(super::bars(&[0, 0]).iter().all(|b| b.height == 0));
    }
}
