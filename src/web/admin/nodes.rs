//! `/admin/nodes`: every live node of the cluster (one, on a single node)
//! as its heartbeat describes it, and **Drain node**, which tells a node
//! over the bus to take no new clients or workers and hand over what it
//! has. A node that dies drops off within `nodes::NODE_TTL`.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use super::page::{act, frame, Frame, SentQuery};
use super::AdminViewer;
use crate::admin::actions::Action;
use crate::bus::nodes::NODE_TTL;
use crate::bus::NodeInfo;
use crate::clock;
use crate::web::admin::Controls;
use crate::web::auctions::span;
use crate::web::error::PageError;
use crate::web::session::{CsrfForm, MaybeViewer};
use crate::web::{html, Nav};

#[derive(Template)]
#[template(path = "admin/nodes.html")]
struct NodesPage {
    nav: Nav,
    frame: Frame,
    /// The node a drain went to.
    sent: Option<String>,
    /// Why only this node is listed.
    unreachable: Option<String>,
    /// Seconds a stopped node stays listed, at most.
    ttl: u64,
    nodes: Vec<NodeRow>,
}

pub struct NodeRow {
    pub id: String,
    /// The node that serves the page.
    pub this: bool,
    pub address: String,
    pub started: String,
    pub uptime: String,
    pub version: String,
    pub clients: u64,
    pub rooms: u64,
    pub workers: usize,
    pub scheduler: bool,
    pub draining: bool,
}

impl NodeRow {
    fn from(node: &NodeInfo, this: &str, now: DateTime<Utc>) -> NodeRow {
        let started = DateTime::parse_from_rfc3339(&node.started_at).ok();
        NodeRow {
            id: node.id.clone(),
            this: node.id == this,
            address: node.address.clone(),
            started: node.started_at.clone(),
            uptime: started.map_or_else(String::new, |t| span(now - t.with_timezone(&Utc))),
            version: node.version.clone(),
            clients: node.clients,
            rooms: node.rooms,
            workers: node.workers.len(),
            scheduler: node.scheduler,
            draining: node.draining,
        }
    }
}

pub async fn nodes(
    admin: AdminViewer,
    query: web::Query<SentQuery>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let fleet = controls.fleet().await?;
    let now = clock::now();
    let body = NodesPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "nodes"),
        sent: query.into_inner().sent,
        nodes: fleet
            .nodes
            .iter()
            .map(|n| NodeRow::from(n, &fleet.this, now))
            .collect(),
        unreachable: fleet.unreachable,
        ttl: NODE_TTL.as_secs(),
    }
    .render()?;
    Ok(html(body))
}

pub async fn drain(
    req: HttpRequest,
    admin: AdminViewer,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let action = Action::DrainNode(path.into_inner());
    act(
        &req,
        &admin,
        &db,
        &controls,
        &form.csrf,
        action,
        "/admin/nodes",
    )
    .await
}
