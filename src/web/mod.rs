//! The HTTP side: pages, the JSON API, the worker WebSocket and static files.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod assets;
pub mod auctions;
pub mod auth;
pub mod chart;
pub mod client_addr;
pub mod cluster;
pub mod error;
pub mod games;
pub mod health;
pub mod metrics;
pub mod rate;
pub mod request_id;
pub mod rooms;
pub mod session;
pub mod subscriptions;
pub mod worker_ws;

use std::sync::Arc;

use actix::Addr;
use actix_web::{web, HttpResponse};
use sea_orm::DatabaseConnection;

use crate::config::{ChatSettings, Settings, WsSettings};
use crate::crawl::dispatcher::Dispatcher;
use crate::crawl::merger::Merger;
use crate::crawl::scheduler::Scheduler;
use crate::crawl::sites::Sites;
use crate::metrics::Metrics;
use crate::rooms::registry::RoomRegistry;

/// The node's parts the HTTP side shares. No handler takes it whole: the
/// server registers each part (and the `Admission` and admin `Controls`
/// groups) as app data of its own, and handlers extract what they use.
/// It stays one struct because the app factory, run once per worker
/// thread, registers all of it.
pub struct Parts {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub sites: Arc<Sites>,
    pub dispatcher: Addr<Dispatcher>,
    pub merger: Addr<Merger>,
    pub scheduler: Addr<Scheduler>,
    pub registry: Addr<RoomRegistry>,
    /// This node's bus: its id, and the cluster's state and nodes.
    pub bus: Arc<dyn crate::bus::Bus>,
    pub ws: Arc<WsSettings>,
    pub chat: Arc<ChatSettings>,
    pub worker_token: String,
    pub api_token: String,
    /// Cancelled when the server begins to shut down: sockets close with 1001.
    pub leaving: crate::ws::Leaving,
    /// The sockets open on this node, against its caps.
    pub sockets: Arc<crate::ws::Sockets>,
    pub accounts: Arc<session::Accounts>,
    pub subscriptions: Arc<subscriptions::Subscriptions>,
    /// Admin actions per admin (or the API token) and minute, counted on
    /// this node alone while the bus cannot count for the cluster.
    pub admin_limit: Arc<rate::RateLimit>,
    /// What only this node counts, for `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl Parts {
    /// Registers each part as app data of its own, for handlers to extract
    /// only what they use.
    pub fn register(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.db.clone()))
            .app_data(web::Data::from(self.settings.clone()))
            .app_data(web::Data::from(self.sites.clone()))
            .app_data(web::Data::new(self.dispatcher.clone()))
            .app_data(web::Data::new(self.merger.clone()))
            .app_data(web::Data::new(self.scheduler.clone()))
            .app_data(web::Data::new(self.registry.clone()))
            .app_data(web::Data::from(self.bus.clone()))
            .app_data(web::Data::from(self.chat.clone()))
            .app_data(web::Data::new(auth::WorkerToken(self.worker_token.clone())))
            .app_data(web::Data::new(auth::ApiToken(self.api_token.clone())))
            .app_data(web::Data::new(self.leaving.clone()))
            .app_data(web::Data::from(self.accounts.clone()))
            .app_data(web::Data::from(self.subscriptions.clone()))
            .app_data(web::Data::from(self.metrics.clone()))
            .app_data(web::Data::new(Admission {
                ws: self.ws.clone(),
                leaving: self.leaving.clone(),
                sockets: self.sockets.clone(),
                metrics: self.metrics.clone(),
            }))
            .app_data(web::Data::new(admin::Controls {
                bus: self.bus.clone(),
                dispatcher: self.dispatcher.clone(),
                scheduler: self.scheduler.clone(),
                registry: self.registry.clone(),
                metrics: self.metrics.clone(),
                leaving: self.leaving.clone(),
                limit: self.admin_limit.clone(),
                per_minute: u64::from(self.settings.accounts.admin_actions_per_minute.max(1)),
                bind: self.settings.server.bind.clone(),
            }));
    }
}

/// A part registered as app data (see `Parts::register`), for the
/// extractors that are not handlers' arguments themselves.
pub(crate) fn part<T: ?Sized + 'static>(
    req: &actix_web::HttpRequest,
) -> anyhow::Result<web::Data<T>> {
    req.app_data::<web::Data<T>>()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no {} in the app data", std::any::type_name::<T>()))
}

/// What a WebSocket handshake needs of the node, client's and worker's
/// alike: the socket limits, the caps and count of open sockets, whether
/// the node is leaving, and the connection gauges.
pub struct Admission {
    pub ws: Arc<WsSettings>,
    pub leaving: crate::ws::Leaving,
    pub sockets: Arc<crate::ws::Sockets>,
    pub metrics: Arc<Metrics>,
}

impl Admission {
    /// The door a socket from `client` opens through.
    pub fn door(&self, client: Option<std::net::IpAddr>) -> crate::ws::Door<'_> {
        crate::ws::Door {
            leaving: &self.leaving,
            sockets: &self.sockets,
            client,
        }
    }
}

/// What the top bar of every page shows: who is logged in, and the token
/// its log-out button carries.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    pub account: Option<crate::accounts::Account>,
    pub csrf: String,
}

impl From<&session::MaybeViewer> for Nav {
    fn from(viewer: &session::MaybeViewer) -> Nav {
        match &viewer.0 {
            Some(v) => Nav {
                account: Some(v.account.clone()),
                csrf: v.csrf.clone(),
            },
            None => Nav::default(),
        }
    }
}

/// A redirect after a POST (or to the login page).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to))
        .finish()
}

/// An error message as a sentence: `there is no task 4` → `There is no task 4.`
pub fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

pub fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(games::index))
        .route("/games/{id}", web::get().to(games::show))
        .route("/healthz", web::get().to(health::healthz))
        .route("/metrics", web::get().to(metrics::scrape))
        .route("/ws/worker", web::get().to(worker_ws::upgrade))
        .route("/ws", web::get().to(rooms::upgrade))
        .route("/login", web::get().to(accounts::login_form))
        .route("/login", web::post().to(accounts::login))
        .route("/register", web::get().to(accounts::register_form))
        .route("/register", web::post().to(accounts::register))
        .route("/logout", web::post().to(accounts::logout))
        .route("/account", web::get().to(accounts::account))
        .route("/account", web::post().to(accounts::update_account))
        .route("/subscribe", web::get().to(subscriptions::subscribe_form))
        .route("/subscribe", web::post().to(subscriptions::subscribe))
        .route(
            "/subscriptions/confirm",
            web::get().to(subscriptions::confirm_page),
        )
        .route(
            "/subscriptions/confirm",
            web::post().to(subscriptions::confirm),
        )
        .route(
            "/subscriptions/resend",
            web::post().to(subscriptions::resend),
        )
        .route(
            "/unsubscribe",
            web::get().to(subscriptions::unsubscribe_page),
        )
        .route("/unsubscribe", web::post().to(subscriptions::unsubscribe))
        .route("/rooms", web::get().to(rooms::index))
        .route("/rooms/new", web::get().to(rooms::open))
        .route("/rooms/{name}", web::get().to(rooms::show))
        .route("/auctions", web::get().to(auctions::index))
        .route("/auctions", web::post().to(auctions::create))
        .route("/auctions/new", web::get().to(auctions::new_form))
        .route("/auctions/{id}", web::get().to(auctions::show))
        .route("/auctions/{id}/edit", web::get().to(auctions::edit_form))
        .route("/auctions/{id}/edit", web::post().to(auctions::update))
        .route("/auctions/{id}/cancel", web::post().to(auctions::cancel))
        .route("/static/{path:.*}", web::get().to(assets::serve))
        // Before the `/api` scope, which would otherwise take `/api/admin`.
        .configure(admin::configure)
        .service(
            web::scope("/api")
                .route("/crawls", web::post().to(api::create_crawl))
                .route("/crawls/latest", web::get().to(api::latest_crawl))
                .route("/crawls/{id}", web::get().to(api::show_crawl))
                .route("/games", web::get().to(api::list_games))
                .route("/games/{id}", web::get().to(api::show_game))
                .route("/workers", web::get().to(api::list_workers))
                .route("/rooms/{name}/messages", web::get().to(rooms::messages))
                .route("/rooms/{topic}/events", web::post().to(cluster::post_event))
                .route("/nodes", web::get().to(cluster::nodes))
                .route("/demo/seed", web::post().to(api::set_demo_seed)),
        )
        .configure(crate::demo::configure);
}
