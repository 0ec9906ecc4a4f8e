//! The task queue's admin pages: the filtered, sorted list, one task with its
//! attempts, and the actions on them (retry now, cancel, requeue the dead,
//! pause and resume).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use entity::tasks::TaskKind;
use entity::{task_attempts, tasks};
use sea_orm::DatabaseConnection;
use serde::Deserialize;

use super::page::{act, encode, frame, id_of, maybe_when, when, Frame, Pager};
use super::AdminViewer;
use crate::admin::actions::Action;
use crate::admin::tasks::{self as queue, TaskFilter, TaskSort};
use crate::crawl::lease::TaskState;
use crate::web::admin::Controls;
use crate::web::error::PageError;
use crate::web::session::{CsrfForm, MaybeViewer};
use crate::web::{html, see_other, sentence, Nav};

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
    pub kind: TaskKind,
    pub url: String,
    pub state: TaskState,
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
            kind: task.kind,
            url: task.url.clone(),
            state: task.state,
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
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let filter = query.into_inner();
    filter
        .check()
        .map_err(|e| PageError::BadRequest(sentence(&e)))?;
    let sort = filter.sort().unwrap_or(TaskSort::Updated);
    let page = queue::list(db.get_ref(), &filter).await?;
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
        counts: queue::counts(db.get_ref()).await?,
        paused: queue::paused(db.get_ref())
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

pub async fn task(
    admin: AdminViewer,
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let id = id_of(&path)?;
    let (task, attempts) = queue::detail(db.get_ref(), id)
        .await?
        .ok_or(PageError::NotFound)?;
    let body = TaskPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "tasks"),
        not_before: when(task.not_before),
        lease_until: maybe_when(task.lease_until),
        created: when(task.created_at),
        attempts: attempts.iter().map(AttemptRow::from).collect(),
        retriable: matches!(task.state, TaskState::Queued | TaskState::Dead),
        cancellable: matches!(task.state, TaskState::Queued | TaskState::Leased),
        task: TaskRow::from(&task),
    }
    .render()?;
    Ok(html(body))
}

pub async fn retry(
    req: HttpRequest,
    admin: AdminViewer,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let id = id_of(&path)?;
    let back = format!("/admin/tasks/{id}");
    act(
        &req,
        &admin,
        &db,
        &controls,
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
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let id = id_of(&path)?;
    let back = format!("/admin/tasks/{id}");
    act(
        &req,
        &admin,
        &db,
        &controls,
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
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let dead = queue::counts(db.get_ref())
        .await?
        .into_iter()
        .find(|(s, _)| s == TaskState::Dead.as_str())
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
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    if form.confirm != "yes" {
        // Only the confirmation page sends `confirm=yes`.
        return Ok(see_other("/admin/tasks/requeue-dead"));
    }
    let back = "/admin/tasks?state=queued";
    act(
        &req,
        &admin,
        &db,
        &controls,
        &form.csrf,
        Action::RequeueDead,
        back,
    )
    .await
}

pub async fn pause(
    req: HttpRequest,
    admin: AdminViewer,
    form: web::Form<CsrfForm>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let back = "/admin/tasks";
    act(
        &req,
        &admin,
        &db,
        &controls,
        &form.csrf,
        Action::PauseQueue,
        back,
    )
    .await
}

pub async fn resume(
    req: HttpRequest,
    admin: AdminViewer,
    form: web::Form<CsrfForm>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let back = "/admin/tasks";
    act(
        &req,
        &admin,
        &db,
        &controls,
        &form.csrf,
        Action::ResumeQueue,
        back,
    )
    .await
}
