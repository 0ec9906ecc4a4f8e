//! The cluster through HTTP: `GET /api/nodes` lists the live nodes, and
//! `POST /api/rooms/{topic}/events` lets another service post a message
//! into a chat room, as a member's is (docs/protocol.md §3).

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::admin::api::AdminCaller;
use super::auth::{has_token, ApiToken};
use super::error::ApiError;
use crate::bus::Bus;
use crate::config::ChatSettings;
use crate::rooms::registry::{inbound_post, PostError, RoomRegistry};
use crate::rooms::room::RoomError;

/// `GET /api/nodes` (the API token or an admin session): every live node,
/// as it last described itself; on a single node, that node.
pub async fn nodes(_: AdminCaller, bus: web::Data<dyn Bus>) -> Result<HttpResponse, ApiError> {
    let mut nodes = bus.nodes().await.map_err(|err| {
        ApiError::Unavailable(format!("the node list is on the bus, which is down: {err}"))
    })?;
    nodes.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(HttpResponse::Ok().json(json!({
        "this": bus.node().to_string(),
        "bus": bus.state(),
        "nodes": nodes,
    })))
}

#[derive(Deserialize)]
pub struct PostedEvent {
    user: String,
    text: String,
}

/// `POST /api/rooms/{topic}/events` with the API token and
/// `{"user":"...","text":"..."}`: the message is numbered, stored and
/// delivered to the room's members on every node; 201 with its id and seq.
pub async fn post_event(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<PostedEvent>,
    token: web::Data<ApiToken>,
    chat: web::Data<ChatSettings>,
    registry: web::Data<Addr<RoomRegistry>>,
) -> Result<HttpResponse, ApiError> {
    if !has_token(&req, &token.0) {
        return Err(ApiError::Unauthorized);
    }
    let post =
        inbound_post(&path, &body.user, &body.text, chat.max_text).map_err(ApiError::BadRequest)?;
    let said = registry
        .send(post)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|err| match err {
            PostError::Room(RoomError::Cut) => ApiError::Unavailable(err.to_string()),
            err => ApiError::Internal(err.into()),
        })?;
    Ok(HttpResponse::Created().json(json!({"id": said.id, "seq": said.seq})))
}
