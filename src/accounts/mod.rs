//! Accounts: login names, argon2id password hashes, login sessions behind an
//! HttpOnly cookie, CSRF tokens, login throttling, and the hub that tells an
//! account's open sockets when it changes or logs out.

pub(crate) mod hub;
pub(crate) mod password;
pub mod store;
pub(crate) mod throttle;
pub(crate) mod token;

use std::fmt;

/// A login name: 2-32 lowercase letters, digits, `_ - .`; compared and
/// stored lowercased so that `Ana` and `ana` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginName(String);

impl LoginName {
    pub fn parse(raw: &str) -> Result<LoginName, String> {
        let name = raw.trim().to_lowercase();
        let count = name.chars().count();
        let ok = (2..=32).contains(&count)
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
            });
        if ok {
            Ok(LoginName(name))
        } else {
            Err("a login name is 2-32 letters (a-z), digits, _ - or .".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LoginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The shortest and longest passwords accepted.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=256;

/// Checks a new password's length (in characters).
pub fn check_new_password(password: &str) -> Result<(), String> {
    if PASSWORD_LEN.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(format!(
            "a password is {}-{} characters",
            PASSWORD_LEN.start(),
            PASSWORD_LEN.end()
        ))
    }
}

/// The account as pages, sockets and the `session` event see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    #[serde(skip)]
    pub is_admin: bool,
}

impl Account {
    /// The account as the `session` event shows it.
    pub fn view(&self) -> crate::protocol::client::UserView {
        crate::protocol::client::UserView {
            id: self.id,
            name: self.name.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

impl From<&entity::users::Model> for Account {
    fn from(user: &entity::users::Model) -> Account {
        Account {
            id: user.id,
            name: user.name.clone(),
            display_name: user.display_name.clone(),
            is_admin: user.is_admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names_are_lowercased_and_restricted() {
        assert_eq!(LoginName::parse(" Ana ").unwrap().as_str(), "ana");
        for good in ["ab", "jo.el", "x_y-z9", &"a".repeat(32)] {
            assert!(LoginName::parse(good).is_ok(), "{good}");
        }
        for bad in ["a", "", "ana bel", "<b>", "zoë", "a'--", &"a".repeat(33)] {
            assert!(LoginName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password(&"x".repeat(257)).is_err());
    }
}
