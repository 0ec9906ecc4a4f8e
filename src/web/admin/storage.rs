//! `/admin/storage`: the database's size per table, and what the next
//! retention pass would remove from each.

use actix_web::{web, HttpResponse};
use askama::Template;
use sea_orm::DatabaseConnection;

use super::page::{frame, Frame};
use super::AdminViewer;
use crate::clock;
use crate::config::Settings;
use crate::retention::report::{self, Line};
use crate::web::error::PageError;
use crate::web::session::MaybeViewer;
use crate::web::{html, Nav};

#[derive(Template)]
#[template(path = "admin/storage.html")]
struct StoragePage {
    nav: Nav,
    frame: Frame,
    lines: Vec<Line>,
    total: String,
    space: String,
    /// How often a pass runs, as the settings say it; empty when off.
    every: String,
}

pub async fn storage(
    admin: AdminViewer,
    db: web::Data<DatabaseConnection>,
    settings: web::Data<Settings>,
) -> Result<HttpResponse, PageError> {
    let retention = &settings.retention;
    let overview = report::overview(db.get_ref(), retention, clock::now()).await?;
    let body = StoragePage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "storage"),
        lines: overview.lines,
        total: overview.total,
        space: overview.space,
        every: match retention.every.is_zero() {
            true => String::new(),
            false => humantime_serde::re::humantime::format_duration(retention.every).to_string(),
        },
    }
    .render()?;
    Ok(html(body))
}
