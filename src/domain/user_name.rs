//! The name a person shows under in rooms: a guest's chosen name, or later an
//! account's display name.

use std::fmt;

/// The longest guest name.
pub const MAX_GUEST_NAME: usize = 32;

/// 1-32 letters, digits, `_ - .` or spaces, not blank (docs/protocol.md §1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

impl UserName {
    pub fn parse_guest(raw: &str) -> Result<UserName, String> {
        let count = raw.chars().count();
        let ok = (1..=MAX_GUEST_NAME).contains(&count)
            && !raw.trim().is_empty()
            && raw
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
        if ok {
            Ok(UserName(raw.trim().to_owned()))
        } else {
            Err(format!(
                "a guest name is 1-{MAX_GUEST_NAME} letters, digits, spaces, _ - or ."
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_names_allow_letters_digits_and_a_few_marks() {
        for good in ["ana", "Bob 2", "jo.el", "x_y-z", "Zoë", &"a".repeat(32)] {
            assert!(UserName::parse_guest(good).is_ok(), "{good}");
        }
        for bad in ["", "   ", "<b>", "a\nb", "ana;drop", &"a".repeat(33)] {
            assert!(UserName::parse_guest(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            UserName::parse_guest(" ana ").expect("trimmed").as_str(),
            "ana"
        );
    }
}
