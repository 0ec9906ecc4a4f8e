//! The JSON API: crawls, games, the cluster's workers, and the demo stores'
//! price seed.
//! Reads are public (the workers' addresses excepted); writes need the API
//! token.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::admin::api::{public_workers_body, workers_body};
use super::admin::fleet_of;
use super::auth::has_token;
use super::error::ApiError;
use super::session::viewer;
use super::AppState;
use crate::crawl::browse::{self, Sort};
use crate::crawl::scheduler::StartCrawl;
use crate::crawl::store::{self, StartOutcome};
use crate::demo::DemoState;

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if has_token(req, &state.api_token) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// `POST /api/crawls` → `{"id":N}`; 409 with the running crawl's id if one runs.
pub async fn create_crawl(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let outcome = state
        .scheduler
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
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let report = store::crawl_report(&state.db, path.into_inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /api/crawls/latest`: the newest crawl, for progress displays.
pub async fn latest_crawl(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let latest = store::latest_crawl(&state.db)
        .await?
        .ok_or(ApiError::NotFound)?;
    let report = store::crawl_report(&state.db, latest.id)
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
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sort = query.sort().map_err(ApiError::BadRequest)?;
    let page = browse::list_games(&state.db, &query.q, sort, query.page.unwrap_or(1)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /api/games/{id}`: the game with its offers and price history.
pub async fn show_game(
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let detail = browse::game_detail(&state.db, path.into_inner())
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
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let fleet = fleet_of(&state).await?;
    let body = if is_operator(&req, &state).await? {
        workers_body(&fleet)
    } else {
        public_workers_body(&fleet)
    };
    Ok(HttpResponse::Ok().json(body))
}

/// Whether the caller shows the API token or an admin's session cookie.
async fn is_operator(req: &HttpRequest, state: &AppState) -> Result<bool, ApiError> {
    if has_token(req, &state.api_token) {
        return Ok(true);
    }
    let viewer = viewer(req, state)
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
    state: web::Data<AppState>,
    demo: web::Data<DemoState>,
    body: web::Json<SeedBody>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    demo.set_seed(body.seed);
    tracing::info!(seed = body.seed, "demo store prices changed");
    Ok(HttpResponse::Ok().json(json!({"seed": body.seed})))
}
