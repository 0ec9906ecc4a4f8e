//! `/healthz`: whether this node can reach its database and, in a cluster,
//! the bus. A node cut off from the bus answers 503, so that a load
//! balancer that checks it sends new clients elsewhere; its own members'
//! rooms keep working meanwhile. A node handing over (`handover.rs`)
//! answers 503 too, with status `draining`.

use actix_web::{web, HttpResponse};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::json;

use crate::bus::{Bus, BusState};
use crate::ws::Leaving;

pub async fn healthz(
    db: web::Data<DatabaseConnection>,
    bus: web::Data<dyn Bus>,
    leaving: web::Data<Leaving>,
) -> HttpResponse {
    let node = bus.node().to_string();
    let bus = bus.state();
    let draining = leaving.is_cancelled();
    match db.execute_unprepared("SELECT 1").await {
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
