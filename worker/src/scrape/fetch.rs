//! Fetching pages with awc: timeouts, a cap on body size, a limit on
//! redirects, and only hosts the task's site allows (checked on every hop).

use std::time::Duration;

use awc::http::header;
use url::Url;

use super::hosts::is_allowed;

/// The longest a whole fetch may take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest page read; bigger ones fail the task.
pub const MAX_BODY: usize = 2 << 20;
/// The most redirects followed for one fetch.
pub const MAX_REDIRECTS: usize = 5;
/// The largest robots.txt read.
const MAX_ROBOTS: usize = 512 << 10;

/// Who we say we are to stores.
pub const USER_AGENT: &str = concat!("bazaar/", env!("CARGO_PKG_VERSION"), " (price crawler)");

/// A fetched HTML page.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL after redirects.
    pub url: Url,
    pub html: String,
}

/// Why a fetch failed, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("host {0} is not allowed for this site")]
    HostNotAllowed(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("redirect without a valid Location")]
    BadRedirect,
    #[error("http {0}")]
    Status(u16),
    #[error("not HTML (content-type {0})")]
    NotHtml(String),
    #[error("page larger than {} KiB", MAX_BODY / 1024)]
    TooLarge,
    #[error("request failed: {0}")]
    Request(String),
    #[error("timed out after {}s", TIMEOUT.as_secs())]
    Timeout,
}

impl FetchError {
    /// Server errors, throttling and network trouble may pass; the rest won't.
    pub fn retryable(&self) -> bool {
        match self {
            FetchError::Status(code) => *code >= 500 || *code == 429 || *code == 408,
            FetchError::Request(_) | FetchError::Timeout => true,
            _ => false,
        }
    }
}

/// An HTTP client for pages. Cheap to clone; one per thread (awc is !Send).
#[derive(Clone)]
pub struct Fetcher {
    client: awc::Client,
}

impl Fetcher {
    pub fn new() -> Fetcher {
        let connector = crate::net::connector().timeout(CONNECT_TIMEOUT);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(TIMEOUT)
            // Redirects are followed by hand so each hop's host is checked.
            .disable_redirects()
            .add_default_header((header::USER_AGENT, USER_AGENT))
            .finish();
        Fetcher { client }
    }

    /// The client the Dispatcher uses for robots.txt.
    pub fn for_robots() -> Fetcher {
        Fetcher::new()
    }

    /// Fetches an HTML page on one of `allowed_hosts`.
    pub async fn page(&self, url: &Url, allowed_hosts: &[String]) -> Result<Page, FetchError> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            if !is_allowed(&url, allowed_hosts) {
                return Err(FetchError::HostNotAllowed(
                    url.host_str().unwrap_or("?").to_owned(),
                ));
            }
            let mut resp = self
                .client
                .get(url.as_str())
                .insert_header((header::ACCEPT, "text/html,application/xhtml+xml"))
                .send()
                .await
                .map_err(|e| match e {
                    awc::error::SendRequestError::Timeout => FetchError::Timeout,
                    e => FetchError::Request(e.to_string()),
                })?;
            let status = resp.status();
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or(FetchError::BadRedirect)?;
                url = location;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|c| c.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if !(content_type.is_empty()
                || content_type.starts_with("text/html")
                || content_type.starts_with("application/xhtml"))
            {
                return Err(FetchError::NotHtml(content_type));
            }
            let body = resp.body().limit(MAX_BODY).await.map_err(|e| match e {
                awc::error::PayloadError::Overflow => FetchError::TooLarge,
                e => FetchError::Request(e.to_string()),
            })?;
            let html = String::from_utf8_lossy(&body).into_owned();
            return Ok(Page { url, html });
        }
        Err(FetchError::TooManyRedirects)
    }

    /// Fetches robots.txt. `Ok(None)` when there is none (4xx).
    pub async fn robots(&self, url: &str) -> Result<Option<String>, FetchError> {
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::Request(e.to_string()))?;
        let status = resp.status();
        if status.is_client_error() {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let body = resp
            .body()
            .limit(MAX_ROBOTS)
            .await
            .map_err(|e| FetchError::Request(e.to_string()))?;
        Ok(Some(String::from_utf8_lossy(&body).into_owned()))
    }
}

impl Default for Fetcher {
    fn default() -> Self {
        Fetcher::new()
    }
}
