//! The admins' side of auctions: list a lot, edit it while it is scheduled,
//! cancel it. Visitors are sent to log in first; other accounts are refused.

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use sea_orm::DatabaseConnection;

use super::form::LotForm;
use super::pages::find_lot;
use crate::admin::actions::{self, Action};
use crate::admin::audit::{self, Actor, Entry};
use crate::auction::store::{self, StoreError};
use crate::auction::{Increments, LotStatus};
use crate::clock;
use crate::domain::money::units;
use crate::rooms::registry::LotChanged;
use crate::rooms::registry::RoomRegistry;
use crate::web::accounts::login_url;
use crate::web::admin::Controls;
use crate::web::admin::{action_error, actor_of};
use crate::web::error::PageError;
use crate::web::session::{check_csrf, CsrfForm, MaybeViewer, Viewer};
use crate::web::{see_other, sentence, Nav};

/// One band of the increment table, as the form shows it.
pub struct TierRow {
    pub from: String,
    pub step: String,
}

#[derive(Template)]
#[template(path = "lot_form.html")]
struct LotFormPage<'a> {
    nav: Nav,
    heading: String,
    action: String,
    /// Where "back" goes: the lot, or the list for a new one.
    back: String,
    csrf: &'a str,
    form: &'a LotForm,
    errors: &'a [String],
    tiers: Vec<TierRow>,
}

/// Why someone other than an admin may not use the lot form.
enum NotAdmin {
    /// Nobody is logged in: log in first, then come back.
    Visitor,
    /// Logged in, but not as an admin.
    Member,
}

impl NotAdmin {
    /// The answer instead of the page at `here`.
    fn response(&self, here: &str) -> HttpResponse {
        match self {
            NotAdmin::Visitor => see_other(&login_url(here)),
            NotAdmin::Member => {
                PageError::Forbidden("Only admins can list, change or cancel lots.".to_owned())
                    .error_response()
            }
        }
    }
}

fn admin(viewer: &MaybeViewer) -> Result<&Viewer, NotAdmin> {
    match &viewer.0 {
        Some(v) if v.account.is_admin => Ok(v),
        Some(_) => Err(NotAdmin::Member),
        None => Err(NotAdmin::Visitor),
    }
}

/// Renders the lot form: `errors` empty for a fresh form (200), else 400.
fn form_page(
    viewer: &MaybeViewer,
    csrf: &str,
    target: Option<i64>,
    form: &LotForm,
    errors: &[String],
) -> Result<HttpResponse, PageError> {
    let (heading, action, back) = match target {
        None => (
            "New lot".to_owned(),
            "/auctions".to_owned(),
            "/auctions".to_owned(),
        ),
        Some(id) => (
            format!("Edit lot {id}"),
            format!("/auctions/{id}/edit"),
            format!("/auctions/{id}"),
        ),
    };
    let page = LotFormPage {
        nav: Nav::from(viewer),
        heading,
        action,
        back,
        csrf,
        form,
        errors,
        tiers: Increments::default()
            .tiers()
            .iter()
            .map(|t| TierRow {
                from: units(t.from_cents),
                step: units(t.step_cents),
            })
            .collect(),
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

/// A store refusal the admin can act on, in words; anything else is an
/// internal error.
fn refusal(err: StoreError) -> Result<String, PageError> {
    match err {
        StoreError::Title
        | StoreError::Rules(_)
        | StoreError::SoftCloseNotWholeSeconds
        | StoreError::NotScheduled { .. }
        | StoreError::NotCancellable { .. }
        | StoreError::Busy(_) => Ok(sentence(&err.to_string())),
        StoreError::NotFound(_) => Err(PageError::NotFound),
        StoreError::Corrupt(_) | StoreError::Db(_) => Err(PageError::Internal(
            anyhow::Error::new(err).context("writing an auction lot"),
        )),
    }
}

/// Why a lot that is not scheduled cannot be edited.
fn not_editable(id: i64, status: LotStatus) -> PageError {
    PageError::BadRequest(format!(
        "Lot {id} is {}: only a scheduled lot can be changed, since bidders rely on the rules \
         of an open lot. You can still cancel it from its page.",
        status.as_str()
    ))
}

/// `GET /auctions/new`
pub async fn new_form(viewer: MaybeViewer) -> Result<HttpResponse, PageError> {
    let admin = match admin(&viewer) {
        Ok(admin) => admin,
        Err(refused) => return Ok(refused.response("/auctions/new")),
    };
    let form = LotForm::blank(clock::now());
    form_page(&viewer, &admin.csrf, None, &form, &[])
}

/// `POST /auctions`: lists a new lot, then shows its page.
pub async fn create(
    req: HttpRequest,
    form: web::Form<LotForm>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let admin = match admin(&viewer) {
        Ok(admin) => admin,
        Err(refused) => return Ok(refused.response("/auctions/new")),
    };
    check_csrf(&req, &viewer, &form.csrf)?;
    let actor = limited(&req, &controls, admin).await?;
    let now = clock::now();
    let listing = match form.listing(now) {
        Ok(listing) => listing,
        Err(errors) => return form_page(&viewer, &admin.csrf, None, &form, &errors),
    };
    match store::create_lot(db.get_ref(), &listing, Some(admin.account.id), now).await {
        Ok(row) => {
            tracing::info!(lot = row.id, admin = %admin.account.name, "lot listed");
            audited(
                &db,
                &actor,
                "lot.create",
                row.id,
                Some(listing.title.clone()),
            )
            .await?;
            Ok(see_other(&format!("/auctions/{}", row.id)))
        }
        Err(err) => form_page(&viewer, &admin.csrf, None, &form, &[refusal(err)?]),
    }
}

/// Counts a lot action against the admin's rate limit.
async fn limited(
    req: &HttpRequest,
    controls: &Controls,
    admin: &Viewer,
) -> Result<Actor, PageError> {
    let actor = actor_of(admin, req);
    controls
        .rate_limited(&actor)
        .await
        .map_err(PageError::TooManyRequests)?;
    Ok(actor)
}

/// The audit row of a lot action that succeeded.
async fn audited(
    db: &DatabaseConnection,
    actor: &Actor,
    action: &str,
    lot: i64,
    detail: Option<String>,
) -> Result<(), PageError> {
    let entry = Entry {
        action,
        object_kind: "lot",
        object_id: Some(lot.to_string()),
        detail,
    };
    audit::record(db, actor, entry, clock::now()).await?;
    Ok(())
}

/// `GET /auctions/{id}/edit`
pub async fn edit_form(
    path: web::Path<String>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let admin = match admin(&viewer) {
        Ok(admin) => admin,
        Err(refused) => return Ok(refused.response(&format!("/auctions/{path}/edit"))),
    };
    let lot = find_lot(&db, &path).await?;
    if lot.state.status != LotStatus::Scheduled {
        return Err(not_editable(lot.row.id, lot.state.status));
    }
    form_page(
        &viewer,
        &admin.csrf,
        Some(lot.row.id),
        &LotForm::of(&lot),
        &[],
    )
}

/// `POST /auctions/{id}/edit`: replaces a scheduled lot's listing.
pub async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<LotForm>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    registry: web::Data<Addr<RoomRegistry>>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let admin = match admin(&viewer) {
        Ok(admin) => admin,
        Err(refused) => return Ok(refused.response(&format!("/auctions/{path}/edit"))),
    };
    check_csrf(&req, &viewer, &form.csrf)?;
    let actor = limited(&req, &controls, admin).await?;
    let lot = find_lot(&db, &path).await?;
    let id = lot.row.id;
    if lot.state.status != LotStatus::Scheduled {
        return Err(not_editable(id, lot.state.status));
    }
    let now = clock::now();
    let listing = match form.listing(now) {
        Ok(listing) => listing,
        Err(errors) => return form_page(&viewer, &admin.csrf, Some(id), &form, &errors),
    };
    match store::update_lot(db.get_ref(), id, &listing, now).await {
        Ok(_) => {
            tracing::info!(lot = id, admin = %admin.account.name, "lot edited");
            audited(&db, &actor, "lot.edit", id, None).await?;
            registry.do_send(LotChanged { lot_id: id });
            Ok(see_other(&format!("/auctions/{id}")))
        }
        // It opened between the check above and the write.
        Err(StoreError::NotScheduled { id, status }) => Err(not_editable(id, status)),
        Err(err) => form_page(&viewer, &admin.csrf, Some(id), &form, &[refusal(err)?]),
    }
}

/// `POST /auctions/{id}/cancel`: withdraws a scheduled or running lot, the
/// same admin action as the admin pages', then back to the lot's page.
pub async fn cancel(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    controls: web::Data<Controls>,
) -> Result<HttpResponse, PageError> {
    let admin = match admin(&viewer) {
        Ok(admin) => admin,
        Err(refused) => return Ok(refused.response(&format!("/auctions/{path}"))),
    };
    check_csrf(&req, &viewer, &form.csrf)?;
    let actor = limited(&req, &controls, admin).await?;
    let id: i64 = path.parse().map_err(|_| PageError::NotFound)?;
    match actions::perform(
        &controls.levers(db.get_ref()),
        &actor,
        Action::CancelLot(id),
        clock::now(),
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!("/auctions/{id}"))),
        Err(err) => Err(action_error(err)),
    }
}
