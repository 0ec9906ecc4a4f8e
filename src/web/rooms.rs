//! Chat on the web: `/rooms` (the list, and opening a room), `/rooms/{name}`
//! (the chat page), `GET /api/rooms/{name}/messages` (history paging), and
//! the client WebSocket `/ws`.

use std::collections::HashMap;
use std::time::Duration;

use actix::{Addr, AsyncContext};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::json;

use super::client_addr::client_addr;
use super::error::{ApiError, PageError};
use super::session::Accounts;
use super::session::MaybeViewer;
use super::{html, Admission, Nav};
use crate::bus::Bus;
use crate::clock::{self, delta};
use crate::config::{ChatSettings, Settings};
use crate::domain::topic::{RoomName, Topic};
use crate::metrics::Connection;
use crate::protocol::{ErrorCode, Refusal};
use crate::rooms::identity::{identify_guest, Identity, IdentityError};
use crate::rooms::registry::{ListRooms, RoomRegistry};
use crate::rooms::session::{ClientSession, SessionDeps};
use crate::rooms::store;
use crate::ws::Limits;

/// The most messages one history page returns.
const MAX_PAGE: usize = 200;

/// Rooms per page of `/rooms`.
const ROOMS_PER_PAGE: u64 = 50;

#[derive(Template)]
#[template(path = "rooms.html")]
struct RoomsPage {
    nav: Nav,
    rooms: Vec<RoomRow>,
    page: u64,
    pages: u64,
    /// How long an empty room stays listed, for people.
    listed_for: String,
    error: Option<String>,
    name: String,
}

struct RoomRow {
    name: String,
    members: usize,
    messages: i64,
}

/// Page `page` of the rooms list (the last one past its end): rooms with
/// members on this node, and rooms created or spoken in within
/// `chat.rooms_listed_for`.
async fn rooms_page(
    db: &DatabaseConnection,
    registry: &Addr<RoomRegistry>,
    chat: &ChatSettings,
    nav: Nav,
    page: u64,
    error: Option<String>,
    name: String,
) -> Result<String, PageError> {
    let live: HashMap<String, usize> = registry
        .send(ListRooms)
        .await
        .map_err(|e| PageError::Internal(e.into()))?
        .into_iter()
        .filter_map(|(topic, n)| match topic {
            Topic::Chat(room) if n > 0 => Some((room.to_string(), n)),
            _ => None,
        })
        .collect();
    let names: Vec<String> = live.keys().cloned().collect();
    let listed = store::Listed {
        live: &names,
        since: clock::now() - delta(chat.rooms_listed_for),
    };
    let total = store::count_listed(db, &listed).await?;
    let pages = total.div_ceil(ROOMS_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let offset = (page - 1) * ROOMS_PER_PAGE;
    let rooms = store::list_rooms(db, &listed, offset, ROOMS_PER_PAGE)
        .await?
        .into_iter()
        .map(|r| RoomRow {
            members: live.get(&r.name).copied().unwrap_or(0),
            name: r.name,
            messages: r.messages,
        })
        .collect();
    Ok(RoomsPage {
        nav,
        rooms,
        page,
        pages,
        listed_for: for_people(chat.rooms_listed_for),
        error,
        name,
    }
    .render()?)
}

/// A duration in its largest whole unit, as the rooms page says it.
fn for_people(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(unit, _)| secs >= *unit && secs.is_multiple_of(*unit))
        .map_or((secs, "second"), |(size, unit)| (secs / size, unit));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[derive(Deserialize)]
pub struct RoomsQuery {
    page: Option<u64>,
}

/// `GET /rooms?page=N`
pub async fn index(
    query: web::Query<RoomsQuery>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    registry: web::Data<Addr<RoomRegistry>>,
    chat: web::Data<ChatSettings>,
) -> Result<HttpResponse, PageError> {
    let nav = Nav::from(&viewer);
    let page = query.page.unwrap_or(1);
    Ok(html(
        rooms_page(&db, &registry, &chat, nav, page, None, String::new()).await?,
    ))
}

#[derive(Deserialize)]
pub struct OpenRoom {
    #[serde(default)]
    name: String,
}

/// `GET /rooms/new?name=` → the room, or the list again with the reason.
pub async fn open(
    query: web::Query<OpenRoom>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    registry: web::Data<Addr<RoomRegistry>>,
    chat: web::Data<ChatSettings>,
) -> Result<HttpResponse, PageError> {
    let raw = query.into_inner().name;
    match RoomName::parse(raw.trim()) {
        Ok(room) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/rooms/{room}")))
            .finish()),
        Err(reason) => {
            let body = rooms_page(
                &db,
                &registry,
                &chat,
                Nav::from(&viewer),
                1,
                Some(reason),
                raw,
            )
            .await?;
            Ok(HttpResponse::BadRequest()
                .content_type("text/html; charset=utf-8")
                .body(body))
        }
    }
}

#[derive(Template)]
#[template(path = "room.html")]
struct RoomPage {
    nav: Nav,
    name: String,
    topic: String,
    user: Option<String>,
    /// `chat.stun_urls` as a JSON list, for the page's direct conversations.
    stun_urls: String,
}

/// `GET /rooms/{name}`: the chat page; the room exists once someone joins.
pub async fn show(
    path: web::Path<String>,
    viewer: MaybeViewer,
    settings: web::Data<Settings>,
) -> Result<HttpResponse, PageError> {
    let room = RoomName::parse(&path).map_err(|_| PageError::NotFound)?;
    let page = RoomPage {
        topic: Topic::Chat(room.clone()).to_string(),
        name: room.to_string(),
        user: viewer.account().map(|a| a.display_name.clone()),
        nav: Nav::from(&viewer),
        stun_urls: json!(settings.chat.stun_urls).to_string(),
    };
    Ok(html(page.render()?))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/rooms/{name}/messages?before=SEQ&limit=N`: older messages,
/// oldest first.
pub async fn messages(
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&path).map_err(ApiError::BadRequest)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let before = query.before.unwrap_or(u64::MAX >> 1);
    let topic = Topic::Chat(room).to_string();
    let (rows, has_more) = store::before(db.get_ref(), &topic, before, limit)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let messages: Vec<_> = rows.iter().map(store::view).collect();
    Ok(HttpResponse::Ok().json(json!({ "messages": messages, "has_more": has_more })))
}

/// Whether a browser page at `origin` may open a socket here. Clients that
/// are not browsers send no Origin, and cross-site hijacking needs one.
fn origin_allowed(req: &HttpRequest, settings: &Settings) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let own = url::Url::parse(&settings.server.public_url)
        .map(|u| u.origin().ascii_serialization())
        .ok();
    own.as_deref() == Some(origin)
        || settings
            .server
            .origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
}

/// `GET /ws`: checks the origin and who is connecting, then hands the
/// socket to a ClientSession actor.
// The handshake checks the origin and the session, then wires the session
// to the rooms: each argument is a part it uses.
#[allow(clippy::too_many_arguments)]
pub async fn upgrade(
    req: HttpRequest,
    admission: web::Data<Admission>,
    settings: web::Data<Settings>,
    db: web::Data<DatabaseConnection>,
    accounts: web::Data<Accounts>,
    registry: web::Data<Addr<RoomRegistry>>,
    chat: web::Data<ChatSettings>,
    bus: web::Data<dyn Bus>,
) -> Result<HttpResponse, actix_web::Error> {
    if !origin_allowed(&req, &settings) {
        let refusal = Refusal::new(
            ErrorCode::ForbiddenOrigin,
            "pages from this origin may not open a socket here",
        );
        return Ok(HttpResponse::Forbidden().json(refusal.http_body()));
    }
    let (identity, session_ends) = match super::session::viewer(&req, &db, &accounts).await? {
        Some(viewer) => (
            Identity::of_account(viewer.account),
            Some(viewer.expires_at),
        ),
        None => match identify_guest(&req) {
            Ok(identity) => (identity, None),
            Err(err) => {
                let code = match err {
                    IdentityError::Missing => ErrorCode::Unauthorized,
                    IdentityError::Invalid(_) => ErrorCode::BadName,
                };
                let refusal = Refusal::new(code, err.to_string());
                return Ok(HttpResponse::Unauthorized().json(refusal.http_body()));
            }
        },
    };
    let ws = admission.ws.clone();
    let limits = Limits {
        max_queued_bytes: ws.max_queued_bytes,
        max_message: ws.hard_frame_limit,
        message_timeout: ws.message_timeout,
    };
    let open = admission.metrics.open(Connection::Client);
    let deps = SessionDeps {
        registry: registry.get_ref().clone(),
        ws: ws.clone(),
        chat: chat.into_inner(),
        hub: accounts.hub.clone(),
        node: bus.node().clone(),
    };
    let door = admission.door(client_addr(&req));
    Ok(crate::ws::accept(
        &req,
        limits,
        door,
        open,
        move |out, incoming| {
            let mut client = ClientSession::new(identity, out, deps);
            if let Some(ends) = session_ends {
                client = client.session_ending_at(ends);
            }
            crate::supervision::start_session(|ctx| {
                ctx.add_stream(incoming);
                client
            });
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_reads_in_its_largest_whole_unit() {
        assert_eq!(for_people(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(for_people(Duration::from_secs(86_400)), "1 day");
        assert_eq!(for_people(Duration::from_secs(36 * 3_600)), "36 hours");
        assert_eq!(for_people(Duration::from_secs(90)), "90 seconds");
        assert_eq!(for_people(Duration::ZERO), "0 seconds");
    }
}
