//! The admin pages (`/admin/...`) and their JSON mirror (`/api/admin/...`).
//!
//! Visitors are sent to log in; accounts that are not admins get 403. Every
//! action is a CSRF-checked POST, rate-limited per admin, and leaves an
//! audit row. Task URLs and errors come from the internet, worker names
//! from the workers: templates escape them like everything else.

pub mod api;
mod auctions;
mod audit;
mod dashboard;
pub mod fleet;
mod mail;
mod page;
mod tasks;

pub(crate) use page::action_error;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use actix_web::{web, FromRequest, HttpRequest};

use super::client_addr::client_addr;
use super::error::PageError;
use super::session::{viewer, Viewer};
use super::AppState;
use crate::admin::actions::Levers;
use crate::admin::audit::Actor;

/// A logged-in admin; any other request is answered before the handler runs.
pub struct AdminViewer(pub Viewer);

impl FromRequest for AdminViewer {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<AdminViewer, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| PageError::Internal(anyhow::anyhow!("no app state")))?;
            match viewer(&req, &state).await? {
                Some(v) if v.account.is_admin => Ok(AdminViewer(v)),
                Some(_) => Err(PageError::Forbidden(
                    "Only admins can see this page.".to_owned(),
                )),
                None => {
                    let here = match req.query_string() {
                        "" => req.path().to_owned(),
                        query => format!("{}?{query}", req.path()),
                    };
                    Err(PageError::LoginRequired(here))
                }
            }
        })
    }
}

/// The client's address as the audit log records it.
fn address(req: &HttpRequest) -> Option<String> {
    client_addr(req).map(|addr| addr.to_string())
}

impl AdminViewer {
    pub fn actor(&self, req: &HttpRequest) -> Actor {
        actor_of(&self.0, req)
    }
}

/// An admin account as the audit log names it.
pub(crate) fn actor_of(admin: &Viewer, req: &HttpRequest) -> Actor {
    Actor {
        user_id: Some(admin.account.id),
        name: admin.account.name.clone(),
        address: address(req),
    }
}

/// Counts an admin action against the per-admin limit.
pub(crate) fn rate_limited(state: &AppState, actor: &Actor) -> Result<(), String> {
    state
        .admin_limit
        .hit(&actor.name, Instant::now())
        .map_err(|wait| {
            format!(
                "Too many admin actions at once; try again in {} s.",
                wait.as_secs().max(1)
            )
        })
}

/// What admin actions reach from this node.
pub(crate) fn levers(state: &AppState) -> Levers<'_> {
    Levers {
        db: &state.db,
        dispatcher: &state.dispatcher,
        scheduler: &state.scheduler,
        registry: &state.registry,
    }
}

/// Registers the admin pages and API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(dashboard::dashboard))
        .route("/admin/events", web::get().to(dashboard::events))
        .route("/admin/tasks", web::get().to(tasks::tasks))
        .route(
            "/admin/tasks/requeue-dead",
            web::get().to(tasks::requeue_confirm),
        )
        .route(
            "/admin/tasks/requeue-dead",
            web::post().to(tasks::requeue_dead),
        )
        .route("/admin/queue/pause", web::post().to(tasks::pause))
        .route("/admin/queue/resume", web::post().to(tasks::resume))
        .route("/admin/tasks/{id}", web::get().to(tasks::task))
        .route("/admin/tasks/{id}/retry", web::post().to(tasks::retry))
        .route("/admin/tasks/{id}/cancel", web::post().to(tasks::cancel))
        .route("/admin/mail", web::get().to(mail::mail))
        .route("/admin/mail/{id}/retry", web::post().to(mail::retry_mail))
        .route("/admin/audit", web::get().to(audit::audit))
        .route("/admin/workers", web::get().to(fleet::workers))
        .route("/admin/workers/{id}/drain", web::post().to(fleet::drain))
        .route(
            "/admin/workers/{id}/disconnect",
            web::post().to(fleet::disconnect),
        )
        .route("/admin/crawls", web::get().to(fleet::crawls))
        .route("/admin/crawls/start", web::post().to(fleet::start_crawl))
        .route("/admin/rooms", web::get().to(fleet::rooms))
        .route("/admin/auctions", web::get().to(auctions::lots))
        .route(
            "/admin/auctions/{id}/cancel",
            web::post().to(auctions::cancel),
        )
        .service(
            web::scope("/api/admin")
                .route("/tasks", web::get().to(api::tasks))
                .route("/tasks/requeue-dead", web::post().to(api::requeue_dead))
                .route("/tasks/{id}", web::get().to(api::task))
                .route("/tasks/{id}/retry", web::post().to(api::retry))
                .route("/tasks/{id}/cancel", web::post().to(api::cancel))
                .route("/queue", web::get().to(api::queue))
                .route("/queue/pause", web::post().to(api::pause))
                .route("/queue/resume", web::post().to(api::resume))
                .route("/mail", web::get().to(api::mail))
                .route("/mail/{id}/retry", web::post().to(api::retry_mail))
                .route("/audit", web::get().to(api::audit))
                .route("/workers", web::get().to(api::workers))
                .route("/workers/{id}/drain", web::post().to(api::drain))
                .route("/workers/{id}/disconnect", web::post().to(api::disconnect))
                .route("/crawls", web::get().to(api::crawls))
                .route("/crawls/start", web::post().to(api::start_crawl))
                .route("/rooms", web::get().to(api::rooms))
                .route("/auctions", web::get().to(api::lots))
                .route("/auctions/{id}/cancel", web::post().to(api::cancel_lot)),
        );
}
