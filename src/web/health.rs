//! `/healthz`: whether this node can reach its database.

use actix_web::{web, HttpResponse};
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::AppState;

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.execute_unprepared("SELECT 1").await {
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Err(err) => {
            tracing::error!(error = %err, "health check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "error", "database": "unreachable"}))
        }
    }
}
