//! Who is on the other end of a client socket: the account behind the
//! session cookie, else a guest who names themselves with `?name=`.

use actix_web::HttpRequest;
use serde::Deserialize;

use crate::accounts::Account;
use crate::domain::user_name::UserName;

/// A connection's identity: the name it shows in rooms, and its account.
/// An account's sockets follow it: a new display name, or logging out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserName,
    /// `None` for a guest.
    pub account: Option<Account>,
}

impl Identity {
    pub fn of_account(account: Account) -> Identity {
        // Display names are checked with the guest-name rules when set; a
        // row that fails them still shows as its login name.
        let user = UserName::parse_guest(&account.display_name)
            .or_else(|_| UserName::parse_guest(&account.name))
            .unwrap_or_else(|_| UserName::parse_guest("account").expect("a valid name"));
        Identity {
            user,
            account: Some(account),
        }
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

/// Identifies a guest opening `/ws` (no session cookie).
pub fn identify_guest(req: &HttpRequest) -> Result<Identity, IdentityError> {
    let query = actix_web::web::Query::<GuestQuery>::from_query(req.query_string())
        .map_err(|e| IdentityError::Invalid(format!("bad query string: {e}")))?;
    let name = query.into_inner().name.ok_or(IdentityError::Missing)?;
    let user = UserName::parse_guest(&name).map_err(IdentityError::Invalid)?;
    Ok(Identity {
        user,
        account: None,
    })
}
