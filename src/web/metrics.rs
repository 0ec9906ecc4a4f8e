//! `GET /metrics`: the Prometheus scrape. It is served to loopback, where a
//! Prometheus or an agent on the same machine asks, and to anyone with the
//! API token; everyone else is refused, so that a node facing the internet
//! does not publish its figures by accident.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use entity::{bids, messages};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
};

use super::auth::{has_token, ApiToken};
use super::client_addr::client_addr;
use super::error::ApiError;
use crate::admin::{outbox, tasks};
use crate::crawl::dispatcher::{Dispatcher, ListWorkers};
use crate::db::stmt;
use crate::metrics::{Gathered, Histogram, Metrics, CONTENT_TYPE, TASK_BUCKETS};
use crate::rooms::registry::{occupied, running, ListRooms, RoomRegistry};

/// Headers a reverse proxy adds. A request carrying one came from
/// elsewhere, even when its TCP peer is a proxy on loopback.
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// `GET /metrics`
pub async fn scrape(
    req: HttpRequest,
    token: web::Data<ApiToken>,
    metrics: web::Data<Metrics>,
    db: web::Data<DatabaseConnection>,
    dispatcher: web::Data<Addr<Dispatcher>>,
    registry: web::Data<Addr<RoomRegistry>>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &token.0)?;
    let gathered = gather(&db, &dispatcher, &registry).await?;
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics.render(&gathered)))
}

/// Times a request to its response head and records it under the route
/// pattern it matched (for `App::wrap_fn`). A streamed body is not waited
/// for: a WebSocket counts until its upgrade is answered.
pub fn time_request<S, B>(
    metrics: &Arc<Metrics>,
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
{
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.match_pattern();
    let metrics = metrics.clone();
    let response = service.call(req);
    async move {
        let response = response.await;
        let status = match &response {
            Ok(response) => response.status(),
            Err(err) => err.as_response_error().status_code(),
        };
        metrics.observe_http(&method, route.as_deref(), status, started.elapsed());
        response
    }
}

fn authorize(req: &HttpRequest, api_token: &str) -> Result<(), ApiError> {
    // A token that is sent must be right, from loopback too: a wrong one
    // is a misconfigured scraper, better refused than quietly served.
    if req.headers().contains_key(header::AUTHORIZATION) {
        return if has_token(req, api_token) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        };
    }
    if from_loopback(req) {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "metrics are served to loopback only, or with the API token (Authorization: Bearer ...)"
            .to_owned(),
    ))
}

/// Whether the client is this machine and no proxy relayed the request.
/// With no proxy header the client address is the TCP peer; with one, the
/// request is refused even when a trusted proxy names a loopback client,
/// since a proxy on this machine relays the internet too.
fn from_loopback(req: &HttpRequest) -> bool {
    let relayed = PROXY_HEADERS
        .iter()
        .any(|name| req.headers().contains_key(*name));
    !relayed && client_addr(req).is_some_and(|client| client.is_loopback())
}

/// Reads what the database and this node's actors know. A scrape is whole
/// or fails: a page missing some families would pass for a healthy one.
async fn gather(
    db: &DatabaseConnection,
    dispatcher: &Addr<Dispatcher>,
    registry: &Addr<RoomRegistry>,
) -> Result<Gathered, ApiError> {
    let workers = dispatcher
        .send(ListWorkers)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let topics = registry
        .send(ListRooms)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let (chats, lots) = occupied(&topics);
    let (chat_rooms, lot_rooms) = running(&topics);
    Ok(Gathered {
        tasks: tasks::counts(db).await?,
        attempts: attempt_durations(db).await?,
        mails: outbox::counts(db).await?,
        // Those stored now and those retention removed: a counter never
        // goes down.
        messages: messages::Entity::find().count(db).await?
            + crate::retention::removed_ever(db, "messages").await?,
        bids: bids::Entity::find().count(db).await?,
        chat_topics: chats as u64,
        auction_topics: lots as u64,
        chat_rooms: chat_rooms as u64,
        auction_rooms: lot_rooms as u64,
        scraper_restarts: workers.iter().map(|w| w.scraper_restarts).sum(),
    })
}

/// How long finished task attempts took, counted into `TASK_BUCKETS` by the
/// database in one pass. Read here rather than recorded as attempts end, so
/// that every node reports the attempts of the whole cluster and a restart
/// forgets none; the price is one scan of `task_attempts` per scrape.
async fn attempt_durations(db: &impl ConnectionTrait) -> Result<Histogram, DbErr> {
    let backend = db.get_database_backend();
    let seconds = match backend {
        DatabaseBackend::Postgres => {
            "CAST(EXTRACT(EPOCH FROM finished_at - started_at) AS DOUBLE PRECISION)"
        }
        // SQLite keeps the times as RFC 3339 text, which julianday reads
        // to the millisecond.
        _ => "(julianday(finished_at) - julianday(started_at)) * 86400.0",
    };
    let cases: String = TASK_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, bound)| format!("WHEN d <= {bound} THEN {i} "))
        .collect();
    let sql = format!(
        "SELECT CAST(CASE {cases}ELSE {last} END AS BIGINT) AS bucket, COUNT(*) AS n, SUM(d) AS total \
         FROM (SELECT {seconds} AS d FROM task_attempts WHERE finished_at IS NOT NULL) AS a \
         GROUP BY 1",
        last = TASK_BUCKETS.len(),
    );
    let mut histogram = Histogram::new(TASK_BUCKETS);
    for row in db.query_all(stmt(backend, &sql, vec![])).await? {
        let bucket: i64 = row.try_get("", "bucket")?;
        let count: i64 = row.try_get("", "n")?;
        let total: f64 = row.try_get("", "total")?;
        histogram.add(
            usize::try_from(bucket).unwrap_or(0),
            u64::try_from(count).unwrap_or(0),
            total,
        );
    }
    Ok(histogram)
}
