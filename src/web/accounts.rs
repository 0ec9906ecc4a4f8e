//! Account pages: register, log in, log out, and `/account` (the display
//! name). Every POST carries a CSRF token; logins are throttled.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::client_addr::client_addr_text;
use super::error::PageError;
use super::session::{
    check_csrf, form_token, with_csrf_cookie, CsrfForm, MaybeViewer, SESSION_COOKIE,
};
use super::{html, see_other, AppState, Nav};
use crate::accounts::hub::{AccountEvent, Notify};
use crate::accounts::store::{self, AccountError};
use crate::accounts::{check_new_password, Account, LoginName};
use crate::domain::user_name::UserName;

/// Where to go after logging in: a path on this site, never elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// The login page URL that comes back to `path`.
pub fn login_url(path: &str) -> String {
    let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    format!("/login?next={next}")
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    nav: Nav,
    csrf: &'a str,
    name: &'a str,
    next: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    nav: Nav,
    csrf: &'a str,
    name: &'a str,
    display_name: &'a str,
    next: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    nav: Nav,
    account: &'a Account,
    csrf: &'a str,
    saved: bool,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`
pub async fn login_form(
    req: HttpRequest,
    query: web::Query<NextQuery>,
    viewer: MaybeViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.next.as_deref());
    if viewer.0.is_some() {
        return Ok(see_other(&next));
    }
    let (csrf, fresh) = form_token(&req, &viewer);
    let page = LoginPage {
        nav: Nav::from(&viewer),
        csrf: &csrf,
        name: "",
        next: &next,
        error: None,
    };
    Ok(with_csrf_cookie(
        html(page.render()?),
        &state.accounts,
        fresh,
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /login`
pub async fn login(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    viewer: MaybeViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&req, &viewer, &form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let address = client_addr_text(&req);
    let typed = form.name.trim().to_lowercase();
    let refuse =
        |status: actix_web::http::StatusCode, error: &str| -> Result<HttpResponse, PageError> {
            let page = LoginPage {
                nav: Nav::from(&viewer),
                csrf: &form.csrf,
                name: &form.name,
                next: &next,
                error: Some(error),
            };
            Ok(HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(page.render()?))
        };
    let throttle = &state.accounts.throttle;
    if let Err(wait) = throttle.check(&typed, &address, Instant::now()) {
        let minutes = wait.as_secs().div_ceil(60);
        return refuse(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed attempts. Try again in {minutes} minute(s)."),
        );
    }
    let account = match LoginName::parse(&form.name) {
        Ok(name) => store::authenticate(&state.db, &name, &form.password).await?,
        Err(_) => None,
    };
    let Some(account) = account else {
        throttle.failed(&typed, &address, Instant::now());
        return refuse(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "That login name and password do not match an account.",
        );
    };
    throttle.succeeded(&typed);
    start_session(&state, &account, &next).await
}

async fn start_session(
    state: &AppState,
    account: &Account,
    next: &str,
) -> Result<HttpResponse, PageError> {
    let lifetime = chrono::Duration::from_std(state.accounts.lifetime)
        .unwrap_or_else(|_| chrono::Duration::days(30));
    let session = store::start_session(
        &state.db,
        &state.accounts.key,
        account.id,
        lifetime,
        state.clock.now(),
    )
    .await?;
    let mut response = see_other(next);
    let _ = response.add_cookie(&state.accounts.cookie(SESSION_COOKIE, Some(session.token)));
    tracing::info!(user = %account.name, "logged in");
    Ok(response)
}

/// `GET /register`
pub async fn register_form(
    req: HttpRequest,
    query: web::Query<NextQuery>,
    viewer: MaybeViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.next.as_deref());
    if viewer.0.is_some() {
        return Ok(see_other("/account"));
    }
    let (csrf, fresh) = form_token(&req, &viewer);
    let page = RegisterPage {
        nav: Nav::from(&viewer),
        csrf: &csrf,
        name: "",
        display_name: "",
        next: &next,
        error: None,
    };
    Ok(with_csrf_cookie(
        html(page.render()?),
        &state.accounts,
        fresh,
    ))
}

#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    next: Option<String>,
}

/// `POST /register`
pub async fn register(
    req: HttpRequest,
    form: web::Form<RegisterForm>,
    viewer: MaybeViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&req, &viewer, &form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let checked = (|| {
        let name = LoginName::parse(&form.name)?;
        let display = if form.display_name.trim().is_empty() {
            form.name.trim()
        } else {
            form.display_name.trim()
        };
        let display = UserName::parse_guest(display)
            .map_err(|_| "a display name is 1-32 letters, digits, spaces, _ - or .".to_owned())?;
        check_new_password(&form.password)?;
        if form.password != form.confirm {
            return Err("the two passwords differ".to_owned());
        }
        Ok((name, display))
    })();
    let created = match checked {
        Ok((name, display)) => {
            match store::create_user(
                &state.db,
                &name,
                &display,
                &form.password,
                false,
                state.clock.now(),
            )
            .await
            {
                Ok(account) => Ok(account),
                Err(AccountError::NameTaken(_)) => {
                    Err("that login name is taken; pick another".to_owned())
                }
                Err(AccountError::Db(e)) => return Err(e.into()),
                Err(AccountError::Other(e)) => return Err(PageError::Internal(e)),
            }
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(account) => start_session(&state, &account, &next).await,
        Err(error) => {
            let page = RegisterPage {
                nav: Nav::from(&viewer),
                csrf: &form.csrf,
                name: &form.name,
                display_name: &form.display_name,
                next: &next,
                error: Some(&error),
            };
            Ok(HttpResponse::BadRequest()
                .content_type("text/html; charset=utf-8")
                .body(page.render()?))
        }
    }
}

/// `POST /logout`: ends every session of the account, and its sockets on
/// every topic hear `session: null`.
pub async fn logout(
    req: HttpRequest,
    form: web::Form<CsrfForm>,
    viewer: MaybeViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Some(v) = &viewer.0 else {
        return Ok(see_other("/"));
    };
    check_csrf(&req, &viewer, &form.csrf)?;
    store::end_sessions(&state.db, v.account.id).await?;
    state.accounts.hub.do_send(Notify {
        user_id: v.account.id,
        event: AccountEvent::LoggedOut,
    });
    tracing::info!(user = %v.account.name, "logged out");
    let mut response = see_other("/");
    let _ = response.add_cookie(&state.accounts.cookie(SESSION_COOKIE, None));
    Ok(response)
}

#[derive(Deserialize)]
pub struct AccountQuery {
    saved: Option<String>,
}

/// `GET /account`
pub async fn account(
    query: web::Query<AccountQuery>,
    viewer: MaybeViewer,
) -> Result<HttpResponse, PageError> {
    let Some(v) = &viewer.0 else {
        return Ok(see_other(&login_url("/account")));
    };
    let page = AccountPage {
        nav: Nav::from(&viewer),
        account: &v.account,
        csrf: &v.csrf,
        saved: query.saved.is_some(),
        error: None,
    };
    Ok(html(page.render()?))
}

#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    display_name: String,
}

/// `POST /account`: a new display name, pushed to the account's sockets.
pub async fn update_account(
    req: HttpRequest,
    form: web::Form<AccountForm>,
    viewer: MaybeViewer,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Some(v) = &viewer.0 else {
        return Ok(see_other(&login_url("/account")));
    };
    check_csrf(&req, &viewer, &form.csrf)?;
    let display = match UserName::parse_guest(form.display_name.trim()) {
        Ok(display) => display,
        Err(_) => {
            let page = AccountPage {
                nav: Nav::from(&viewer),
                account: &v.account,
                csrf: &v.csrf,
                saved: false,
                error: Some("A display name is 1-32 letters, digits, spaces, _ - or ."),
            };
            return Ok(HttpResponse::BadRequest()
                .content_type("text/html; charset=utf-8")
                .body(page.render()?));
        }
    };
    let updated =
        store::set_display_name(&state.db, v.account.id, &display, state.clock.now()).await?;
    if let Some(account) = updated {
        state.accounts.hub.do_send(Notify {
            user_id: account.id,
            event: AccountEvent::Changed(account),
        });
    }
    Ok(see_other("/account?saved=1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/rooms/lobby")), "/rooms/lobby");
        for away in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "rooms",
        ] {
            assert_eq!(safe_next(Some(away)), "/", "{away}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
