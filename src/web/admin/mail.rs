//! The outbox's admin page (`/admin/mail`): mails by status, and retrying a
//! failed one.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use entity::outbox::{self, MailKind, MailStatus};
use sea_orm::DatabaseConnection;

use super::page::{act, encode, frame, id_of, maybe_when, when, Frame, Pager, StatusQuery};
use super::AdminViewer;
use crate::admin::actions::Action;
use crate::admin::outbox as mail;
use crate::web::admin::Controls;
use crate::web::error::PageError;
use crate::web::session::{CsrfForm, MaybeViewer};
use crate::web::{html, sentence, Nav};

#[derive(Template)]
#[template(path = "admin/mail.html")]
struct MailPage {
    nav: Nav,
    frame: Frame,
    status: String,
    statuses: Vec<(String, u64)>,
    rows: Vec<MailRow>,
    pager: Pager,
}

pub struct MailRow {
    pub id: i64,
    pub kind: MailKind,
    pub recipient: String,
    pub subject: String,
    pub status: MailStatus,
    pub attempts: i32,
    pub error: String,
    pub created: String,
    pub sent: String,
}

impl MailRow {
    fn from(mail: &outbox::Model) -> MailRow {
        MailRow {
            id: mail.id,
            kind: mail.kind,
            recipient: mail.recipient.clone(),
            subject: mail.subject.clone(),
            status: mail.status,
            attempts: mail.attempts,
            error: mail.last_error.clone().unwrap_or_default(),
            created: when(mail.created_at),
            sent: maybe_when(mail.sent_at),
        }
    }
}

pub async fn mail(
    admin: AdminViewer,
    query: web::Query<StatusQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let status =
        mail::parse_status(&query.status).map_err(|e| PageError::BadRequest(sentence(&e)))?;
    let page = mail::list(db.get_ref(), status, query.page.unwrap_or(1)).await?;
    let link = |n: u64| format!("/admin/mail?status={}&page={n}", encode(&query.status));
    let body = MailPage {
        nav: Nav::from(&MaybeViewer(Some(admin.0.clone()))),
        frame: frame(&admin, "mail"),
        status: query.status.clone(),
        statuses: mail::counts(db.get_ref()).await?,
        rows: page.items.iter().map(MailRow::from).collect(),
        pager: Pager::new(&page, link),
    }
    .render()?;
    Ok(html(body))
}

pub async fn retry_mail(
    req: HttpRequest,
    admin: AdminViewer,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let id = id_of(&path)?;
    let back = "/admin/mail?status=failed";
    act(
        &req,
        &admin,
        &db,
        &controls,
        &form.csrf,
        Action::RetryMail(id),
        back,
    )
    .await
}
