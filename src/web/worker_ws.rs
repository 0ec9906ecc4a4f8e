//! `GET /ws/worker`: checks the worker token, then hands the socket to a
//! WorkerSession actor.

use actix::{Addr, AsyncContext};
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::{has_token, WorkerToken};
use super::client_addr::client_addr;
use super::Admission;
use crate::config::Settings;
use crate::crawl::dispatcher::Dispatcher;
use crate::crawl::merger::Merger;
use crate::crawl::sites::Sites;
use crate::crawl::worker_session::{SessionTiming, WorkerSession, HARD_FRAME_LIMIT};
use crate::metrics::Connection;
use crate::protocol::{ErrorCode, Refusal};
use crate::ws::{self, Limits};

pub async fn upgrade(
    req: HttpRequest,
    token: web::Data<WorkerToken>,
    admission: web::Data<Admission>,
    settings: web::Data<Settings>,
    dispatcher: web::Data<Addr<Dispatcher>>,
    merger: web::Data<Addr<Merger>>,
    sites: web::Data<Sites>,
) -> HttpResponse {
    // Refused before the upgrade: no socket for a wrong or missing token.
    if !has_token(&req, &token.0) {
        let refusal = Refusal::new(
            ErrorCode::Unauthorized,
            "a valid worker token is required (Authorization: Bearer ...)",
        );
        return HttpResponse::Unauthorized().json(refusal.http_body());
    }
    let open = admission.metrics.open(Connection::Worker);
    let limits = Limits {
        max_queued_bytes: admission.ws.max_queued_bytes,
        max_message: HARD_FRAME_LIMIT,
        message_timeout: admission.ws.message_timeout,
    };
    let client = client_addr(&req);
    let peer = client.map_or_else(|| "unknown".to_owned(), |addr| addr.to_string());
    let timing = SessionTiming {
        heartbeat: settings.workers.heartbeat,
        lease: settings.workers.lease,
    };
    let (dispatcher, merger, sites) = (
        dispatcher.get_ref().clone(),
        merger.get_ref().clone(),
        sites.into_inner(),
    );
    ws::accept(
        &req,
        limits,
        admission.door(client),
        open,
        move |out, incoming| {
            let worker = WorkerSession::new(dispatcher, merger, sites, out, peer, timing);
            crate::supervision::start_session(|ctx| {
                ctx.add_stream(incoming);
                worker
            });
        },
    )
}
