//! The admin dashboard (`/admin`) and its live updates (`/admin/events`): the
//! database's snapshot, which every node shares, beside what each node
//! knows of its own, its workers, client connections and rooms, put
//! together for the cluster (`admin::fleet`).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde::Serialize;

use super::page::{frame, Frame};
use super::{fleet_of, AdminViewer};
use crate::admin::dashboard::{self, Bar, Snapshot};
use crate::admin::fleet::Fleet;
use crate::bus::NodeWorker;
use crate::domain::topic::Topic;
use crate::web::error::PageError;
use crate::web::session::MaybeViewer;
use crate::web::{html, AppState, Nav};

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
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let now = dashboard::snapshot(&state.db, state.clock.now()).await?;
    let fleet = fleet_of(&state).await?;
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
/// events, until the page goes away or the server shuts down. Each carries
/// the database's snapshot, which is the cluster's, and every node's
/// workers and rooms, so the page shows the whole cluster whichever node
/// serves it.
pub async fn events(_: AdminViewer, state: web::Data<AppState>) -> HttpResponse {
    let leaving = state.leaving.clone();
    let ticks = tokio_stream_interval(Duration::from_secs(1));
    let stream = ticks
        .then(move |()| {
            let state = state.clone();
            async move {
                let snapshot = dashboard::snapshot(&state.db, state.clock.now()).await;
                let fleet = fleet_of(&state).await.ok();
                let frame = match snapshot {
                    Ok(snapshot) => format!("data: {}\n\n", event(&snapshot, fleet.as_ref())),
                    // A comment line keeps the connection open; the next
                    // tick tries again.
                    Err(err) => {
                        tracing::warn!(error = %err, "dashboard snapshot failed");
                        ": snapshot failed\n\n".to_owned()
                    }
                };
                Ok::<_, actix_web::Error>(web::Bytes::from(frame))
            }
        })
        .take_until(async move { leaving.cancelled().await });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // Compression would hold events back until a buffer fills.
        .insert_header(actix_web::http::header::ContentEncoding::Identity)
        .streaming(stream)
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
