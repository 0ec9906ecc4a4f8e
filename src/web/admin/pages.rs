//! The admin pages, server-rendered; every action POSTs and redirects back.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use entity::{audit_log, outbox, task_attempts, tasks};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{levers, rate_limited, AdminViewer};
use crate::admin::actions::{self, Action, ActionError};
use crate::admin::audit;
use crate::admin::dashboard::{self, Bar, Snapshot};
use crate::admin::tasks::{self as queue, TaskFilter, TaskSort};
use crate::admin::{outbox as mail, Page};
use crate::crawl::dispatcher::{ListWorkers, WorkerStatus};
use crate::crawl::lease::TaskState;
use crate::metrics::Connection;
use crate::rooms::registry::{occupied, ListRooms};
use crate::web::error::PageError;
use crate::web::session::{check_csrf, CsrfForm, MaybeViewer};
use crate::web::{html, see_other, sentence, AppState, Nav};

/// A time as the admin pages show it.
pub(super) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(super) fn maybe_when(t: Option<DateTime<Utc>>) -> String {
    t.map(when).unwrap_or_default()
}

/// The tab and form token every admin page carries.
pub(super) fn frame(admin: &AdminViewer, tab: &'static str) -> Frame {
    Frame {
        csrf: admin.0.csrf.clone(),
        tab,
    }
}

pub struct Frame {
    pub csrf: String,
    pub tab: &'static str,
}

/// Links to the other pages of a list, keeping its filters.
pub struct Pager {
    pub page: u64,
    pub pages: u64,
    pub total: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    pub(super) fn new<T>(page: &Page<T>, link: impl Fn(u64) -> String) -> Pager {
        Pager {
            page: page.page,
            pages: page.pages,
            total: page.total,
            prev: (page.page > 1).then(|| link(page.page - 1)),
            next: (page.page < page.pages).then(|| link(page.page + 1)),
        }
    }
}

pub(super) fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    nav: Nav,
    frame: Frame,
    now: Snapshot,
    bars: Vec<Bar>,
    chart_width: u64,
    chart_height: u64,
    workers: Vec<WorkerStatus>,
    node: NodeActivity,
}

/// What only this node knows, beside the database's snapshot: its sockets
/// and its rooms. Each node's dashboard shows its own.
#[derive(Debug, Clone, Serialize)]
pub struct NodeActivity {
    /// `/ws` connections: browsers and `bazaar chat`.
    pub clients: u64,
    /// Chat rooms and lots with members here.
    pub chat_rooms: usize,
    pub auction_rooms: usize,
    /// Memberships over all of them (one connection may be in several).
    pub members: usize,
}

impl NodeActivity {
    /// The rows the dashboard's table shows and the live updates refresh.
    pub fn rows(&self) -> [(&'static str, &'static str, u64); 4] {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        [
            ("clients", "Client connections", self.clients),
            ("chat_rooms", "Chat rooms", count(self.chat_rooms)),
            ("auction_rooms", "Auction rooms", count(self.auction_rooms)),
            ("members", "Room members", count(self.members)),
        ]
    }
}

async fn node_activity(state: &AppState) -> Result<NodeActivity, actix::MailboxError> {
    let topics = state.registry.send(ListRooms).await?;
    let (chat_rooms, auction_rooms) = occupied(&topics);
    Ok(NodeActivity {
        clients: state.metrics.open_now(Connection::Client),
        chat_rooms,
        auction_rooms,
        members: topics.iter().map(|(_, n)| n).sum(),
    })
}

pub async fn dashboard(
    admin: AdminViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let now = dashboard::snapshot(&state.db, state.clock.now()).await?;
    let workers = state
        .dispatcher
        .send(ListWorkers)
        .await
        .map_err(|err| PageError::Internal(err.into()))?;
    let node = node_activity(&state)
        .await
        .map_err(|err| PageError::Internal(err.into()))?;
    let body = DashboardPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "dashboard"),
        bars: dashboard::bars(&now.throughput),
        chart_width: dashboard::CHART_WIDTH,
        chart_height: dashboard::CHART_HEIGHT,
        now,
        workers,
        node,
    }
    .render()?;
    Ok(html(body))
}

/// `GET /admin/events`: a dashboard snapshot every second as server-sent
/// events, until the page goes away or the server shuts down.
pub async fn events(_: AdminViewer, state: web::Data<AppState>) -> HttpResponse {
    let leaving = state.leaving.clone();
    let ticks = tokio_stream_interval(Duration::from_secs(1));
    let stream = ticks
        .then(move |()| {
            let state = state.clone();
            async move {
                let snapshot = dashboard::snapshot(&state.db, state.clock.now()).await;
                let workers = state
                    .dispatcher
                    .send(ListWorkers)
                    .await
                    .map(|w| w.len())
                    .unwrap_or(0);
                let node = node_activity(&state).await.ok();
                let frame = match snapshot {
                    Ok(snapshot) => {
                        let data = serde_json::json!({
                            "snapshot": snapshot,
                            "workers": workers,
                            "node": node.as_ref().map(NodeActivity::rows),
                        });
                        format!("data: {data}\n\n")
                    }
                    // A comment line keeps the connection open; the next
                    // tick tries again.
                    Err(err) => {
                        tracing::warn!(error = %err, "dashboard snapshot failed");
                        ": snapshot failed\n\n".to_owned()
                    }
                };
                Ok::<_, actix_web::Error>(web::Bytes::from(frame))
            }
        })
        .take_until(async move { leaving.cancelled().await });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // Compression would hold events back until a buffer fills.
        .insert_header(actix_web::http::header::ContentEncoding::Identity)
        .streaming(stream)
}

/// A tick now and then every `every`.
fn tokio_stream_interval(every: Duration) -> impl futures_util::Stream<Item = ()> {
    futures_util::stream::unfold(tokio::time::interval(every), |mut interval| async move {
        interval.tick().await;
        Some(((), interval))
    })
}

#[derive(Template)]
#[template(path = "admin/tasks.html")]
struct TasksPage {
    nav: Nav,
    frame: Frame,
    filter: TaskFilter,
    crawl: String,
    states: Vec<&'static str>,
    sorts: Vec<&'static str>,
    sort: &'static str,
    rows: Vec<TaskRow>,
    pager: Pager,
    counts: Vec<(String, u64)>,
    paused: Option<String>,
}

pub struct TaskRow {
    pub id: i64,
    pub crawl: i64,
    pub site: String,
    pub kind: String,
    pub url: String,
    pub state: String,
    pub attempts: i32,
    pub worker: String,
    pub error: String,
    pub updated: String,
}

impl TaskRow {
    fn from(task: &tasks::Model) -> TaskRow {
        TaskRow {
            id: task.id,
            crawl: task.crawl_id,
            site: task.site.clone(),
            kind: task.kind.clone(),
            url: task.url.clone(),
            state: task.state.clone(),
            attempts: task.attempts,
            worker: task.worker.clone().unwrap_or_default(),
            error: task.last_error.clone().unwrap_or_default(),
            updated: when(task.updated_at),
        }
    }
}

pub async fn tasks(
    admin: AdminViewer,
    query: web::Query<TaskFilter>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let filter = query.into_inner();
    filter
        .check()
        .map_err(|e| PageError::BadRequest(sentence(&e)))?;
    let sort = filter.sort().unwrap_or(TaskSort::Updated);
    let page = queue::list(&state.db, &filter).await?;
    let link = |n: u64| {
        format!(
            "/admin/tasks?state={}&crawl={}&site={}&q={}&sort={}&page={n}",
            encode(&filter.state),
            filter.crawl.map(|c| c.to_string()).unwrap_or_default(),
            encode(&filter.site),
            encode(&filter.q),
            sort.as_str()
        )
    };
    let body = TasksPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "tasks"),
        crawl: filter.crawl.map(|c| c.to_string()).unwrap_or_default(),
        states: TaskState::ALL.iter().map(|s| s.as_str()).collect(),
        sorts: TaskSort::ALL.iter().map(|s| s.as_str()).collect(),
        sort: sort.as_str(),
        rows: page.items.iter().map(TaskRow::from).collect(),
        pager: Pager::new(&page, link),
        counts: queue::counts(&state.db).await?,
        paused: queue::paused(&state.db)
            .await?
            .map(|f| format!("by {} at {}", f.set_by, when(f.set_at))),
        filter,
    }
    .render()?;
    Ok(html(body))
}

#[derive(Template)]
#[template(path = "admin/task.html")]
struct TaskPage {
    nav: Nav,
    frame: Frame,
    task: TaskRow,
    not_before: String,
    lease_until: String,
    created: String,
    attempts: Vec<AttemptRow>,
    retriable: bool,
    cancellable: bool,
}

pub struct AttemptRow {
    pub attempt: i32,
    pub worker: String,
    pub started: String,
    pub finished: String,
    pub duration: String,
    pub outcome: String,
    pub error: String,
}

impl AttemptRow {
    fn from(attempt: &task_attempts::Model) -> AttemptRow {
        AttemptRow {
            attempt: attempt.attempt,
            worker: attempt.worker.clone(),
            started: when(attempt.started_at),
            finished: maybe_when(attempt.finished_at),
            duration: attempt
                .finished_at
                .map(|end| {
                    let ms = (end - attempt.started_at).num_milliseconds().max(0);
                    format!("{}.{:03} s", ms / 1000, ms % 1000)
                })
                .unwrap_or_default(),
            outcome: attempt
                .outcome
                .clone()
                .unwrap_or_else(|| "running".to_owned()),
            error: attempt.error.clone().unwrap_or_default(),
        }
    }
}

pub(super) fn id_of(path: &str) -> Result<i64, PageError> {
    path.parse().map_err(|_| PageError::NotFound)
}

pub async fn task(
    admin: AdminViewer,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let id = id_of(&path)?;
    let (task, attempts) = queue::detail(&state.db, id)
        .await?
        .ok_or(PageError::NotFound)?;
    let body = TaskPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "tasks"),
        not_before: when(task.not_before),
        lease_until: maybe_when(task.lease_until),
        created: when(task.created_at),
        attempts: attempts.iter().map(AttemptRow::from).collect(),
        retriable: task.state == "queued" || task.state == "dead",
        cancellable: task.state == "queued" || task.state == "leased",
        task: TaskRow::from(&task),
    }
    .render()?;
    Ok(html(body))
}

/// An action from a page: CSRF, the rate limit, the action and its audit
/// row, then back to `back`.
pub(super) async fn act(
    req: &HttpRequest,
    admin: &AdminViewer,
    state: &AppState,
    csrf: &str,
    action: Action,
    back: &str,
) -> Result<HttpResponse, PageError> {
    check_csrf(req, &MaybeViewer(Some(admin.0.clone())), csrf)?;
    let actor = admin.actor(req);
    rate_limited(state, &actor).map_err(PageError::TooManyRequests)?;
    actions::perform(&levers(state), &actor, action, state.clock.now())
        .await
        .map_err(action_error)?;
    Ok(see_other(back))
}

pub(crate) fn action_error(err: ActionError) -> PageError {
    match err {
        ActionError::NoSuchTask(_) | ActionError::NoSuchWorker(_) | ActionError::NoSuchLot(_) => {
            PageError::NotFound
        }
        ActionError::NotRetriable { .. }
        | ActionError::NotCancellable { .. }
        | ActionError::MailNotFailed(_)
        | ActionError::CrawlRunning(_)
        | ActionError::LotNotCancellable { .. } => PageError::Conflict(sentence(&err.to_string())),
        ActionError::Db(err) => PageError::Internal(err.into()),
        ActionError::Internal(err) => PageError::Internal(err),
    }
}

pub async fn retry(
    req: HttpRequest,
    admin: AdminViewer,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let id = id_of(&path)?;
    let back = format!("/admin/tasks/{id}");
    act(
        &req,
        &admin,
        &state,
        &form.csrf,
        Action::RetryTask(id),
        &back,
    )
    .await
}

pub async fn cancel(
    req: HttpRequest,
    admin: AdminViewer,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let id = id_of(&path)?;
    let back = format!("/admin/tasks/{id}");
    act(
        &req,
        &admin,
        &state,
        &form.csrf,
        Action::CancelTask(id),
        &back,
    )
    .await
}

#[derive(Template)]
#[template(path = "admin/requeue.html")]
struct RequeuePage {
    nav: Nav,
    frame: Frame,
    dead: u64,
}

pub async fn requeue_confirm(
    admin: AdminViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let dead = queue::counts(&state.db)
        .await?
        .into_iter()
        .find(|(s, _)| s == "dead")
        .map_or(0, |(_, n)| n);
    let body = RequeuePage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "tasks"),
        dead,
    }
    .render()?;
    Ok(html(body))
}

#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

pub async fn requeue_dead(
    req: HttpRequest,
    admin: AdminViewer,
    form: web::Form<ConfirmForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    if form.confirm != "yes" {
        // Only the confirmation page sends `confirm=yes`.
        return Ok(see_other("/admin/tasks/requeue-dead"));
    }
    let back = "/admin/tasks?state=queued";
    act(&req, &admin, &state, &form.csrf, Action::RequeueDead, back).await
}

pub async fn pause(
    req: HttpRequest,
    admin: AdminViewer,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let back = "/admin/tasks";
    act(&req, &admin, &state, &form.csrf, Action::PauseQueue, back).await
}

pub async fn resume(
    req: HttpRequest,
    admin: AdminViewer,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let back = "/admin/tasks";
    act(&req, &admin, &state, &form.csrf, Action::ResumeQueue, back).await
}

/// A list filtered by one status (empty for all) and paged.
#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    pub(super) status: String,
    pub(super) page: Option<u64>,
}

#[derive(Template)]
#[template(path = "admin/mail.html")]
struct MailPage {
    nav: Nav,
    frame: Frame,
    status: String,
    statuses: Vec<(String, u64)>,
    rows: Vec<MailRow>,
    pager: Pager,
}

pub struct MailRow {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub status: String,
    pub attempts: i32,
    pub error: String,
    pub created: String,
    pub sent: String,
}

impl MailRow {
    fn from(mail: &outbox::Model) -> MailRow {
        MailRow {
            id: mail.id,
            kind: mail.kind.clone(),
            recipient: mail.recipient.clone(),
            subject: mail.subject.clone(),
            status: mail.status.clone(),
            attempts: mail.attempts,
            error: mail.last_error.clone().unwrap_or_default(),
            created: when(mail.created_at),
            sent: maybe_when(mail.sent_at),
        }
    }
}

pub async fn mail(
    admin: AdminViewer,
    query: web::Query<StatusQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let status =
        mail::parse_status(&query.status).map_err(|e| PageError::BadRequest(sentence(&e)))?;
    let page = mail::list(&state.db, status, query.page.unwrap_or(1)).await?;
    let link = |n: u64| format!("/admin/mail?status={}&page={n}", encode(&query.status));
    let body = MailPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "mail"),
        status: query.status.clone(),
        statuses: mail::counts(&state.db).await?,
        rows: page.items.iter().map(MailRow::from).collect(),
        pager: Pager::new(&page, link),
    }
    .render()?;
    Ok(html(body))
}

pub async fn retry_mail(
    req: HttpRequest,
    admin: AdminViewer,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let id = id_of(&path)?;
    let back = "/admin/mail?status=failed";
    act(
        &req,
        &admin,
        &state,
        &form.csrf,
        Action::RetryMail(id),
        back,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub(super) page: Option<u64>,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    nav: Nav,
    frame: Frame,
    rows: Vec<AuditRow>,
    pager: Pager,
}

pub struct AuditRow {
    pub at: String,
    pub who: String,
    pub action: String,
    pub object: String,
    pub detail: String,
    pub address: String,
}

impl AuditRow {
    fn from(row: &audit_log::Model) -> AuditRow {
        AuditRow {
            at: when(row.at),
            who: row.user_name.clone(),
            action: row.action.clone(),
            object: match &row.object_id {
                Some(id) => format!("{} {id}", row.object_kind),
                None => row.object_kind.clone(),
            },
            detail: row.detail.clone().unwrap_or_default(),
            address: row.address.clone().unwrap_or_default(),
        }
    }
}

pub async fn audit(
    admin: AdminViewer,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let page = audit::list(&state.db, query.page.unwrap_or(1)).await?;
    let body = AuditPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "audit"),
        rows: page.items.iter().map(AuditRow::from).collect(),
        pager: Pager::new(&page, |n| format!("/admin/audit?page={n}")),
    }
    .render()?;
    Ok(html(body))
}
