//! Errors of the pages and the API: a clear message for the user, the full
//! chain in the log.

use std::time::Duration;

use actix_web::http::header::RETRY_AFTER;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde_json::json;

use crate::protocol::{ErrorCode, Refusal};

/// A refusal for going over a limit: what to tell the user, and when the
/// limit lets them in again (sent as `Retry-After`, for clients that wait
/// on their own).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Limited {
    pub message: String,
    pub wait: Duration,
}

/// `Retry-After` for what is down for now (the bus, an actor restarting):
/// no one knows when it is back, and a client told nothing retries at once.
pub(crate) const UNAVAILABLE_RETRY: Duration = Duration::from_secs(5);

/// `wait` as `Retry-After` says it: whole seconds, rounded up, at least one.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Sets `Retry-After` to `wait`, if there is one: on an error, or on a form
/// shown again with why it was refused, for a person to read and for a
/// client that waits on its own.
pub(crate) fn retry_later(mut response: HttpResponse, wait: Option<Duration>) -> HttpResponse {
    if let Some(wait) = wait {
        response
            .headers_mut()
            .insert(RETRY_AFTER, whole_seconds(wait).into());
    }
    response
}

/// An error on an HTML page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// The page needs a logged-in account; the path to come back to.
    #[error("log in to see {0}")]
    LoginRequired(String),
    /// The object is not in a state the action applies to.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    TooManyRequests(Limited),
    /// What the page needs cannot be reached now; trying later may work.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for PageError {
    fn from(err: sea_orm::DbErr) -> Self {
        PageError::Internal(err.into())
    }
}

impl From<askama::Error> for PageError {
    fn from(err: askama::Error) -> Self {
        PageError::Internal(err.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: super::Nav,
    title: &'a str,
    message: &'a str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::LoginRequired(_) => StatusCode::SEE_OTHER,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            PageError::LoginRequired(here) => {
                return super::see_other(&super::accounts::login_url(here))
            }
            PageError::Conflict(msg) => ("Not possible now", msg.clone()),
            PageError::TooManyRequests(limited) => ("Slow down", limited.message.clone()),
            PageError::Unavailable(msg) => ("Not available now", msg.clone()),
            PageError::Forbidden(msg) => ("Not allowed", msg.clone()),
            PageError::NotFound => ("Not found", "There is nothing at this address.".to_owned()),
            PageError::BadRequest(msg) => ("Bad request", msg.clone()),
            PageError::Internal(err) => {
                tracing::error!(error = ?err, "page failed");
                (
                    "Something went wrong",
                    "The server could not show this page. Try again in a moment.".to_owned(),
                )
            }
        };
        let body = ErrorPage {
            nav: super::Nav::default(),
            title,
            message: &message,
        }
        .render()
        .unwrap_or_else(|_| message.clone());
        let wait = match self {
            PageError::TooManyRequests(limited) => Some(limited.wait),
            PageError::Unavailable(_) => Some(UNAVAILABLE_RETRY),
            _ => None,
        };
        let response = HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .body(body);
        retry_later(response, wait)
    }
}

/// An error of the JSON API: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API token is required (Authorization: Bearer ...)")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    Conflict { message: String, id: i64 },
    #[error(transparent)]
    TooManyRequests(Limited),
    /// Something the call needs is down for now (in a cluster, the bus).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        ApiError::Internal(err.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, message) = match self {
            ApiError::Unauthorized => (ErrorCode::Unauthorized, self.to_string()),
            ApiError::NotFound => (ErrorCode::NotFound, self.to_string()),
            ApiError::BadRequest(m) => (ErrorCode::BadRequest, m.clone()),
            ApiError::Forbidden(m) => (ErrorCode::Forbidden, m.clone()),
            ApiError::Conflict { message, .. } => (ErrorCode::Conflict, message.clone()),
            ApiError::TooManyRequests(limited) => {
                (ErrorCode::TooManyRequests, limited.message.clone())
            }
            ApiError::Unavailable(m) => (ErrorCode::Unavailable, m.clone()),
            ApiError::Internal(err) => {
                tracing::error!(error = ?err, "api call failed");
                (
                    ErrorCode::Internal,
                    "internal error; see the server log".to_owned(),
                )
            }
        };
        let mut body = Refusal::new(code, message).http_body();
        if let ApiError::Conflict { id, .. } = self {
            body["id"] = json!(id);
        }
        let wait = match self {
            ApiError::TooManyRequests(limited) => Some(limited.wait),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY),
            _ => None,
        };
        retry_later(HttpResponse::build(self.status_code()).json(body), wait)
    }
}

/// A request an extractor refused (a query string, path segment, form or
/// JSON body that does not parse) answered as the rest of the site answers:
/// the API's JSON error under `/api/`, an error page elsewhere, rather
/// than actix's plain text. The status is the extractor's (400, or 413 for
/// a body over its limit).
fn refused(req: &actix_web::HttpRequest, status: StatusCode, message: String) -> actix_web::Error {
    let response = if req.path().starts_with("/api/") {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::BadRequest,
        };
        HttpResponse::build(status).json(Refusal::new(code, message.clone()).http_body())
    } else {
        let mut page = PageError::BadRequest(message.clone()).error_response();
        *page.status_mut() = status;
        page
    };
    actix_web::error::InternalError::from_response(message, response).into()
}

/// Query strings: `?before=abc` is a 400 that says which field is wrong.
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, req| {
        let message = format!(
            "the query string {:?} does not parse: {}",
            req.query_string(),
            err.to_string()
                .trim_start_matches("Query deserialize error: ")
        );
        refused(req, StatusCode::BAD_REQUEST, message)
    })
}

/// Path segments: `/api/crawls/abc`.
pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|err, req| {
        let message = format!("{:?} is not an address here: {err}", req.path());
        refused(req, StatusCode::BAD_REQUEST, message)
    })
}

/// Forms: a field missing or of the wrong type.
pub fn form_config() -> actix_web::web::FormConfig {
    actix_web::web::FormConfig::default()
        .error_handler(|err, req| refused(req, err.status_code(), err.to_string()))
}

/// JSON bodies, up to 64 KiB.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(64 << 10)
        .error_handler(|err, req| refused(req, err.status_code(), err.to_string()))
}
