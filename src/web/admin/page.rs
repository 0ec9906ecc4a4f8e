//! What every admin page shares: the frame (tab and form token), the pager,
//! how times, ids and list queries read, and `act`, the one way a page
//! performs an admin action. Every action POSTs through it and redirects
//! back, so each is CSRF-checked, rate-limited and audited like every other.

use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Deserialize;

use super::AdminViewer;
use crate::admin::actions::{self, Action, ActionError};
use crate::admin::Page;
use crate::clock;
use crate::web::admin::Controls;
use crate::web::error::PageError;
use crate::web::session::{check_csrf, MaybeViewer};
use crate::web::{see_other, sentence};

/// A time as the admin pages show it.
pub(super) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(super) fn maybe_when(t: Option<DateTime<Utc>>) -> String {
    t.map(when).unwrap_or_default()
}

/// The tab and form token every admin page carries.
pub(super) fn frame(admin: &AdminViewer, tab: &'static str) -> Frame {
    Frame {
        csrf: admin.0.csrf.clone(),
        tab,
    }
}

pub struct Frame {
    pub csrf: String,
    pub tab: &'static str,
}

/// Links to the other pages of a list, keeping its filters.
pub struct Pager {
    pub page: u64,
    pub pages: u64,
    pub total: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    pub(super) fn new<T>(page: &Page<T>, link: impl Fn(u64) -> String) -> Pager {
        Pager {
            page: page.page,
            pages: page.pages,
            total: page.total,
            prev: (page.page > 1).then(|| link(page.page - 1)),
            next: (page.page < page.pages).then(|| link(page.page + 1)),
        }
    }
}

pub(super) fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub(super) fn id_of(path: &str) -> Result<i64, PageError> {
    path.parse().map_err(|_| PageError::NotFound)
}

/// An action from a page: CSRF, the rate limit, the action and its audit
/// row, then back to `back`.
pub(super) async fn act(
    req: &HttpRequest,
    admin: &AdminViewer,
    db: &DatabaseConnection,
    controls: &Controls,
    csrf: &str,
    action: Action,
    back: &str,
) -> Result<HttpResponse, PageError> {
    check_csrf(req, &MaybeViewer(Some(admin.0.clone())), csrf)?;
    let actor = admin.actor(req);
    controls
        .rate_limited(&actor)
        .await
        .map_err(PageError::TooManyRequests)?;
    // The page says where the request went: another node acts on it there.
    let back = match action.sent_to() {
        Some(node) => format!("{back}?sent={}", encode(node)),
        None => back.to_owned(),
    };
    actions::perform(&controls.levers(db), &actor, action, clock::now())
        .await
        .map_err(action_error)?;
    Ok(see_other(&back))
}

pub(crate) fn action_error(err: ActionError) -> PageError {
    match err {
        ActionError::NoSuchTask(_)
        | ActionError::NoSuchWorker(_)
        | ActionError::NoSuchWorkerOn { .. }
        | ActionError::NoSuchNode(_)
        | ActionError::NoSuchLot(_) => PageError::NotFound,
        ActionError::Unreachable(_) => PageError::Unavailable(sentence(&err.to_string())),
        ActionError::NotRetriable { .. }
        | ActionError::NotCancellable { .. }
        | ActionError::MailNotFailed(_)
        | ActionError::CrawlRunning(_)
        | ActionError::LotNotCancellable { .. } => PageError::Conflict(sentence(&err.to_string())),
        ActionError::Db(err) => PageError::Internal(err.into()),
        ActionError::Internal(err) => PageError::Internal(err),
    }
}

/// A list filtered by one status (empty for all) and paged.
#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    pub(super) status: String,
    pub(super) page: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub(super) page: Option<u64>,
}

/// The node a request went to, after an action another node performs.
#[derive(Debug, Deserialize)]
pub struct SentQuery {
    pub(super) sent: Option<String>,
}
