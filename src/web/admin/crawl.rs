//! One crawl's admin page: its summary, then each site's pages read and
//! failed, why they failed, and the failed tasks themselves, so a site whose
//! profile matched nothing is plain at a glance.

use actix_web::{web, HttpResponse};
use askama::Template;
use entity::tasks::{self, TaskKind};
use sea_orm::DatabaseConnection;

use super::fleet::CrawlRow;
use super::page::{encode, frame, id_of, Frame};
use super::AdminViewer;
use crate::admin::crawls::{self, plural, Pages, SiteReport, FAILURES_SHOWN};
use crate::clock;
use crate::crawl::lease::TaskState;
use crate::web::error::PageError;
use crate::web::session::MaybeViewer;
use crate::web::{html, Nav};

/// Reasons listed per site; the task list, filtered by site, has the others.
const REASONS_SHOWN: usize = 10;

#[derive(Template)]
#[template(path = "admin/crawl.html")]
struct CrawlPage {
    nav: Nav,
    frame: Frame,
    crawl: CrawlRow,
    sites: Vec<SiteView>,
    shown: u64,
}

pub struct SiteView {
    pub name: String,
    /// The task list of this crawl and site.
    pub link: String,
    /// "0 items from 9 game pages; every one failed: …", when nothing came.
    pub verdict: Option<String>,
    pub listings: Pages,
    pub pages: Pages,
    pub retrying: u64,
    pub dead: u64,
    pub cancelled: u64,
    /// "9 game pages", and why they failed.
    pub reasons: Vec<(String, String)>,
    pub other_reasons: usize,
    pub failures: Vec<FailureRow>,
    /// Failed tasks not in the table: (state, how many, the list of them).
    pub more: Vec<(String, u64, String)>,
}

pub struct FailureRow {
    pub id: i64,
    pub kind: TaskKind,
    pub url: String,
    pub state: TaskState,
    pub attempts: i32,
    pub error: String,
}

/// "3 game pages", "1 listing page".
fn pages(n: u64, kind: TaskKind) -> String {
    let noun = match kind {
        TaskKind::Listing => "listing page",
        TaskKind::Page => "game page",
    };
    plural(n, noun)
}

impl SiteView {
    fn from(crawl: i64, site: SiteReport) -> SiteView {
        let link = format!("/admin/tasks?crawl={crawl}&site={}", encode(&site.site));
        let failed = |state: TaskState| site.failed.get(state.as_str()).copied().unwrap_or(0);
        let more = TaskState::ALL
            .into_iter()
            .filter_map(|state| {
                let shown = site.failures.iter().filter(|t| t.state == state);
                let hidden = failed(state).saturating_sub(shown.count() as u64);
                (hidden > 0).then(|| {
                    let state = state.as_str();
                    (state.to_owned(), hidden, format!("{link}&state={state}"))
                })
            })
            .collect();
        SiteView {
            verdict: site.verdict(),
            retrying: site.retrying(),
            dead: failed(TaskState::Dead),
            cancelled: failed(TaskState::Cancelled),
            listings: site.listings,
            pages: site.pages,
            reasons: site
                .reasons
                .iter()
                .take(REASONS_SHOWN)
                .map(|r| (pages(r.tasks, r.kind), r.text.clone()))
                .collect(),
            other_reasons: site.reasons.len().saturating_sub(REASONS_SHOWN),
            failures: site.failures.iter().map(FailureRow::from).collect(),
            more,
            name: site.site,
            link,
        }
    }
}

impl SiteView {
    /// The site's tasks in this crawl in `state`, in the task list.
    fn tasks_in(&self, state: &str) -> String {
        format!("{}&state={state}", self.link)
    }
}

impl FailureRow {
    fn from(task: &tasks::Model) -> FailureRow {
        FailureRow {
            id: task.id,
            kind: task.kind,
            url: task.url.clone(),
            state: task.state,
            attempts: task.attempts,
            error: task.last_error.clone().unwrap_or_default(),
        }
    }
}

pub async fn crawl(
    admin: AdminViewer,
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let id = id_of(&path)?;
    let detail = crawls::detail(db.get_ref(), id)
        .await?
        .ok_or(PageError::NotFound)?;
    let body = CrawlPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "crawls"),
        crawl: CrawlRow::from(&detail.report, clock::now()),
        sites: detail
            .sites
            .into_iter()
            .map(|site| SiteView::from(id, site))
            .collect(),
        shown: FAILURES_SHOWN,
    }
    .render()?;
    Ok(html(body))
}
