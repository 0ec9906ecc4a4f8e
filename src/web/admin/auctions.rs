//! The auction lots' admin page: every lot with its reserve and outcome, and
//! cancelling one. Listing and editing stay on the lot form, which this page
//! links to; cancelling goes through `page::act`, so it is CSRF-checked,
//! rate-limited and audited like every other admin action.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use sea_orm::DatabaseConnection;

use super::page::{act, encode, frame, id_of, when, Frame, Pager, StatusQuery};
use super::AdminViewer;
use crate::admin::actions::Action;
use crate::admin::lots::{self, ListedLot};
use crate::auction::LotStatus;
use crate::web::admin::Controls;
use crate::web::auctions::{amount, outcome_text};
use crate::web::error::PageError;
use crate::web::session::{CsrfForm, MaybeViewer};
use crate::web::{html, sentence, Nav};

#[derive(Template)]
#[template(path = "admin/auctions.html")]
struct LotsPage {
    nav: Nav,
    frame: Frame,
    /// The status shown, empty for all.
    status: String,
    statuses: Vec<&'static str>,
    rows: Vec<LotRow>,
    pager: Pager,
}

pub struct LotRow {
    pub id: i64,
    pub title: String,
    pub status: &'static str,
    pub starts: String,
    pub ends: String,
    /// The listed end, when soft close has moved the end past it.
    pub listed_end: Option<String>,
    /// The final price once sold, else the current (or starting) price.
    pub price: String,
    pub reserve: String,
    pub reserve_met: Option<bool>,
    pub bids: u64,
    /// How an ended lot ended; empty before.
    pub outcome: String,
    pub editable: bool,
    pub cancellable: bool,
}

impl LotRow {
    fn from(listed: &ListedLot) -> LotRow {
        let ListedLot { lot, winner } = listed;
        let (row, status) = (&lot.row, lot.state.status);
        let money = |cents| amount(cents, &row.currency);
        LotRow {
            id: row.id,
            title: row.title.clone(),
            status: status.as_str(),
            starts: when(lot.rules.starts_at()),
            ends: when(lot.state.ends_at),
            listed_end: listed.extended().then(|| when(lot.rules.ends_at())),
            price: money(row.final_cents.unwrap_or(lot.state.current_cents)),
            reserve: lot
                .rules
                .reserve_cents()
                .map_or_else(|| "none".to_owned(), money),
            reserve_met: listed.reserve_met(),
            bids: lot.state.bid_count,
            outcome: match status {
                LotStatus::Finished | LotStatus::Cancelled => outcome_text(row, winner.as_deref()),
                LotStatus::Scheduled | LotStatus::Running => String::new(),
            },
            editable: status == LotStatus::Scheduled,
            cancellable: matches!(status, LotStatus::Scheduled | LotStatus::Running),
        }
    }
}

/// `GET /admin/auctions`
pub async fn lots(
    admin: AdminViewer,
    query: web::Query<StatusQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let status =
        lots::parse_status(&query.status).map_err(|e| PageError::BadRequest(sentence(&e)))?;
    let page = lots::list(db.get_ref(), status, query.page.unwrap_or(1))
        .await
        .map_err(|err| PageError::Internal(anyhow::Error::new(err).context("listing the lots")))?;
    let link = |n: u64| format!("/admin/auctions?status={}&page={n}", encode(&query.status));
    let body = LotsPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "auctions"),
        status: query.status.clone(),
        statuses: lots::STATUSES.map(LotStatus::as_str).to_vec(),
        rows: page.items.iter().map(LotRow::from).collect(),
        pager: Pager::new(&page, link),
    }
    .render()?;
    Ok(html(body))
}

/// `POST /admin/auctions/{id}/cancel`: withdraws a lot, then back to the list.
pub async fn cancel(
    req: HttpRequest,
    admin: AdminViewer,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let action = Action::CancelLot(id_of(&path)?);
    act(
        &req,
        &admin,
        &db,
        &controls,
        &form.csrf,
        action,
        "/admin/auctions",
    )
    .await
}
