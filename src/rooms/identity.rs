//! Who is on the other end of a client socket. Guests name themselves with
//! `?name=`; accounts (a later addition) will be read from the session cookie
//! here, and nothing past this point needs to change.

use actix_web::HttpRequest;
use serde::Deserialize;

use crate::domain::user_name::UserName;

/// A connection's identity, fixed for its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserName,
    /// The account id; `None` for a guest.
    pub account: Option<i64>,
}

impl Identity {
    pub fn is_guest(&self) -> bool {
        self.account.is_none()
    }
}

/// Why a socket could not be identified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("log in, or choose a guest name with ?name=")]
    Missing,
    #[error("{0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct GuestQuery {
    name: Option<String>,
}

/// Identifies the client opening `/ws`.
pub fn identify(req: &HttpRequest) -> Result<Identity, IdentityError> {
    let query = actix_web::web::Query::<GuestQuery>::from_query(req.query_string())
        .map_err(|e| IdentityError::Invalid(format!("bad query string: {e}")))?;
    let name = query.into_inner().name.ok_or(IdentityError::Missing)?;
    let user = UserName::parse_guest(&name).map_err(IdentityError::Invalid)?;
    Ok(Identity {
        user,
        account: None,
    })
}
