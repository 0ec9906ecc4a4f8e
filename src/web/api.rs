//! The JSON API: crawls, games, the cluster's workers, and the demo stores'
//! price seed.
//! Reads are public (the workers' addresses excepted); writes need the API
//! token.

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::json;

use super::admin::api::{public_workers_body, workers_body};
use super::admin::Controls;
use super::auth::{has_token, ApiToken};
use super::error::ApiError;
use super::session::{viewer, Accounts};
use crate::crawl::browse::{self, Sort};
use crate::crawl::scheduler::{Scheduler, StartCrawl};
use crate::crawl::store::{self, StartOutcome};
use crate::demo::DemoState;

fn authorize(req: &HttpRequest, token: &ApiToken) -> Result<(), ApiError> {
    if has_token(req, &token.0) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// `POST /api/crawls` → `{"id":N}`; 409 with the running crawl's id if one runs.
pub async fn create_crawl(
    req: HttpRequest,
    token: web::Data<ApiToken>,
    scheduler: web::Data<Addr<Scheduler>>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &token)?;
    let outcome = scheduler
        .send(StartCrawl { trigger: "api" })
        .await
        // It failed on this request and has restarted: asking again works.
        .map_err(|_| ApiError::Unavailable("the scheduler restarted; try again".into()))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    match outcome {
        StartOutcome::Started(id) => Ok(HttpResponse::Created().json(json!({"id": id}))),
        StartOutcome::AlreadyRunning(id) => Err(ApiError::Conflict {
            message: format!("crawl {id} is still running; one crawl runs at a time"),
            id,
        }),
    }
}

/// `GET /api/crawls/{id}`: status, counts by task state, times.
pub async fn show_crawl(
    path: web::Path<i64>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let report = store::crawl_report(db.get_ref(), path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /api/crawls/latest`: the newest crawl, for progress displays.
pub async fn latest_crawl(db: web::Data<DatabaseConnection>) -> Result<HttpResponse, ApiError> {
    let latest = store::latest_crawl(db.get_ref())
        .await?
        .ok_or(ApiError::NotFound)?;
    let report = store::crawl_report(db.get_ref(), latest.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Debug, Deserialize)]
pub struct GamesQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sort: String,
    pub page: Option<u64>,
}

impl GamesQuery {
    pub fn sort(&self) -> Result<Sort, String> {
        Sort::parse(&self.sort)
            .ok_or_else(|| format!("sort must be name, price or discount, not {:?}", self.sort))
    }
}

/// `GET /api/games?q=&sort=&page=`.
pub async fn list_games(
    query: web::Query<GamesQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let sort = query.sort().map_err(ApiError::BadRequest)?;
    let page = browse::list_games(db.get_ref(), &query.q, sort, query.page.unwrap_or(1)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /api/games/{id}`: the game with its offers and price history.
pub async fn show_game(
    path: web::Path<i64>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let detail = browse::game_detail(db.get_ref(), path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(detail))
}

/// `GET /api/workers`: the workers connected to every node of the cluster
/// and their counters, each with its `node`: whichever node nginx picks, a
/// script sees the whole fleet. With the API token or an admin's session
/// it is `/api/admin/workers`' list; anyone else sees no addresses, tasks
/// or bus errors.
pub async fn list_workers(
    req: HttpRequest,
    controls: web::Data<Controls>,
    token: web::Data<ApiToken>,
    db: web::Data<DatabaseConnection>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let fleet = controls.fleet().await?;
    let body = if is_operator(&req, &token, &db, &accounts).await? {
        workers_body(&fleet)
    } else {
        public_workers_body(&fleet)
    };
    Ok(HttpResponse::Ok().json(body))
}

/// Whether the caller shows the API token or an admin's session cookie.
async fn is_operator(
    req: &HttpRequest,
    token: &ApiToken,
    db: &DatabaseConnection,
    accounts: &Accounts,
) -> Result<bool, ApiError> {
    if has_token(req, &token.0) {
        return Ok(true);
    }
    let viewer = viewer(req, db, accounts)
        .await
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("{err}")))?;
    Ok(viewer.is_some_and(|v| v.account.is_admin))
}

#[derive(Debug, Deserialize)]
pub struct SeedBody {
    pub seed: u64,
}

/// `POST /api/demo/seed {"seed":N}`: changes the demo stores' prices.
pub async fn set_demo_seed(
    req: HttpRequest,
    token: web::Data<ApiToken>,
    demo: web::Data<DemoState>,
    body: web::Json<SeedBody>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &token)?;
    demo.set_seed(body.seed);
    tracing::info!(seed = body.seed, "demo store prices changed");
    Ok(HttpResponse::Ok().json(json!({"seed": body.seed})))
}
