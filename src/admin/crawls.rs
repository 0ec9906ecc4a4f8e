//! The crawl history as admins see it: crawls newest first, each with its
//! tasks counted by state, and one crawl site by site, with the pages that
//! failed and why.

use std::collections::BTreeMap;

use entity::{crawls, tasks};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{offset, Page, PER_PAGE};
use crate::crawl::lease::TaskState;
use crate::crawl::store::{self, CrawlReport};
use crate::protocol::worker::TaskKind;

/// Failed tasks listed per site on a crawl's page; the task list, filtered
/// by crawl, site and state, has the rest.
pub const FAILURES_SHOWN: u64 = 20;

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
            CrawlReport::new(crawl, tasks)
        })
        .collect();
    Ok(Page::new(items, page, total))
}

/// A crawl, and what it did on each site.
#[derive(Debug, Clone)]
pub struct CrawlDetail {
    pub report: CrawlReport,
    /// By site name.
    pub sites: Vec<SiteReport>,
}

/// One kind of task (listing pages or game pages) on one site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pages {
    pub total: u64,
    pub done: u64,
    /// Queued or leased: not final yet.
    pub open: u64,
}

/// Why tasks failed, and how many of one kind failed so.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reason {
    pub kind: TaskKind,
    pub text: String,
    pub tasks: u64,
}

/// What a crawl did on one site.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SiteReport {
    pub site: String,
    pub listings: Pages,
    pub pages: Pages,
    /// Failed tasks per state: dead and cancelled ones, and queued or leased
    /// ones that failed before and wait for another attempt.
    pub failed: BTreeMap<String, u64>,
    /// Most frequent first.
    pub reasons: Vec<Reason>,
    /// The first `FAILURES_SHOWN` failed tasks, in the order they were found.
    pub failures: Vec<tasks::Model>,
}

impl SiteReport {
    /// Tasks that failed and wait for another attempt.
    pub fn retrying(&self) -> u64 {
        [TaskState::Queued, TaskState::Leased]
            .iter()
            .map(|s| self.failed.get(s.as_str()).copied().unwrap_or(0))
            .sum()
    }

    /// What went wrong on the site as a whole, once its every task is final:
    /// a site that yielded nothing says so, with the reason. `None` when it
    /// yielded something, or is still being crawled.
    pub fn verdict(&self) -> Option<String> {
        if self.pages.open + self.listings.open > 0 {
            return None;
        }
        if self.pages.total > 0 {
            return (self.pages.done == 0).then(|| {
                format!(
                    "0 items from {}; every one failed{}",
                    plural(self.pages.total, "game page"),
                    self.why(TaskKind::Page, self.pages.total)
                )
            });
        }
        match self.listings {
            Pages { total: 0, .. } => None,
            Pages { done: 0, total, .. } => Some(format!(
                "0 items: no game page found; every listing page failed{}",
                self.why(TaskKind::Listing, total)
            )),
            Pages { done, .. } => Some(format!(
                "0 items: no game page found; the {} read linked to none",
                plural(done, "listing page")
            )),
        }
    }

    /// ": <reason>" when all `tasks` of `kind` failed for one reason.
    fn why(&self, kind: TaskKind, tasks: u64) -> String {
        let mut reasons = self.reasons.iter().filter(|r| r.kind == kind);
        match (reasons.next(), reasons.next()) {
            (None, _) => String::new(),
            (Some(only), None) if only.tasks == tasks => format!(": {}", only.text),
            _ => " (the reasons are below)".to_owned(),
        }
    }
}

/// "1 game page", "2 game pages".
pub fn plural(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// A failed task: dead, cancelled, or not done after an error.
fn failed() -> Condition {
    Condition::all()
        .add(tasks::Column::State.ne(TaskState::Done))
        .add(
            Condition::any()
                .add(tasks::Column::LastError.is_not_null())
                .add(tasks::Column::State.is_in([TaskState::Dead, TaskState::Cancelled])),
        )
}

/// A crawl, site by site; `None` when there is no such crawl.
pub async fn detail(db: &impl ConnectionTrait, id: i64) -> Result<Option<CrawlDetail>, DbErr> {
    let Some(report) = store::crawl_report(db, id).await? else {
        return Ok(None);
    };
    let of_crawl = || tasks::Entity::find().filter(tasks::Column::CrawlId.eq(id));
    let counts: Vec<(String, TaskKind, TaskState, i64)> = of_crawl()
        .select_only()
        .column(tasks::Column::Site)
        .column(tasks::Column::Kind)
        .column(tasks::Column::State)
        .column_as(tasks::Column::Id.count(), "n")
        .group_by(tasks::Column::Site)
        .group_by(tasks::Column::Kind)
        .group_by(tasks::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    let failed_counts: Vec<(String, String, i64)> = of_crawl()
        .filter(failed())
        .select_only()
        .column(tasks::Column::Site)
        .column(tasks::Column::State)
        .column_as(tasks::Column::Id.count(), "n")
        .group_by(tasks::Column::Site)
        .group_by(tasks::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    let reasons: Vec<(String, TaskKind, String, i64)> = of_crawl()
        .filter(failed())
        .filter(tasks::Column::LastError.is_not_null())
        .select_only()
        .column(tasks::Column::Site)
        .column(tasks::Column::Kind)
        .column(tasks::Column::LastError)
        .column_as(tasks::Column::Id.count(), "n")
        .group_by(tasks::Column::Site)
        .group_by(tasks::Column::Kind)
        .group_by(tasks::Column::LastError)
        .into_tuple()
        .all(db)
        .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut sites: BTreeMap<String, SiteReport> = BTreeMap::new();
    for (site, kind, state, n) in counts {
        let report = sites.entry(site.clone()).or_insert_with(|| SiteReport {
            site,
            ..SiteReport::default()
        });
        let n = count(n);
        let pages = match kind {
            TaskKind::Listing => &mut report.listings,
            TaskKind::Page => &mut report.pages,
        };
        pages.total += n;
        match state {
            TaskState::Done => pages.done += n,
            TaskState::Queued | TaskState::Leased => pages.open += n,
            TaskState::Dead | TaskState::Cancelled => {}
        }
    }
    for (site, state, n) in failed_counts {
        if let Some(report) = sites.get_mut(&site) {
            report.failed.insert(state, count(n));
        }
    }
    for (site, kind, text, n) in reasons {
        if let Some(report) = sites.get_mut(&site) {
            report.reasons.push(Reason {
                kind,
                text,
                tasks: count(n),
            });
        }
    }
    for report in sites.values_mut() {
        report
            .reasons
            .sort_by(|a, b| b.tasks.cmp(&a.tasks).then_with(|| a.text.cmp(&b.text)));
        report.failures = of_crawl()
            .filter(tasks::Column::Site.eq(report.site.as_str()))
            .filter(failed())
            .order_by_asc(tasks::Column::Id)
            .limit(FAILURES_SHOWN)
            .all(db)
            .await?;
    }
    Ok(Some(CrawlDetail {
        report,
        sites: sites.into_values().collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(listings: Pages, pages: Pages, reasons: &[(TaskKind, &str, u64)]) -> SiteReport {
        SiteReport {
            site: "gamevault".into(),
            listings,
            pages,
            reasons: reasons
                .iter()
                .map(|&(kind, text, tasks)| Reason {
                    kind,
                    text: text.into(),
                    tasks,
                })
                .collect(),
            ..SiteReport::default()
        }
    }

    fn read(total: u64, done: u64) -> Pages {
        Pages {
            total,
            done,
            open: 0,
        }
    }

    const NO_PRODUCT: &str = "no product found on the page (looked for JSON-LD Product)";

    #[test]
    fn a_site_whose_every_page_failed_for_one_reason_names_it() {
        let s = site(read(2, 2), read(9, 0), &[(TaskKind::Page, NO_PRODUCT, 9)]);
        assert_eq!(
            s.verdict().as_deref(),
            Some(
                "0 items from 9 game pages; every one failed: \
                 no product found on the page (looked for JSON-LD Product)"
            )
        );
    }

    #[test]
    fn pages_that_failed_for_several_reasons_point_below() {
        let reasons = [
            (TaskKind::Page, NO_PRODUCT, 1),
            (TaskKind::Page, "HTTP 500", 1),
        ];
        let s = site(read(1, 1), read(2, 0), &reasons);
        assert_eq!(
            s.verdict().as_deref(),
            Some("0 items from 2 game pages; every one failed (the reasons are below)")
        );
    }

    #[test]
    fn listings_that_failed_or_linked_nowhere_say_so() {
        let dead = site(
            read(1, 0),
            read(0, 0),
            &[(TaskKind::Listing, "HTTP 404", 1)],
        );
        assert_eq!(
            dead.verdict().as_deref(),
            Some("0 items: no game page found; every listing page failed: HTTP 404")
        );
        let empty = site(read(1, 1), read(0, 0), &[]);
        assert_eq!(
            empty.verdict().as_deref(),
            Some("0 items: no game page found; the 1 listing page read linked to none")
        );
    }

    #[test]
    fn a_site_that_yielded_something_or_is_still_running_has_no_verdict() {
        let partly = site(read(1, 1), read(3, 1), &[(TaskKind::Page, NO_PRODUCT, 2)]);
        assert_eq!(partly.verdict(), None);
        let running = site(
            read(1, 1),
            Pages {
                total: 3,
                done: 0,
                open: 1,
            },
            &[(TaskKind::Page, NO_PRODUCT, 2)],
        );
        assert_eq!(running.verdict(), None);
    }
}
