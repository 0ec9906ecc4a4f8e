//! `/api/admin/...`: the admin pages as JSON, for scripts. A caller shows
//! the API token (`Authorization: Bearer ...`) or an admin's session
//! cookie; with the cookie, a POST must also carry the session's CSRF token
//! in `X-CSRF-Token`, since a browser would send the cookie on its own.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use entity::outbox::{MailKind, MailStatus};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::json;

use super::page::{PageQuery, StatusQuery};
use super::{address, Controls};
use crate::admin::actions::{self, Action, ActionError};
use crate::admin::audit::{self, Actor};
use crate::admin::fleet::Fleet;
use crate::admin::lots::{self, ListedLot};
use crate::admin::rooms::{self, RATE_WINDOW};
use crate::admin::tasks::{self as queue, TaskFilter};
use crate::admin::{crawls, outbox as mail, Page};
use crate::auction::LotStatus;
use crate::bus::{Bus, WorkerAction};
use crate::clock;
use crate::web::auth::{constant_time_eq, has_token, ApiToken};
use crate::web::error::ApiError;
use crate::web::part;
use crate::web::session::{viewer, Accounts};

/// Someone allowed to use the admin API, and who they are for the audit log.
pub struct AdminCaller(Actor);

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<AdminCaller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let token = part::<ApiToken>(&req).map_err(ApiError::Internal)?;
            if has_token(&req, &token.0) {
                return Ok(AdminCaller(Actor {
                    user_id: None,
                    name: "api-token".to_owned(),
                    address: address(&req),
                }));
            }
            let db = part::<DatabaseConnection>(&req).map_err(ApiError::Internal)?;
            let accounts = part::<Accounts>(&req).map_err(ApiError::Internal)?;
            let Some(v) = viewer(&req, &db, &accounts)
                .await
                .map_err(|err| ApiError::Internal(anyhow::anyhow!("{err}")))?
            else {
                return Err(ApiError::Unauthorized);
            };
            if !v.account.is_admin {
                return Err(ApiError::Forbidden(
                    "only admins may use this API".to_owned(),
                ));
            }
            if req.method() != actix_web::http::Method::GET {
                let given = req
                    .headers()
                    .get("X-CSRF-Token")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default();
                if !constant_time_eq(given.as_bytes(), v.csrf.as_bytes()) {
                    return Err(ApiError::Forbidden(
                        "a POST with a session cookie needs the session's X-CSRF-Token".to_owned(),
                    ));
                }
            }
            Ok(AdminCaller(Actor {
                user_id: Some(v.account.id),
                name: v.account.name.clone(),
                address: address(&req),
            }))
        })
    }
}

/// An action through the API: the rate limit (reads are not limited), the
/// action and its audit row. `sent_to` names the node that was asked to
/// act, when it is another: that node does it a moment later.
async fn act(
    caller: &AdminCaller,
    db: &DatabaseConnection,
    controls: &Controls,
    action: Action,
) -> Result<HttpResponse, ApiError> {
    controls
        .rate_limited(&caller.0)
        .await
        .map_err(ApiError::TooManyRequests)?;
    let name = format!("{action:?}");
    let sent_to = action.sent_to().map(str::to_owned);
    let done = actions::perform(&controls.levers(db), &caller.0, action, clock::now())
        .await
        .map_err(action_error)?;
    Ok(HttpResponse::Ok().json(json!({
        "done": name,
        "object_id": done.object_id,
        "detail": done.detail,
        "sent_to": sent_to,
    })))
}

fn page_json<T: serde::Serialize>(page: &Page<T>) -> serde_json::Value {
    json!({
        "items": page.items,
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
    })
}

fn action_error(err: ActionError) -> ApiError {
    match err {
        ActionError::NoSuchTask(_)
        | ActionError::NoSuchWorker(_)
        | ActionError::NoSuchWorkerOn { .. }
        | ActionError::NoSuchNode(_)
        | ActionError::NoSuchLot(_) => ApiError::NotFound,
        ActionError::Unreachable(_) => ApiError::Unavailable(err.to_string()),
        ActionError::NotRetriable { id, .. }
        | ActionError::NotCancellable { id, .. }
        | ActionError::MailNotFailed(id)
        | ActionError::CrawlRunning(id)
        | ActionError::LotNotCancellable { id, .. } => ApiError::Conflict {
            message: err.to_string(),
            id,
        },
        ActionError::Db(err) => err.into(),
        ActionError::Internal(err) => ApiError::Internal(err),
    }
}

fn id_of(path: &str) -> Result<i64, ApiError> {
    path.parse().map_err(|_| ApiError::NotFound)
}

pub async fn tasks(
    _: AdminCaller,
    query: web::Query<TaskFilter>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    query.check().map_err(ApiError::BadRequest)?;
    let page = queue::list(db.get_ref(), &query).await?;
    Ok(HttpResponse::Ok().json(page_json(&page)))
}

pub async fn task(
    _: AdminCaller,
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let (task, attempts) = queue::detail(db.get_ref(), id_of(&path)?)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(json!({ "task": task, "attempts": attempts })))
}

pub async fn retry(
    caller: AdminCaller,
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    act(&caller, &db, &controls, Action::RetryTask(id_of(&path)?)).await
}

pub async fn cancel(
    caller: AdminCaller,
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    act(&caller, &db, &controls, Action::CancelTask(id_of(&path)?)).await
}

pub async fn requeue_dead(
    caller: AdminCaller,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    act(&caller, &db, &controls, Action::RequeueDead).await
}

pub async fn queue(
    _: AdminCaller,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let counts: serde_json::Map<String, serde_json::Value> = queue::counts(db.get_ref())
        .await?
        .into_iter()
        .map(|(state, n)| (state, json!(n)))
        .collect();
    let paused = queue::paused(db.get_ref()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "tasks": counts,
        "paused": paused.is_some(),
        "paused_by": paused.as_ref().map(|f| f.set_by.clone()),
        "paused_at": paused.map(|f| f.set_at),
    })))
}

pub async fn pause(
    caller: AdminCaller,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    act(&caller, &db, &controls, Action::PauseQueue).await
}

pub async fn resume(
    caller: AdminCaller,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    act(&caller, &db, &controls, Action::ResumeQueue).await
}

/// An outbox row without its bodies: lists stay small.
#[derive(serde::Serialize)]
struct MailSummary {
    id: i64,
    kind: MailKind,
    recipient: String,
    subject: String,
    status: MailStatus,
    attempts: i32,
    last_error: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn mail(
    _: AdminCaller,
    query: web::Query<StatusQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let status = mail::parse_status(&query.status).map_err(ApiError::BadRequest)?;
    let page = mail::list(db.get_ref(), status, query.page.unwrap_or(1)).await?;
    let page = page.map(|m| MailSummary {
        id: m.id,
        kind: m.kind,
        recipient: m.recipient,
        subject: m.subject,
        status: m.status,
        attempts: m.attempts,
        last_error: m.last_error,
        created_at: m.created_at,
        sent_at: m.sent_at,
    });
    Ok(HttpResponse::Ok().json(page_json(&page)))
}

pub async fn retry_mail(
    caller: AdminCaller,
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    act(&caller, &db, &controls, Action::RetryMail(id_of(&path)?)).await
}

pub async fn audit(
    _: AdminCaller,
    query: web::Query<PageQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let page = audit::list(db.get_ref(), query.page.unwrap_or(1)).await?;
    Ok(HttpResponse::Ok().json(page_json(&page)))
}

/// The workers connected to every node; `unreachable` says why only this
/// node's are listed, when the bus is down.
pub async fn workers(
    _: AdminCaller,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    let fleet = controls.fleet().await?;
    Ok(HttpResponse::Ok().json(workers_body(&fleet)))
}

/// The body of the worker lists operators see: the admin API's, and the
/// public one's when an operator asks.
pub(crate) fn workers_body(fleet: &Fleet) -> serde_json::Value {
    json!({
        "workers": fleet.listed_workers(),
        "unreachable": fleet.unreachable,
    })
}

/// A worker as anyone may see it: what it is and how it is doing, not
/// where it runs (`address`) or which tasks it holds.
#[derive(Debug, serde::Serialize)]
struct PublicWorker<'a> {
    node: &'a str,
    id: u64,
    name: &'a str,
    version: &'a str,
    slots: u32,
    credits: u32,
    in_flight: usize,
    done: u64,
    failed: u64,
    scraper_restarts: u64,
    connected_at: chrono::DateTime<chrono::Utc>,
    last_heartbeat: chrono::DateTime<chrono::Utc>,
    draining: bool,
}

/// The worker list for anyone else: each worker's public fields, and
/// whether other nodes could not be listed without saying why (the bus's
/// error names hosts).
pub(crate) fn public_workers_body(fleet: &Fleet) -> serde_json::Value {
    let workers: Vec<PublicWorker<'_>> = fleet
        .workers()
        .map(|(node, w)| PublicWorker {
            node,
            id: w.id,
            name: &w.name,
            version: &w.version,
            slots: w.slots,
            credits: w.credits,
            in_flight: w.in_flight,
            done: w.done,
            failed: w.failed,
            scraper_restarts: w.scraper_restarts,
            connected_at: w.connected_at,
            last_heartbeat: w.last_heartbeat,
            draining: w.draining,
        })
        .collect();
    json!({
        "workers": workers,
        "unreachable": fleet.unreachable.as_ref().map(|_| "other nodes could not be listed"),
    })
}

/// The node a worker action names (`?node=`), this one when none.
#[derive(Debug, Deserialize)]
pub struct NodeQuery {
    node: Option<String>,
}

/// The action on the worker the path and the query name.
fn worker_action(
    bus: &dyn Bus,
    path: &str,
    query: &NodeQuery,
    action: WorkerAction,
) -> Result<Action, ApiError> {
    // Worker ids are the Dispatcher's, not the database's: a u64.
    let worker = path.parse().map_err(|_| ApiError::NotFound)?;
    let node = query.node.as_deref().filter(|n| !n.is_empty());
    Ok(Action::on_worker(bus.node(), node, worker, action))
}

pub async fn drain(
    caller: AdminCaller,
    path: web::Path<String>,
    query: web::Query<NodeQuery>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    let action = worker_action(controls.bus.as_ref(), &path, &query, WorkerAction::Drain)?;
    act(&caller, &db, &controls, action).await
}

pub async fn disconnect(
    caller: AdminCaller,
    path: web::Path<String>,
    query: web::Query<NodeQuery>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    let action = worker_action(
        controls.bus.as_ref(),
        &path,
        &query,
        WorkerAction::Disconnect,
    )?;
    act(&caller, &db, &controls, action).await
}

/// Every live node as its heartbeat describes it (this one as it is now),
/// with its workers and its members per topic.
pub async fn nodes(
    _: AdminCaller,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    let fleet = controls.fleet().await?;
    Ok(HttpResponse::Ok().json(json!({
        "this": fleet.this,
        "cluster": fleet.cluster,
        "unreachable": fleet.unreachable,
        "nodes": fleet.nodes,
    })))
}

pub async fn drain_node(
    caller: AdminCaller,
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    act(
        &caller,
        &db,
        &controls,
        Action::DrainNode(path.into_inner()),
    )
    .await
}

/// Crawls newest first, each with its tasks counted by state.
pub async fn crawls(
    _: AdminCaller,
    query: web::Query<PageQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let page = crawls::list(db.get_ref(), query.page.unwrap_or(1)).await?;
    Ok(HttpResponse::Ok().json(page_json(&page)))
}

/// One crawl, site by site: pages read and failed, why, and the first
/// failed tasks, as `/admin/crawls/{id}` shows them.
pub async fn crawl(
    _: AdminCaller,
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let detail = crawls::detail(db.get_ref(), id_of(&path)?)
        .await?
        .ok_or(ApiError::NotFound)?;
    let sites: Vec<serde_json::Value> = detail
        .sites
        .iter()
        .map(|site| {
            let mut body = json!(site);
            body["verdict"] = json!(site.verdict());
            body
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "crawl": detail.report, "sites": sites })))
}

pub async fn start_crawl(
    caller: AdminCaller,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    act(&caller, &db, &controls, Action::StartCrawl).await
}

/// Topics with members on any node or messages in the last minute.
pub async fn rooms(
    _: AdminCaller,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    let fleet = controls.fleet().await?;
    let rooms = rooms::activity(db.get_ref(), fleet.members(), clock::now()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "window_seconds": RATE_WINDOW.as_secs(),
        "rooms": rooms,
    })))
}

/// A lot in the JSON list: what admins may see, the reserve included, but
/// never the leader's hidden maximum.
#[derive(serde::Serialize)]
struct LotSummary {
    id: i64,
    title: String,
    status: LotStatus,
    currency: String,
    starts_at: chrono::DateTime<chrono::Utc>,
    /// The current end; later than `listed_ends_at` once soft close moved it.
    ends_at: chrono::DateTime<chrono::Utc>,
    listed_ends_at: chrono::DateTime<chrono::Utc>,
    /// The visible price: the starting price before the first bid.
    current_cents: i64,
    final_cents: Option<i64>,
    reserve_cents: Option<i64>,
    /// `null` when the lot has no reserve.
    reserve_met: Option<bool>,
    bid_count: u64,
    /// Once ended: `sold`, `reserve_not_met`, `no_bids` or `cancelled`.
    outcome: Option<String>,
    /// The winner's display name, once sold.
    winner: Option<String>,
}

impl LotSummary {
    fn of(listed: ListedLot) -> LotSummary {
        let reserve_met = listed.reserve_met();
        let ListedLot { lot, winner } = listed;
        LotSummary {
            id: lot.row.id,
            title: lot.row.title,
            status: lot.state.status,
            currency: lot.row.currency,
            starts_at: lot.rules.starts_at(),
            ends_at: lot.state.ends_at,
            listed_ends_at: lot.rules.ends_at(),
            current_cents: lot.state.current_cents,
            final_cents: lot.row.final_cents,
            reserve_cents: lot.rules.reserve_cents(),
            reserve_met,
            bid_count: lot.state.bid_count,
            outcome: lot.row.outcome,
            winner,
        }
    }
}

/// Every lot newest first, optionally of one status.
pub async fn lots(
    _: AdminCaller,
    query: web::Query<StatusQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let status = lots::parse_status(&query.status).map_err(ApiError::BadRequest)?;
    let page = lots::list(db.get_ref(), status, query.page.unwrap_or(1))
        .await
        .map_err(|err| ApiError::Internal(anyhow::Error::new(err).context("listing the lots")))?;
    Ok(HttpResponse::Ok().json(page_json(&page.map(LotSummary::of))))
}

pub async fn cancel_lot(
    caller: AdminCaller,
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, ApiError> {
    act(&caller, &db, &controls, Action::CancelLot(id_of(&path)?)).await
}
