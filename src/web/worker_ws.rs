//! `GET /ws/worker`: checks the worker token, then hands the socket to a
//! WorkerSession actor.

use actix::AsyncContext;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::has_token;
use super::client_addr::client_addr;
use super::AppState;
use crate::crawl::worker_session::{SessionTiming, WorkerSession, HARD_FRAME_LIMIT};
use crate::metrics::Connection;
use crate::protocol::{ErrorCode, Refusal};
use crate::ws::{self, Door, Limits};

pub async fn upgrade(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    // Refused before the upgrade: no socket for a wrong or missing token.
    if !has_token(&req, &state.worker_token) {
        let refusal = Refusal::new(
            ErrorCode::Unauthorized,
            "a valid worker token is required (Authorization: Bearer ...)",
        );
        return HttpResponse::Unauthorized().json(refusal.http_body());
    }
    let open = state.metrics.open(Connection::Worker);
    let limits = Limits {
        max_queued_bytes: state.ws.max_queued_bytes,
        max_message: HARD_FRAME_LIMIT,
        message_timeout: state.ws.message_timeout,
    };
    let client = client_addr(&req);
    let peer = client.map_or_else(|| "unknown".to_owned(), |addr| addr.to_string());
    let timing = SessionTiming {
        heartbeat: state.settings.workers.heartbeat,
        lease: state.settings.workers.lease,
    };
    let (dispatcher, merger, sites) = (
        state.dispatcher.clone(),
        state.merger.clone(),
        state.sites.clone(),
    );
    let door = Door {
        leaving: &state.leaving,
        sockets: &state.sockets,
        client,
    };
    ws::accept(&req, limits, door, open, move |out, incoming| {
        let worker = WorkerSession::new(dispatcher, merger, sites, out, peer, timing);
        crate::supervision::start_session(|ctx| {
            ctx.add_stream(incoming);
            worker
        });
    })
}
