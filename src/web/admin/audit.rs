//! The audit log's admin page (`/admin/audit`): every admin action, newest
//! first, with who did it, when, to what and from where.

use actix_web::{web, HttpResponse};
use askama::Template;
use entity::audit_log;
use sea_orm::DatabaseConnection;

use super::page::{frame, when, Frame, PageQuery, Pager};
use super::AdminViewer;
use crate::admin::audit;
use crate::web::error::PageError;
use crate::web::session::MaybeViewer;
use crate::web::{html, Nav};

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    nav: Nav,
    frame: Frame,
    rows: Vec<AuditRow>,
    pager: Pager,
}

pub struct AuditRow {
    pub at: String,
    pub who: String,
    pub action: String,
    pub object: String,
    pub detail: String,
    pub address: String,
}

impl AuditRow {
    fn from(row: &audit_log::Model) -> AuditRow {
        AuditRow {
            at: when(row.at),
            who: row.user_name.clone(),
            action: row.action.clone(),
            object: match &row.object_id {
                Some(id) => format!("{} {id}", row.object_kind),
                None => row.object_kind.clone(),
            },
            detail: row.detail.clone().unwrap_or_default(),
            address: row.address.clone().unwrap_or_default(),
        }
    }
}

pub async fn audit(
    admin: AdminViewer,
    query: web::Query<PageQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let page = audit::list(db.get_ref(), query.page.unwrap_or(1)).await?;
    let body = AuditPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "audit"),
        rows: page.items.iter().map(AuditRow::from).collect(),
        pager: Pager::new(&page, |n| format!("/admin/audit?page={n}")),
    }
    .render()?;
    Ok(html(body))
}
