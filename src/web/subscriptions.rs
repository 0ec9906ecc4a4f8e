//! The subscription pages (docs/architecture.md §4, §7): `/subscribe` (the
//! digest, or a price alert with `?game=`), `/subscriptions/confirm`, and
//! `/unsubscribe`.
//!
//! A GET never changes anything (mail scanners follow links): each link
//! shows a page whose button POSTs. The confirm, resend and unsubscribe
//! POSTs carry the mail's token, which is itself the proof that the sender
//! read the mail, so they need no CSRF token; that is also what lets a mail
//! client's one-click unsubscribe (RFC 8058) work. The subscribe form is an
//! ordinary form and is CSRF-checked.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use entity::subscriptions::SubscriptionStatus;
use sea_orm::DatabaseConnection;
use sea_orm::EntityTrait;
use serde::Deserialize;

use super::client_addr::client_addr_text;
use super::error::{retry_later, PageError};
use super::rate::RateLimit;
use super::session::{check_csrf, form_token, with_csrf_cookie, MaybeViewer};
use super::{sentence, Nav};
use crate::clock;
use crate::domain::money::parse_cents;
use crate::mail::compose::{About, Links};
use crate::mail::subscription::{self, LinkState, Policy, SubscribeError, Subscribed, Topic};
use crate::mail::EmailAddress;
use crate::web::session::Accounts;

/// What the subscription pages share.
pub struct Subscriptions {
    pub links: Links,
    pub policy: Policy,
    /// Subscriptions asked for per client address: the form sends mail to
    /// any address typed into it, so it must not become a mail cannon.
    pub limit: RateLimit,
}

/// The subscribe form: the digest, or an alert on `game`.
#[derive(Template)]
#[template(path = "subscribe.html")]
struct SubscribePage {
    nav: Nav,
    csrf: String,
    game: Option<GameChoice>,
    email: String,
    target: String,
    error: String,
}

/// The game an alert form is for. The catalog pages embed the same form
/// (`subscribe_form.html`), so they carry one too.
#[derive(Clone)]
pub struct GameChoice {
    pub id: i64,
    pub title: String,
    pub price: String,
}

/// A message with at most one button, for every step after the form.
#[derive(Template)]
#[template(path = "subscription.html")]
struct MessagePage {
    nav: Nav,
    title: String,
    message: String,
    action: Option<Action>,
}

struct Action {
    url: &'static str,
    token: String,
    button: &'static str,
}

#[derive(Debug, Deserialize)]
pub struct SubscribeQuery {
    game: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SubscribeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    game: Option<String>,
    #[serde(default)]
    target: String,
}

#[derive(Debug, Deserialize)]
pub struct TokenParam {
    #[serde(default)]
    token: String,
}

fn message(
    viewer: &MaybeViewer,
    status: StatusCode,
    title: &str,
    message: String,
    action: Option<Action>,
) -> Result<HttpResponse, PageError> {
    let body = MessagePage {
        nav: Nav::from(viewer),
        title: title.to_owned(),
        message,
        action,
    }
    .render()?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// The game `?game=` names, for the alert form.
async fn game_choice(
    db: &DatabaseConnection,
    game: Option<&str>,
) -> Result<Option<GameChoice>, PageError> {
    let Some(raw) = game.filter(|g| !g.is_empty()) else {
        return Ok(None);
    };
    let id: i64 = raw.parse().map_err(|_| PageError::NotFound)?;
    let found = entity::games::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(PageError::NotFound)?;
    let currency = found.currency.as_deref().unwrap_or("EUR");
    Ok(Some(GameChoice {
        id,
        title: found.title.clone(),
        price: found
            .best_cents
            .map(|c| crate::domain::money::Money::new(c, currency).to_string())
            .unwrap_or_else(|| "out of stock".to_owned()),
    }))
}

pub async fn subscribe_form(
    req: HttpRequest,
    query: web::Query<SubscribeQuery>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    let game = game_choice(&db, query.game.as_deref()).await?;
    let (csrf, fresh) = form_token(&req, &viewer);
    let body = SubscribePage {
        nav: Nav::from(&viewer),
        csrf,
        game,
        email: String::new(),
        target: String::new(),
        error: String::new(),
    }
    .render()?;
    Ok(with_csrf_cookie(super::html(body), &accounts, fresh))
}

pub async fn subscribe(
    req: HttpRequest,
    form: web::Form<SubscribeForm>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    subscriptions: web::Data<Subscriptions>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&req, &viewer, &form.csrf)?;
    let game = game_choice(&db, form.game.as_deref()).await?;
    let refuse = |status: StatusCode, error: String| -> Result<HttpResponse, PageError> {
        let (csrf, _) = form_token(&req, &viewer);
        let body = SubscribePage {
            nav: Nav::from(&viewer),
            csrf,
            game: game.clone(),
            email: form.email.clone(),
            target: form.target.clone(),
            error,
        }
        .render()?;
        Ok(HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body))
    };
    let email = match EmailAddress::parse(&form.email) {
        Ok(email) => email,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, sentence(&err.to_string())),
    };
    let topic = match &game {
        None => Topic::Digest,
        Some(game) => match parse_cents(&form.target) {
            Ok(0) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "Target price: it must be more than 0.".to_owned(),
                )
            }
            Ok(target_cents) if target_cents <= crate::auction::MAX_CENTS => Topic::Alert {
                game: game.id,
                target_cents,
            },
            Ok(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "Target price: it is too large.".to_owned(),
                )
            }
            Err(err) => return refuse(StatusCode::BAD_REQUEST, format!("Target price: {err}")),
        },
    };
    let address = client_addr_text(&req);
    let pages = &subscriptions;
    if let Err(wait) = pages.limit.hit(&address, Instant::now()) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many subscriptions from your address. Try again in {}.",
                minutes(wait)
            ),
        )
        .map(|page| retry_later(page, Some(wait)));
    }
    let outcome = subscription::subscribe(
        db.get_ref(),
        &pages.links,
        pages.policy,
        &email,
        topic,
        clock::now(),
    )
    .await
    .map_err(subscribe_error)?;
    outcome_page(&viewer, &email, outcome)
}

fn subscribe_error(err: SubscribeError) -> PageError {
    match err {
        SubscribeError::UnknownGame(_) => PageError::NotFound,
        other => PageError::Internal(other.into()),
    }
}

fn outcome_page(
    viewer: &MaybeViewer,
    email: &EmailAddress,
    outcome: Subscribed,
) -> Result<HttpResponse, PageError> {
    match outcome {
        Subscribed::ConfirmationSent(about) => message(
            viewer,
            StatusCode::OK,
            "Check your inbox",
            format!(
                "We sent a link to {email}. Follow it to confirm {}. Nothing is sent until you do.",
                about.describe()
            ),
            None,
        ),
        Subscribed::RecentlySent { about, wait } => message(
            viewer,
            StatusCode::OK,
            "Check your inbox",
            format!(
                "We sent a confirmation for {} to {email} a moment ago; look for it (and in the spam folder). You can ask for another one in {}.",
                about.describe(),
                minutes(wait)
            ),
            None,
        ),
        Subscribed::AlreadyConfirmed(about) => message(
            viewer,
            StatusCode::OK,
            "Already subscribed",
            format!("{email} already receives {}.", about.describe()),
            None,
        ),
        Subscribed::ChangeSent(about) => message(
            viewer,
            StatusCode::OK,
            "Check your inbox",
            format!(
                "We sent a link to {email}. Follow it to confirm {}; until you do, your alert keeps its current target.",
                about.describe()
            ),
            None,
        ),
    }
}

pub async fn confirm_page(
    query: web::Query<TokenParam>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    subscriptions: web::Data<Subscriptions>,
) -> Result<HttpResponse, PageError> {
    let pages = &subscriptions;
    let now = clock::now();
    match subscription::link_state(db.get_ref(), &pages.links, &query.token, now).await? {
        LinkState::Pending(row) => {
            let about = about_row(&db, &row).await?;
            message(
                &viewer,
                StatusCode::OK,
                "Confirm your subscription",
                format!(
                    "Confirm that {} should receive {}.",
                    row.email,
                    about.describe()
                ),
                Some(Action {
                    url: "/subscriptions/confirm",
                    token: query.token.clone(),
                    button: "Confirm",
                }),
            )
        }
        state_now => link_page(&db, &subscriptions, &viewer, &query.token, state_now).await,
    }
}

pub async fn confirm(
    form: web::Form<TokenParam>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    subscriptions: web::Data<Subscriptions>,
) -> Result<HttpResponse, PageError> {
    let pages = &subscriptions;
    let after =
        subscription::confirm(db.get_ref(), &pages.links, &form.token, clock::now()).await?;
    link_page(&db, &subscriptions, &viewer, &form.token, after).await
}

/// The page for a confirmation link that is not (or no longer) pending.
async fn link_page(
    db: &DatabaseConnection,
    subscriptions: &Subscriptions,
    viewer: &MaybeViewer,
    token: &str,
    link: LinkState,
) -> Result<HttpResponse, PageError> {
    match link {
        LinkState::Confirmed(row) => {
            let about = about_row(db, &row).await?;
            message(
                viewer,
                StatusCode::OK,
                "Subscribed",
                format!(
                    "{} will receive {}. Every mail has a link to unsubscribe.",
                    row.email,
                    about.describe()
                ),
                None,
            )
        }
        LinkState::Expired(_) => message(
            viewer,
            StatusCode::GONE,
            "This link has expired",
            format!(
                "Confirmation links work for {} hours. Ask for a new one and follow it instead.",
                subscriptions.policy.confirm_ttl.as_secs() / 3600
            ),
            Some(Action {
                url: "/subscriptions/resend",
                token: token.to_owned(),
                button: "Send me a new link",
            }),
        ),
        LinkState::Pending(_) | LinkState::Invalid => message(
            viewer,
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "It may be mistyped or cut short, or a newer link replaced it. Subscribe again to get a fresh one."
                .to_owned(),
            None,
        ),
    }
}

pub async fn resend(
    form: web::Form<TokenParam>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    subscriptions: web::Data<Subscriptions>,
) -> Result<HttpResponse, PageError> {
    let pages = &subscriptions;
    let now = clock::now();
    let row = match subscription::link_state(db.get_ref(), &pages.links, &form.token, now).await? {
        LinkState::Pending(row) | LinkState::Expired(row) | LinkState::Confirmed(row) => row,
        LinkState::Invalid => {
            return link_page(
                &db,
                &subscriptions,
                &viewer,
                &form.token,
                LinkState::Invalid,
            )
            .await
        }
    };
    let email = EmailAddress::parse(&row.email)
        .map_err(|err| PageError::Internal(anyhow::anyhow!("stored address: {err}")))?;
    let outcome = subscription::resend(db.get_ref(), &pages.links, pages.policy, &form.token, now)
        .await
        .map_err(subscribe_error)?
        .ok_or(PageError::NotFound)?;
    outcome_page(&viewer, &email, outcome)
}

pub async fn unsubscribe_page(
    query: web::Query<TokenParam>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    subscriptions: web::Data<Subscriptions>,
) -> Result<HttpResponse, PageError> {
    let pages = &subscriptions;
    let Some(id) = pages.links.verify_unsubscribe(&query.token) else {
        return invalid_unsubscribe(&viewer);
    };
    let Some(row) = entity::subscriptions::Entity::find_by_id(id)
        .one(db.get_ref())
        .await?
    else {
        return invalid_unsubscribe(&viewer);
    };
    let about = about_row(&db, &row).await?;
    if row.status == SubscriptionStatus::Unsubscribed {
        return message(
            &viewer,
            StatusCode::OK,
            "Unsubscribed",
            format!("{} no longer receives {}.", row.email, about.describe()),
            None,
        );
    }
    message(
        &viewer,
        StatusCode::OK,
        "Unsubscribe",
        format!("Stop sending {} to {}?", about.describe(), row.email),
        Some(Action {
            url: "/unsubscribe",
            token: query.token.clone(),
            button: "Unsubscribe",
        }),
    )
}

/// The button on the page, or a mail client's one-click POST to the
/// `List-Unsubscribe` address (token in the query, body
/// `List-Unsubscribe=One-Click`).
pub async fn unsubscribe(
    query: web::Query<TokenParam>,
    body: web::Bytes,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    subscriptions: web::Data<Subscriptions>,
) -> Result<HttpResponse, PageError> {
    let token = if query.token.is_empty() {
        url::form_urlencoded::parse(&body)
            .find(|(name, _)| name == "token")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    } else {
        query.token.clone()
    };
    let pages = &subscriptions;
    let Some(id) = pages.links.verify_unsubscribe(&token) else {
        return invalid_unsubscribe(&viewer);
    };
    let Some(row) = subscription::unsubscribe(db.get_ref(), id, clock::now()).await? else {
        return invalid_unsubscribe(&viewer);
    };
    let about = about_row(&db, &row).await?;
    tracing::info!(subscription = id, "unsubscribed");
    message(
        &viewer,
        StatusCode::OK,
        "Unsubscribed",
        format!("{} no longer receives {}.", row.email, about.describe()),
        None,
    )
}

fn invalid_unsubscribe(viewer: &MaybeViewer) -> Result<HttpResponse, PageError> {
    message(
        viewer,
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "It may be mistyped or cut short. Use the unsubscribe link from the mail itself."
            .to_owned(),
        None,
    )
}

async fn about_row(
    db: &DatabaseConnection,
    row: &entity::subscriptions::Model,
) -> Result<About, PageError> {
    subscription::about_row(db, row)
        .await
        .map_err(subscribe_error)
}

/// A wait in whole minutes, at least one.
fn minutes(wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    if minutes == 1 {
        "a minute".to_owned()
    } else {
        format!("{minutes} minutes")
    }
}
