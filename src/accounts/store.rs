//! Accounts and sessions in the database.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::{sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QuerySelect, SqlErr,
};

use super::password::{self, PasswordError, Passwords};
use super::{token, Account, LoginName};
use crate::domain::user_name::UserName;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the login name {0} is taken")]
    NameTaken(String),
    /// Too many passwords are being checked already.
    #[error("the server is busy checking other passwords; try again in a moment")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<PasswordError> for AccountError {
    fn from(err: PasswordError) -> AccountError {
        match err {
            PasswordError::Busy => AccountError::Busy,
            PasswordError::Failed(err) => AccountError::Other(err),
        }
    }
}

/// Makes an account, hashing its password where it is: for the command
/// line and the benchmark, which make accounts one at a time. The server
/// hashes through its [`Passwords`] and calls [`insert_user`].
pub async fn create_user(
    db: &impl ConnectionTrait,
    name: &LoginName,
    display_name: &UserName,
    password: &str,
    is_admin: bool,
    now: DateTime<Utc>,
) -> Result<Account, AccountError> {
    let hash = password::hash(password)?;
    insert_user(db, name, display_name, hash, is_admin, now).await
}

/// Makes an account whose password hashes to `hash` (a PHC string).
pub async fn insert_user(
    db: &impl ConnectionTrait,
    name: &LoginName,
    display_name: &UserName,
    hash: String,
    is_admin: bool,
    now: DateTime<Utc>,
) -> Result<Account, AccountError> {
    let inserted = users::ActiveModel {
        name: Set(name.as_str().to_owned()),
        display_name: Set(display_name.as_str().to_owned()),
        password_hash: Set(hash),
        is_admin: Set(is_admin),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await;
    match inserted {
        Ok(user) => Ok(Account::from(&user)),
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(AccountError::NameTaken(name.to_string()))
        }
        Err(err) => Err(err.into()),
    }
}

/// The account `name` logs in to with `password`, if both are right. Takes
/// as long for an unknown name as for a wrong password.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    passwords: &Passwords,
    name: &LoginName,
    password: &str,
) -> Result<Option<Account>, AccountError> {
    let user = users::Entity::find()
        .filter(users::Column::Name.eq(name.as_str()))
        .one(db)
        .await?;
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let matched = passwords.verify(password, phc).await?;
    Ok(user.filter(|_| matched).map(|u| Account::from(&u)))
}

pub async fn set_display_name(
    db: &impl ConnectionTrait,
    id: i64,
    display_name: &UserName,
    now: DateTime<Utc>,
) -> Result<Option<Account>, DbErr> {
    users::Entity::update_many()
        .col_expr(
            users::Column::DisplayName,
            Expr::value(display_name.as_str()),
        )
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(users::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(|u| Account::from(&u)))
}

/// The display names of some accounts, by id.
pub async fn display_names(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, String>, DbErr> {
    let mut ids: Vec<i64> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let pairs: Vec<(i64, String)> = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .column(users::Column::DisplayName)
        .filter(users::Column::Id.is_in(ids))
        .into_tuple()
        .all(db)
        .await?;
    Ok(pairs.into_iter().collect())
}

/// A new login session: the token for the cookie, and its CSRF token.
pub struct NewSession {
    pub token: String,
    pub csrf: String,
}

pub async fn start_session(
    db: &impl ConnectionTrait,
    key: &[u8],
    user_id: i64,
    lifetime: Duration,
    now: DateTime<Utc>,
) -> Result<NewSession, DbErr> {
    let new = NewSession {
        token: token::random(),
        csrf: token::random(),
    };
    sessions::Entity::insert(sessions::ActiveModel {
        id: Set(token::keyed_hash(key, &new.token)),
        user_id: Set(user_id),
        csrf: Set(new.csrf.clone()),
        created_at: Set(now),
        expires_at: Set(now + lifetime),
    })
    .exec_without_returning(db)
    .await?;
    Ok(new)
}

/// A login session that has not expired.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub account: Account,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// The session behind a session cookie, unless it expired.
pub async fn session(
    db: &impl ConnectionTrait,
    key: &[u8],
    cookie_token: &str,
    now: DateTime<Utc>,
) -> Result<Option<LiveSession>, DbErr> {
    let found = sessions::Entity::find_by_id(token::keyed_hash(key, cookie_token))
        .find_also_related(users::Entity)
        .one(db)
        .await?;
    Ok(match found {
        Some((session, Some(user))) if session.expires_at > now => Some(LiveSession {
            account: Account::from(&user),
            csrf: session.csrf,
            expires_at: session.expires_at,
        }),
        _ => None,
    })
}

/// Ends every session of an account (logging out ends them all, as the
/// account's sockets on every device are told so too).
pub async fn end_sessions(db: &impl ConnectionTrait, user_id: i64) -> Result<u64, DbErr> {
    let done = sessions::Entity::delete_many()
        .filter(sessions::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}
