//! The fleet's admin pages: the workers connected to every node, the crawl
//! history and the rooms. Their actions go through `page::act`, so they are
//! CSRF-checked, rate-limited and audited like every other; an action on a
//! worker of another node goes to that node over the bus.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use entity::crawls::CrawlStatus;
use sea_orm::DatabaseConnection;
use serde::Deserialize;

use super::page::{act, frame, maybe_when, when, Frame, PageQuery, Pager, SentQuery};
use super::{AdminViewer, Controls};
use crate::admin::actions::Action;
use crate::admin::crawls;
use crate::admin::rooms::{self, RoomActivity, RATE_WINDOW};
use crate::bus::{Bus, NodeWorker, WorkerAction};
use crate::clock;
use crate::crawl::lease::TaskState;
use crate::crawl::store::CrawlReport;
use crate::domain::topic::Topic;
use crate::web::auctions::span;
use crate::web::error::PageError;
use crate::web::session::{CsrfForm, MaybeViewer};
use crate::web::{html, Nav};

#[derive(Template)]
#[template(path = "admin/workers.html")]
struct WorkersPage {
    nav: Nav,
    frame: Frame,
    /// Whether rows name their node: in a cluster.
    cluster: bool,
    /// The node the last action went to, when it was another.
    sent: Option<String>,
    /// Why only this node's workers are listed.
    unreachable: Option<String>,
    workers: Vec<WorkerRow>,
}

pub struct WorkerRow {
    /// The row's HTML id: a worker's id is unique on its node only.
    pub key: String,
    pub node: String,
    pub id: u64,
    pub name: String,
    pub address: String,
    pub version: String,
    pub slots: u32,
    pub credits: u32,
    pub tasks: Vec<i64>,
    pub done: u64,
    pub failed: u64,
    pub restarts: u64,
    pub connected: String,
    pub heartbeat: String,
    /// How long ago the last heartbeat came.
    pub heartbeat_age: String,
    pub draining: bool,
}

impl WorkerRow {
    fn from(node: &str, worker: &NodeWorker, cluster: bool, now: DateTime<Utc>) -> WorkerRow {
        let worker = worker.clone();
        WorkerRow {
            key: match cluster {
                true => format!("worker-{node}-{}", worker.id),
                false => format!("worker-{}", worker.id),
            },
            node: node.to_owned(),
            id: worker.id,
            name: worker.name,
            address: worker.address,
            version: worker.version,
            slots: worker.slots,
            credits: worker.credits,
            tasks: worker.tasks,
            done: worker.done,
            failed: worker.failed,
            restarts: worker.scraper_restarts,
            connected: when(worker.connected_at),
            heartbeat: when(worker.last_heartbeat),
            heartbeat_age: span(now - worker.last_heartbeat),
            draining: worker.draining,
        }
    }
}

pub async fn workers(
    admin: AdminViewer,
    query: web::Query<SentQuery>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let fleet = controls.fleet().await?;
    let now = clock::now();
    let body = WorkersPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "workers"),
        cluster: fleet.cluster,
        sent: query.into_inner().sent,
        workers: fleet
            .workers()
            .map(|(node, w)| WorkerRow::from(node, w, fleet.cluster, now))
            .collect(),
        unreachable: fleet.unreachable,
    }
    .render()?;
    Ok(html(body))
}

/// A worker action's form: its token, and the worker's node when the page
/// lists several (none means this node).
#[derive(Debug, Deserialize)]
pub struct WorkerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    node: String,
}

/// The action on the worker the path and the form name.
fn worker_action(
    bus: &dyn Bus,
    path: &str,
    form: &WorkerForm,
    action: WorkerAction,
) -> Result<Action, PageError> {
    // Worker ids are the Dispatcher's, not the database's: a u64.
    let worker = path.parse().map_err(|_| PageError::NotFound)?;
    let node = Some(form.node.as_str()).filter(|n| !n.is_empty());
    Ok(Action::on_worker(bus.node(), node, worker, action))
}

pub async fn drain(
    req: HttpRequest,
    admin: AdminViewer,
    path: web::Path<String>,
    form: web::Form<WorkerForm>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let action = worker_action(controls.bus.as_ref(), &path, &form, WorkerAction::Drain)?;
    act(
        &req,
        &admin,
        &db,
        &controls,
        &form.csrf,
        action,
        "/admin/workers",
    )
    .await
}

pub async fn disconnect(
    req: HttpRequest,
    admin: AdminViewer,
    path: web::Path<String>,
    form: web::Form<WorkerForm>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let action = worker_action(
        controls.bus.as_ref(),
        &path,
        &form,
        WorkerAction::Disconnect,
    )?;
    act(
        &req,
        &admin,
        &db,
        &controls,
        &form.csrf,
        action,
        "/admin/workers",
    )
    .await
}

#[derive(Template)]
#[template(path = "admin/crawls.html")]
struct CrawlsPage {
    nav: Nav,
    frame: Frame,
    states: Vec<&'static str>,
    rows: Vec<CrawlRow>,
    pager: Pager,
}

pub struct CrawlRow {
    pub id: i64,
    pub trigger: String,
    pub status: CrawlStatus,
    pub started: String,
    pub finished: String,
    pub duration: String,
    /// Tasks per state, in `TaskState::ALL` order.
    pub counts: Vec<(&'static str, u64)>,
    pub total: u64,
}

impl CrawlRow {
    pub(super) fn from(report: &CrawlReport, now: DateTime<Utc>) -> CrawlRow {
        let crawl = &report.crawl;
        let duration = match crawl.finished_at {
            Some(end) => span(end - crawl.started_at),
            None => format!("{} so far", span(now - crawl.started_at)),
        };
        CrawlRow {
            id: crawl.id,
            trigger: crawl.trigger.clone(),
            status: crawl.status,
            started: when(crawl.started_at),
            finished: maybe_when(crawl.finished_at),
            duration,
            counts: TaskState::ALL
                .into_iter()
                .map(|s| {
                    (
                        s.as_str(),
                        report.tasks.get(s.as_str()).copied().unwrap_or(0),
                    )
                })
                .collect(),
            total: report.total(),
        }
    }
}

pub async fn crawls(
    admin: AdminViewer,
    query: web::Query<PageQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let page = crawls::list(db.get_ref(), query.page.unwrap_or(1)).await?;
    let now = clock::now();
    let body = CrawlsPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "crawls"),
        states: TaskState::ALL.iter().map(|s| s.as_str()).collect(),
        rows: page.items.iter().map(|c| CrawlRow::from(c, now)).collect(),
        pager: Pager::new(&page, |n| format!("/admin/crawls?page={n}")),
    }
    .render()?;
    Ok(html(body))
}

pub async fn start_crawl(
    req: HttpRequest,
    admin: AdminViewer,
    form: web::Form<CsrfForm>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let action = Action::StartCrawl;
    act(
        &req,
        &admin,
        &db,
        &controls,
        &form.csrf,
        action,
        "/admin/crawls",
    )
    .await
}

#[derive(Template)]
#[template(path = "admin/rooms.html")]
struct RoomsPage {
    nav: Nav,
    frame: Frame,
    window: u64,
    cluster: bool,
    unreachable: Option<String>,
    rooms: Vec<RoomRow>,
}

pub struct RoomRow {
    pub topic: String,
    /// Where the room is seen: a chat room's or a lot's page.
    pub link: Option<String>,
    pub members: u64,
    /// Members per node, as `node: n` pairs.
    pub nodes: String,
    pub messages: u64,
    pub per_second: String,
}

impl RoomRow {
    fn from(room: RoomActivity) -> RoomRow {
        let link = match Topic::parse(&room.topic) {
            Ok(Topic::Chat(name)) => Some(format!("/rooms/{name}")),
            Ok(Topic::Auction(id)) => Some(format!("/auctions/{id}")),
            Err(_) => None,
        };
        let nodes: Vec<String> = room
            .nodes
            .iter()
            .map(|(node, n)| format!("{node}: {n}"))
            .collect();
        RoomRow {
            link,
            members: room.members,
            nodes: nodes.join(", "),
            messages: room.messages,
            per_second: format!("{:.2}", room.per_second),
            topic: room.topic,
        }
    }
}

pub async fn rooms(
    admin: AdminViewer,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let fleet = controls.fleet().await?;
    let activity = rooms::activity(db.get_ref(), fleet.members(), clock::now()).await?;
    let body = RoomsPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "rooms"),
        window: RATE_WINDOW.as_secs(),
        cluster: fleet.cluster,
        rooms: activity.into_iter().map(RoomRow::from).collect(),
        unreachable: fleet.unreachable,
    }
    .render()?;
    Ok(html(body))
}
