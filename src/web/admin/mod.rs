//! The admin pages (`/admin/...`) and their JSON mirror (`/api/admin/...`).
//!
//! Visitors are sent to log in; accounts that are not admins get 403. Every
//! action is a CSRF-checked POST, rate-limited per admin, and leaves an
//! audit row. Task URLs and errors come from the internet, worker names
//! from the workers: templates escape them like everything else.

pub mod api;
mod auctions;
mod audit;
mod crawl;
mod dashboard;
pub mod fleet;
mod mail;
mod nodes;
mod page;
mod storage;
mod tasks;

pub(crate) use page::action_error;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use std::sync::Arc;

use actix::Addr;
use actix_web::{web, FromRequest, HttpRequest};
use sea_orm::DatabaseConnection;

use super::client_addr::client_addr;
use super::error::{Limited, PageError};
use super::part;
use super::session::{viewer, Accounts, Viewer};
use crate::admin::actions::Levers;
use crate::admin::audit::Actor;
use crate::admin::fleet::{Fleet, Live, VERSION};
use crate::bus::{Bus, NodeInfo};
use crate::crawl::dispatcher::Dispatcher;
use crate::crawl::scheduler::Scheduler;
use crate::metrics::Metrics;
use crate::rooms::registry::RoomRegistry;
use crate::web::rate::RateLimit;
use crate::ws::Leaving;

/// The window admin actions are counted in.
const ACTION_WINDOW: Duration = Duration::from_secs(60);

/// What the admin pages and API reach of this node besides the database:
/// the levers of its actions, the rate limit on them, and the fleet's
/// live view.
pub struct Controls {
    pub bus: Arc<dyn Bus>,
    pub dispatcher: Addr<Dispatcher>,
    pub scheduler: Addr<Scheduler>,
    pub registry: Addr<RoomRegistry>,
    pub metrics: Arc<Metrics>,
    pub leaving: Leaving,
    /// Admin actions per admin (or the API token) and minute, counted on
    /// this node alone while the bus cannot count for the cluster.
    pub limit: Arc<RateLimit>,
    /// `accounts.admin_actions_per_minute`, at least 1.
    pub per_minute: u64,
    /// `server.bind`: what this node is called before the bus has heard of it.
    pub bind: String,
}

impl Controls {
    /// Counts an admin action against the per-admin limit, on every node
    /// together: an admin who spreads actions over the nodes (nginx does, on
    /// its own) gets the same limit as on one. With the bus down, each node
    /// counts alone rather than refuse admins when they may be needed most.
    pub(crate) async fn rate_limited(&self, actor: &Actor) -> Result<(), Limited> {
        let key = format!("admin:{}", actor.name);
        let wait = match self.bus.count_hit(&key, ACTION_WINDOW).await {
            Ok(hits) => (hits.count > self.per_minute).then_some(hits.resets_in),
            Err(err) => {
                tracing::warn!(error = %err, "admin actions are counted on this node alone");
                self.limit.hit(&actor.name, Instant::now()).err()
            }
        };
        match wait {
            None => Ok(()),
            Some(wait) => Err(Limited {
                message: format!(
                    "Too many admin actions at once; try again in {} s.",
                    wait.as_secs().max(1)
                ),
                wait,
            }),
        }
    }

    /// Every live node with its workers, connections and rooms: this one as
    /// it is now, the others as their last heartbeat described them.
    pub(crate) async fn fleet(&self) -> anyhow::Result<Fleet> {
        let live = Live::read(
            &self.dispatcher,
            &self.registry,
            &self.metrics,
            &self.leaving,
        )
        .await?;
        let listed = self.bus.nodes().await;
        // What this node is called before the bus has heard of it.
        let fallback = NodeInfo {
            id: self.bus.node().to_string(),
            address: self.bind.clone(),
            version: VERSION.to_owned(),
            ..NodeInfo::default()
        };
        Ok(Fleet::assemble(listed, fallback, live, self.bus.shared()))
    }

    /// What admin actions reach from this node.
    pub(crate) fn levers<'a>(&'a self, db: &'a DatabaseConnection) -> Levers<'a> {
        Levers {
            db,
            bus: self.bus.as_ref(),
            dispatcher: &self.dispatcher,
            scheduler: &self.scheduler,
            registry: &self.registry,
        }
    }
}

/// A logged-in admin; any other request is answered before the handler runs.
pub struct AdminViewer(pub Viewer);

impl FromRequest for AdminViewer {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<AdminViewer, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let db = part::<DatabaseConnection>(&req).map_err(PageError::Internal)?;
            let accounts = part::<Accounts>(&req).map_err(PageError::Internal)?;
            match viewer(&req, &db, &accounts).await? {
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
        .route("/admin/storage", web::get().to(storage::storage))
        .route("/admin/workers", web::get().to(fleet::workers))
        .route("/admin/workers/{id}/drain", web::post().to(fleet::drain))
        .route(
            "/admin/workers/{id}/disconnect",
            web::post().to(fleet::disconnect),
        )
        .route("/admin/crawls", web::get().to(fleet::crawls))
        .route("/admin/crawls/start", web::post().to(fleet::start_crawl))
        .route("/admin/crawls/{id}", web::get().to(crawl::crawl))
        .route("/admin/rooms", web::get().to(fleet::rooms))
        .route("/admin/nodes", web::get().to(nodes::nodes))
        .route("/admin/nodes/{id}/drain", web::post().to(nodes::drain))
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
                .route("/crawls/{id}", web::get().to(api::crawl))
                .route("/rooms", web::get().to(api::rooms))
                .route("/nodes", web::get().to(api::nodes))
                .route("/nodes/{id}/drain", web::post().to(api::drain_node))
                .route("/auctions", web::get().to(api::lots))
                .route("/auctions/{id}/cancel", web::post().to(api::cancel_lot)),
        );
}
