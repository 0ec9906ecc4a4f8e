//! `/healthz`: whether this node can reach its database and, in a cluster,
//! the bus. A node cut off from the bus answers 503, so that a load
//! balancer that checks it sends new clients elsewhere; its own members'
//! rooms keep working meanwhile. A node handing over (`handover.rs`)
//! answers 503 too, with status `draining`.

use actix_web::{web, HttpResponse};
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::AppState;
use crate::bus::BusState;

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let node = state.bus.node().to_string();
    let bus = state.bus.state();
    let draining = state.leaving.is_cancelled();
    match state.db.execute_unprepared("SELECT 1").await {
        Ok(_) if draining => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "draining", "node": node, "database": "ok", "bus": bus})),
        Ok(_) if bus == BusState::Down => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "error", "node": node, "database": "ok", "bus": bus})),
        Ok(_) => HttpResponse::Ok()
            .json(json!({"status": "ok", "node": node, "database": "ok", "bus": bus})),
        Err(err) => {
            tracing::error!(error = %err, "health check failed");
            HttpResponse::ServiceUnavailable().json(
                json!({"status": "error", "node": node, "database": "unreachable", "bus": bus}),
            )
        }
    }
}
