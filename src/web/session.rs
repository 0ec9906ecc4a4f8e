//! Who is asking: the account behind the session cookie, if any, and the
//! CSRF token its forms must carry. Anonymous forms (log in, register) use a
//! double-submit token: a random cookie echoed in a hidden field.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use sea_orm::DatabaseConnection;

use super::auth::constant_time_eq;
use super::error::PageError;
use super::part;
use super::rate::RateLimit;
use crate::accounts::hub::SessionHub;
use crate::accounts::password::Passwords;
use crate::accounts::throttle::LoginThrottle;
use crate::accounts::{store, token, Account};
use crate::clock;

pub const SESSION_COOKIE: &str = "bazaar_session";
pub const CSRF_COOKIE: &str = "bazaar_csrf";

/// What the account pages share.
pub struct Accounts {
    pub key: Vec<u8>,
    pub lifetime: Duration,
    /// Cookies get `Secure` when the public URL is https.
    pub secure: bool,
    pub throttle: LoginThrottle,
    /// Where argon2 runs, a bounded number at once.
    pub passwords: Passwords,
    /// Registrations per client address, on this node: when there is no
    /// bus to count them for the whole cluster, or it is down.
    pub registrations: RateLimit,
    pub hub: Addr<SessionHub>,
}

impl Accounts {
    /// A cookie with this site's attributes; `None` as value removes it.
    pub fn cookie(&self, name: &'static str, value: Option<String>) -> Cookie<'static> {
        let removing = value.is_none();
        let mut cookie = Cookie::build(name, value.unwrap_or_default())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .finish();
        if removing {
            cookie.make_removal();
        } else if name == SESSION_COOKIE {
            cookie.set_max_age(actix_web::cookie::time::Duration::seconds(
                self.lifetime.as_secs() as i64,
            ));
        }
        cookie
    }
}

/// The logged-in account and its session's CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub account: Account,
    pub csrf: String,
    /// When the login session ends.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The viewer, if the request carries a live session cookie.
pub struct MaybeViewer(pub Option<Viewer>);

impl MaybeViewer {
    pub fn account(&self) -> Option<&Account> {
        self.0.as_ref().map(|v| &v.account)
    }
}

/// Looks the session cookie up (a database read per request).
pub async fn viewer(
    req: &HttpRequest,
    db: &DatabaseConnection,
    accounts: &Accounts,
) -> Result<Option<Viewer>, PageError> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let found = store::session(db, &accounts.key, cookie.value(), clock::now()).await?;
    Ok(found.map(|live| Viewer {
        account: live.account,
        csrf: live.csrf,
        expires_at: live.expires_at,
    }))
}

impl FromRequest for MaybeViewer {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<MaybeViewer, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let db = part::<DatabaseConnection>(&req).map_err(PageError::Internal)?;
            let accounts = part::<Accounts>(&req).map_err(PageError::Internal)?;
            Ok(MaybeViewer(viewer(&req, &db, &accounts).await?))
        })
    }
}

/// The token a form must carry: the session's, or for a visitor the
/// double-submit cookie's (made now if missing, with the cookie to set).
pub fn form_token(req: &HttpRequest, viewer: &MaybeViewer) -> (String, Option<String>) {
    if let Some(v) = &viewer.0 {
        return (v.csrf.clone(), None);
    }
    match req.cookie(CSRF_COOKIE) {
        Some(cookie) if cookie.value().len() == 64 => (cookie.value().to_owned(), None),
        _ => {
            let fresh = token::random();
            (fresh.clone(), Some(fresh))
        }
    }
}

/// A form that carries only its CSRF token (log out, cancel a lot).
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// Refuses a form whose token is not the expected one: the session's, or
/// for a visitor the double-submit cookie's.
pub fn check_csrf(
    req: &HttpRequest,
    viewer: &MaybeViewer,
    submitted: &str,
) -> Result<(), PageError> {
    let expected = match &viewer.0 {
        Some(v) => Some(v.csrf.clone()),
        None => req.cookie(CSRF_COOKIE).map(|c| c.value().to_owned()),
    };
    match expected {
        Some(expected)
            if !expected.is_empty()
                && constant_time_eq(expected.as_bytes(), submitted.as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(PageError::Forbidden(
            "This form expired or did not come from this site. Go back, reload the page and try again."
                .to_owned(),
        )),
    }
}

/// Adds the visitor's new double-submit cookie, if one was made.
pub fn with_csrf_cookie(
    mut response: HttpResponse,
    accounts: &Arc<Accounts>,
    fresh: Option<String>,
) -> HttpResponse {
    if let Some(token) = fresh {
        let _ = response.add_cookie(&accounts.cookie(CSRF_COOKIE, Some(token)));
    }
    response
}
