//! `GET /ws/worker`: checks the worker token, then hands the socket to a
//! WorkerSession actor.

use actix::{Actor, AsyncContext};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::auth::has_token;
use super::AppState;
use crate::crawl::worker_session::{SessionTiming, WorkerSession, HARD_FRAME_LIMIT};
use crate::metrics::Connection;
use crate::ws::{self, OUTBOUND_CAPACITY};

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    // Refused before the upgrade: no socket for a wrong or missing token.
    if !has_token(&req, &state.worker_token) {
        return Ok(HttpResponse::Unauthorized().json(json!({
            "error": {"code": "unauthorized", "message": "a valid worker token is required (Authorization: Bearer ...)"}
        })));
    }
    let open = state.metrics.open(Connection::Worker);
    let (response, out, stream) = ws::upgrade(&req, body, OUTBOUND_CAPACITY, &state.leaving, open)?;
    let stream = stream
        .max_frame_size(HARD_FRAME_LIMIT)
        .aggregate_continuations()
        .max_continuation_size(HARD_FRAME_LIMIT);
    let peer = req
        .connection_info()
        .realip_remote_addr()
        .unwrap_or("unknown")
        .to_owned();
    let timing = SessionTiming {
        heartbeat: state.settings.workers.heartbeat,
        lease: state.settings.workers.lease,
    };
    let worker = WorkerSession::new(
        state.dispatcher.clone(),
        state.merger.clone(),
        state.sites.clone(),
        out,
        peer,
        timing,
    );
    WorkerSession::create(|ctx| {
        ctx.add_stream(stream);
        worker
    });
    Ok(response)
}
