//! Account pages: register, log in, log out, and `/account` (the display
//! name). Every POST carries a CSRF token; logins are throttled.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use url::{Position, Url};

use super::client_addr::client_addr_text;
use super::error::{retry_later, PageError, UNAVAILABLE_RETRY};
use super::session::{
    check_csrf, form_token, with_csrf_cookie, CsrfForm, MaybeViewer, SESSION_COOKIE,
};
use super::{html, see_other, Nav};
use crate::accounts::hub::{self, AccountEvent};
use crate::accounts::password::PasswordError;
use crate::accounts::store::{self, AccountError};
use crate::accounts::{check_new_password, Account, LoginName, PASSWORD_LEN};
use crate::bus::Bus;
use crate::clock;
use crate::config::{AccountSettings, Settings};
use crate::domain::user_name::UserName;
use crate::web::session::Accounts;

/// Where to go after logging in: a path on this site, never elsewhere;
/// `/` for anything else.
fn safe_next(next: Option<&str>) -> String {
    next.and_then(same_origin_path)
        .unwrap_or_else(|| "/".to_owned())
}

/// `next` as a path (and query) on this site, parsed the way a browser
/// reads a `Location`: by the WHATWG URL rules, which drop tabs and line
/// breaks (`/\t/evil.example` is `//evil.example`, another host) and read
/// `\` as `/`. What comes back is the parsed URL's own path and query, so
/// nothing the parser would read differently is ever sent. Before that,
/// anything a browser or a proxy could read as leaving is refused outright:
/// whitespace, control characters, backslashes, a second slash at the
/// start; and the same in the path once percent-decoded (`/%2F/evil`). A
/// query's escapes stay: `?q=hollow%20knight` is a search, and no query
/// can change the origin.
fn same_origin_path(next: &str) -> Option<String> {
    let refused = |text: &str| {
        !text.starts_with('/')
            || text[1..].starts_with('/')
            || text
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    };
    let path = next.split(['?', '#']).next().unwrap_or_default();
    if refused(next) || refused(&percent_decoded(path)) {
        return None;
    }
    // A host that cannot be a real one: only the origin is compared.
    let here = Url::parse("http://this-site.invalid/").ok()?;
    let url = here.join(next).ok()?;
    (url.origin() == here.origin()).then(|| url[Position::BeforePath..].to_owned())
}

/// `text` with its `%XX` escapes decoded (invalid UTF-8 replaced); other
/// `%`s stay as they are.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits make at most 255.
                out.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a busy password pool makes a login or a registration say.
const BUSY: &str = "The server is busy checking other passwords. Try again in a moment.";

/// Minutes to wait, rounded up, for people.
fn minutes(wait: Duration) -> u64 {
    wait.as_secs().div_ceil(60).max(1)
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
    accounts: web::Data<Accounts>,
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
    Ok(with_csrf_cookie(html(page.render()?), &accounts, fresh))
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
    db: web::Data<DatabaseConnection>,
    settings: web::Data<Settings>,
    accounts: web::Data<Accounts>,
    bus: web::Data<dyn Bus>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&req, &viewer, &form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let address = client_addr_text(&req);
    // Counted per name only when it can be a login name (2-32 characters
    // of a small alphabet): anything else matches no account, and would
    // let anyone make the throttle keep strings of any length.
    let name = LoginName::parse(&form.name).ok();
    let counted = name.as_ref().map(LoginName::as_str);
    let refuse = |status: StatusCode, error: &str| -> Result<HttpResponse, PageError> {
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
    let throttle = FailedLogins {
        settings: &settings.accounts,
        accounts: &accounts,
        bus: bus.get_ref(),
    };
    if let Err(wait) = throttle.check(counted, &address).await {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed attempts. Try again in {} minute(s).",
                minutes(wait)
            ),
        )
        .map(|page| retry_later(page, Some(wait)));
    }
    // No password longer than any account may have is hashed.
    let checkable = form.password.chars().count() <= *PASSWORD_LEN.end();
    let account = match &name {
        Some(name) if checkable => {
            let passwords = &accounts.passwords;
            match store::authenticate(db.get_ref(), passwords, name, &form.password).await {
                Ok(account) => account,
                Err(AccountError::Busy) => {
                    return refuse(StatusCode::SERVICE_UNAVAILABLE, BUSY)
                        .map(|page| retry_later(page, Some(UNAVAILABLE_RETRY)))
                }
                Err(err) => return Err(account_error(err)),
            }
        }
        _ => None,
    };
    let Some(account) = account else {
        throttle.failed(counted, &address).await;
        return refuse(
            StatusCode::UNAUTHORIZED,
            "That login name and password do not match an account.",
        );
    };
    throttle.succeeded(&account.name).await;
    start_session(&db, &accounts, &account, &next).await
}

/// Failed logins, counted on this node and, in a cluster, on the bus for
/// every node together: a load balancer spreading one guesser's attempts
/// over three nodes must not give them three times the limit. With the bus
/// down, this node's own counts still hold.
struct FailedLogins<'a> {
    settings: &'a AccountSettings,
    accounts: &'a Accounts,
    bus: &'a dyn Bus,
}

impl FailedLogins<'_> {
    /// The keys counted for an attempt, each with its limit.
    fn keys(&self, name: Option<&str>, address: &str) -> Vec<(String, u32)> {
        let by_name = name.map(|name| (name_key(name), self.settings.login_attempts_per_name));
        let by_address = (
            format!("login:address:{address}"),
            self.settings.login_attempts_per_address,
        );
        by_name.into_iter().chain([by_address]).collect()
    }

    /// `Err(wait)` when the name or the address has failed as often as
    /// its limit allows, on this node or on all of them.
    async fn check(&self, name: Option<&str>, address: &str) -> Result<(), Duration> {
        self.accounts
            .throttle
            .check(name, address, Instant::now())?;
        if !self.bus.shared() {
            return Ok(());
        }
        let window = self.settings.login_window;
        for (key, limit) in self.keys(name, address) {
            match self.bus.read_hits(&key, window).await {
                Ok(hits) if hits.count >= u64::from(limit.max(1)) => {
                    return Err(hits.resets_in.max(Duration::from_secs(1)));
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "failed logins are counted on this node alone");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn failed(&self, name: Option<&str>, address: &str) {
        self.accounts.throttle.failed(name, address, Instant::now());
        if !self.bus.shared() {
            return;
        }
        for (key, _) in self.keys(name, address) {
            if let Err(err) = self.bus.count_hit(&key, self.settings.login_window).await {
                tracing::warn!(error = %err, "failed logins are counted on this node alone");
                return;
            }
        }
    }

    /// A successful login clears its name's count (not the address's: one
    /// good account must not unlock guessing at others).
    async fn succeeded(&self, name: &str) {
        self.accounts.throttle.succeeded(name);
        if self.bus.shared() {
            if let Err(err) = self.bus.forget_hits(&name_key(name)).await {
                tracing::warn!(error = %err, "a login's failed attempts stay counted on the bus");
            }
        }
    }
}

fn name_key(name: &str) -> String {
    format!("login:name:{name}")
}

/// An account error no form can explain.
fn account_error(err: AccountError) -> PageError {
    match err {
        AccountError::Db(err) => err.into(),
        other => PageError::Internal(other.into()),
    }
}

/// Counts a registration from `address`: `Err(wait)` past the limit. In a
/// cluster the nodes count together on the bus, so that a load balancer
/// spreading the attempts does not multiply the limit; with no bus, or
/// with it down, this node counts alone.
async fn count_registration(
    settings: &Settings,
    accounts: &Accounts,
    bus: &dyn Bus,
    address: &str,
) -> Result<(), Duration> {
    let settings = &settings.accounts;
    if bus.shared() {
        let key = format!("register:{address}");
        match bus.count_hit(&key, settings.registration_window).await {
            Ok(hits) if hits.count > u64::from(settings.registrations_per_address.max(1)) => {
                return Err(hits.resets_in.max(Duration::from_secs(1)));
            }
            Ok(_) => return Ok(()),
            Err(err) => {
                tracing::warn!(error = %err, "registrations are counted on this node alone");
            }
        }
    }
    accounts.registrations.hit(address, Instant::now())
}

async fn start_session(
    db: &DatabaseConnection,
    accounts: &Accounts,
    account: &Account,
    next: &str,
) -> Result<HttpResponse, PageError> {
    let lifetime = chrono::Duration::from_std(accounts.lifetime)
        .unwrap_or_else(|_| chrono::Duration::days(30));
    let session =
        store::start_session(db, &accounts.key, account.id, lifetime, clock::now()).await?;
    let mut response = see_other(next);
    let _ = response.add_cookie(&accounts.cookie(SESSION_COOKIE, Some(session.token)));
    tracing::info!(user = %account.name, "logged in");
    Ok(response)
}

/// `GET /register`
pub async fn register_form(
    req: HttpRequest,
    query: web::Query<NextQuery>,
    viewer: MaybeViewer,
    accounts: web::Data<Accounts>,
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
    Ok(with_csrf_cookie(html(page.render()?), &accounts, fresh))
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
    db: web::Data<DatabaseConnection>,
    settings: web::Data<Settings>,
    accounts: web::Data<Accounts>,
    bus: web::Data<dyn Bus>,
) -> Result<HttpResponse, PageError> {
    check_csrf(&req, &viewer, &form.csrf)?;
    let next = safe_next(form.next.as_deref());
    let address = client_addr_text(&req);
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
        // Only a registration that could make an account is counted: a
        // typo costs nothing, and each counted one costs a hash.
        Ok((name, display)) => match count_registration(&settings, &accounts, bus.get_ref(), &address).await {
            Err(wait) => Err((
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many accounts were registered from your address. Try again in {} minute(s).",
                    minutes(wait)
                ),
                Some(wait),
            )),
            Ok(()) => create(&db, &accounts, &name, &display, &form.password)
                .await?
                .map_err(|(status, error)| {
                    let busy = status == StatusCode::SERVICE_UNAVAILABLE;
                    (status, error, busy.then_some(UNAVAILABLE_RETRY))
                }),
        },
        Err(e) => Err((StatusCode::BAD_REQUEST, e, None)),
    };
    match created {
        Ok(account) => start_session(&db, &accounts, &account, &next).await,
        Err((status, error, wait)) => {
            let page = RegisterPage {
                nav: Nav::from(&viewer),
                csrf: &form.csrf,
                name: &form.name,
                display_name: &form.display_name,
                next: &next,
                error: Some(&error),
            };
            let page = HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(page.render()?);
            Ok(retry_later(page, wait))
        }
    }
}

/// Makes the account, hashing its password in the pool: the account, or
/// what the form should say and with which status.
async fn create(
    db: &DatabaseConnection,
    accounts: &Accounts,
    name: &LoginName,
    display: &UserName,
    password: &str,
) -> Result<Result<Account, (StatusCode, String)>, PageError> {
    let hash = match accounts.passwords.hash(password).await {
        Ok(hash) => hash,
        Err(PasswordError::Busy) => {
            return Ok(Err((StatusCode::SERVICE_UNAVAILABLE, BUSY.to_owned())))
        }
        Err(PasswordError::Failed(err)) => return Err(PageError::Internal(err)),
    };
    match store::insert_user(db, name, display, hash, false, clock::now()).await {
        Ok(account) => Ok(Ok(account)),
        Err(AccountError::NameTaken(_)) => Ok(Err((
            StatusCode::BAD_REQUEST,
            "that login name is taken; pick another".to_owned(),
        ))),
        Err(err) => Err(account_error(err)),
    }
}

/// `POST /logout`: ends every session of the account, and its sockets on
/// every topic hear `session: null`.
pub async fn logout(
    req: HttpRequest,
    form: web::Form<CsrfForm>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    let Some(v) = &viewer.0 else {
        return Ok(see_other("/"));
    };
    check_csrf(&req, &viewer, &form.csrf)?;
    store::end_sessions(db.get_ref(), v.account.id).await?;
    hub::notify(&accounts.hub, v.account.id, AccountEvent::LoggedOut);
    tracing::info!(user = %v.account.name, "logged out");
    let mut response = see_other("/");
    let _ = response.add_cookie(&accounts.cookie(SESSION_COOKIE, None));
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
    db: web::Data<DatabaseConnection>,
    accounts: web::Data<Accounts>,
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
        store::set_display_name(db.get_ref(), v.account.id, &display, clock::now()).await?;
    if let Some(account) = updated {
        hub::notify(&accounts.hub, account.id, AccountEvent::Changed(account));
    }
    Ok(see_other("/account?saved=1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/rooms/lobby")), "/rooms/lobby");
        assert_eq!(
            safe_next(Some("/games?q=hollow%20knight&sort=price")),
            "/games?q=hollow%20knight&sort=price"
        );
        assert_eq!(
            safe_next(Some("/jeux/café")),
            "/jeux/caf%C3%A9",
            "sent as ASCII"
        );
        for away in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "rooms",
            "",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/ /evil.example",
            "/%2F/evil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "/%09/evil.example",
            "/rooms/%0d%0aSet-Cookie:x=1",
            "/%2F%2Fevil.example?q=1",
            "javascript:alert(1)",
            "/\u{0}evil",
            "/\u{2028}/evil.example",
        ] {
            assert_eq!(safe_next(Some(away)), "/", "{away:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn percent_decoding_leaves_stray_percent_signs() {
        assert_eq!(percent_decoded("/a%2Fb%zz%4"), "/a/b%zz%4");
        assert_eq!(percent_decoded("%E2%82%AC"), "€");
    }
}
