//! The admin dashboard (`/admin`) and its live updates (`/admin/events`): the
//! database's snapshot, which every node shares, beside what each node
//! knows of its own, its workers, client connections and rooms, put
//! together for the cluster (`admin::fleet`).

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::{future, StreamExt};
use sea_orm::DatabaseConnection;
use serde::Serialize;

use super::page::{frame, Frame};
use super::AdminViewer;
use crate::accounts::store;
use crate::admin::dashboard::{self, Bar, Snapshot};
use crate::admin::fleet::Fleet;
use crate::bus::NodeWorker;
use crate::clock;
use crate::domain::topic::Topic;
use crate::web::admin::Controls;
use crate::web::error::PageError;
use crate::web::session::Accounts;
use crate::web::session::{MaybeViewer, SESSION_COOKIE};
use crate::web::{html, Nav};
use crate::ws::Leaving;

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    nav: Nav,
    frame: Frame,
    now: Snapshot,
    bars: Vec<Bar>,
    chart_width: u64,
    chart_height: u64,
    /// Whether rows name their node: in a cluster.
    cluster: bool,
    /// Every node's workers, each with its node.
    workers: Vec<(String, NodeWorker)>,
    /// Why only this node's workers are shown, when the bus is down.
    unreachable: Option<String>,
    node: NodeActivity,
}

/// What the nodes know, beside the database's snapshot: their sockets and
/// their rooms, added up over every node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeActivity {
    /// `/ws` connections: browsers and `bazaar chat`.
    pub clients: u64,
    /// Chat rooms and lots with members here.
    pub chat_rooms: usize,
    pub auction_rooms: usize,
    /// Memberships over all of them (one connection may be in several).
    pub members: usize,
}

impl NodeActivity {
    /// The rows the dashboard's table shows and the live updates refresh.
    pub fn rows(&self) -> [(&'static str, &'static str, u64); 4] {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        [
            ("clients", "Client connections", self.clients),
            ("chat_rooms", "Chat rooms", count(self.chat_rooms)),
            ("auction_rooms", "Auction rooms", count(self.auction_rooms)),
            ("members", "Room members", count(self.members)),
        ]
    }
}

impl NodeActivity {
    /// Every node's, together: a room with members on several nodes counts
    /// once.
    fn of(fleet: &Fleet) -> NodeActivity {
        let topics = fleet.members();
        let chat = |topic: &&&str| matches!(Topic::parse(topic), Ok(Topic::Chat(_)));
        let chat_rooms = topics.keys().filter(chat).count();
        let members: u64 = topics.values().flat_map(|nodes| nodes.values()).sum();
        NodeActivity {
            clients: fleet.clients(),
            chat_rooms,
            auction_rooms: topics.len() - chat_rooms,
            members: usize::try_from(members).unwrap_or(usize::MAX),
        }
    }
}

pub async fn dashboard(
    admin: AdminViewer,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let now = dashboard::snapshot(db.get_ref(), clock::now()).await?;
    let fleet = controls.fleet().await?;
    let node = NodeActivity::of(&fleet);
    let workers = fleet
        .workers()
        .map(|(node, w)| (node.to_owned(), w.clone()))
        .collect();
    let body = DashboardPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "dashboard"),
        bars: dashboard::bars(&now.throughput),
        chart_width: dashboard::CHART_WIDTH,
        chart_height: dashboard::CHART_HEIGHT,
        now,
        cluster: fleet.cluster,
        workers,
        unreachable: fleet.unreachable.clone(),
        node,
    }
    .render()?;
    Ok(html(body))
}

/// `GET /admin/events`: a dashboard snapshot every second as server-sent
/// events, until the page goes away, the server shuts down, or the viewer
/// is no longer an admin. Each carries the database's snapshot, which is
/// the cluster's, and every node's workers and rooms, so the page shows
/// the whole cluster whichever node serves it.
///
/// Each tick looks the login session up again: a logout, an expired
/// session or admin rights taken away end the stream within a second,
/// and the page's EventSource, reconnecting, is turned away.
pub async fn events(
    _: AdminViewer,
    req: HttpRequest,
    db: web::Data<DatabaseConnection>,
    accounts: web::Data<Accounts>,
    leaving: web::Data<Leaving>,
    controls: web::Data<Controls>,
) -> HttpResponse {
    // AdminViewer found the session through this cookie; without one the
    // first tick finds no session and the stream ends.
    let cookie = req
        .cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let ticks = tokio_stream_interval(Duration::from_secs(1));
    let stream = ticks
        .then(move |()| {
            let (db, accounts, controls, cookie) = (
                db.clone(),
                accounts.clone(),
                controls.clone(),
                cookie.clone(),
            );
            async move { tick(&db, &accounts, &controls, &cookie).await }
        })
        .take_while(|frame| future::ready(frame.is_some()))
        .filter_map(|frame| future::ready(frame.map(Ok::<_, actix_web::Error>)))
        .take_until(async move { leaving.cancelled().await });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // Compression would hold events back until a buffer fills.
        .insert_header(actix_web::http::header::ContentEncoding::Identity)
        .streaming(stream)
}

/// One tick's frame, or `None` to end the stream: the session behind
/// `cookie` is over, or its account is no longer an admin.
async fn tick(
    db: &DatabaseConnection,
    accounts: &Accounts,
    controls: &Controls,
    cookie: &str,
) -> Option<web::Bytes> {
    let session = store::session(db, &accounts.key, cookie, clock::now()).await;
    match session {
        Ok(Some(live)) if live.account.is_admin => {}
        Ok(_) => return None,
        // Nothing is sent that the session check did not allow; the
        // connection stays open (a comment line) and the next tick looks
        // again.
        Err(err) => {
            tracing::warn!(error = %err, "dashboard events could not check the session");
            return Some(web::Bytes::from_static(b": session check failed\n\n"));
        }
    }
    let snapshot = dashboard::snapshot(db, clock::now()).await;
    let fleet = controls.fleet().await.ok();
    Some(match snapshot {
        Ok(snapshot) => format!("data: {}\n\n", event(&snapshot, fleet.as_ref())).into(),
        // A comment line keeps the connection open; the next tick tries
        // again.
        Err(err) => {
            tracing::warn!(error = %err, "dashboard snapshot failed");
            web::Bytes::from_static(b": snapshot failed\n\n")
        }
    })
}

/// One event's data. Without `fleet` (this node's actors did not answer)
/// the fleet's fields are null and the page keeps what it shows.
fn event(snapshot: &Snapshot, fleet: Option<&Fleet>) -> serde_json::Value {
    serde_json::json!({
        "snapshot": snapshot,
        "cluster": fleet.map(|f| f.cluster),
        "workers": fleet.map(Fleet::listed_workers),
        "unreachable": fleet.and_then(|f| f.unreachable.as_deref()),
        "node": fleet.map(NodeActivity::of),
    })
}

/// A tick now and then every `every`.
fn tokio_stream_interval(every: Duration) -> impl futures_util::Stream<Item = ()> {
    futures_util::stream::unfold(tokio::time::interval(every), |mut interval| async move {
        interval.tick().await;
        Some(((), interval))
    })
}
