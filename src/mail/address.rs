//! `EmailAddress`: a recipient, parsed once at the edge so the outbox and the
//! Mailer never see a raw string.

use std::fmt;
use std::str::FromStr;

/// The longest address SMTP can carry (RFC 5321's path limit, less `<>`).
const MAX_LEN: usize = 254;

/// A syntactically valid email address with no line breaks in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(lettre::Address);

/// Why a text is not an email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("an email address is needed")]
    Empty,
    #[error("an email address cannot contain line breaks or control characters")]
    ControlCharacter,
    #[error("an email address has at most {MAX_LEN} characters")]
    TooLong,
    #[error("{0:?} is not an email address (expected something like name@example.com)")]
    Invalid(String),
}

impl EmailAddress {
    /// Parses what someone typed; surrounding spaces are ignored.
    pub fn parse(text: &str) -> Result<EmailAddress, AddressError> {
        // Checked before trimming: a trailing CR/LF is an injection attempt,
        // not whitespace to forgive.
        if text.chars().any(char::is_control) {
            return Err(AddressError::ControlCharacter);
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(AddressError::TooLong);
        }
        let address =
            lettre::Address::from_str(text).map_err(|_| AddressError::Invalid(text.to_owned()))?;
        // Domains are case-insensitive, so `Ana@Example.COM` and
        // `Ana@example.com` are one subscriber; the local part is left
        // alone, as only its server may interpret it.
        lettre::Address::new(address.user(), address.domain().to_ascii_lowercase())
            .map(EmailAddress)
            .map_err(|_| AddressError::Invalid(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    pub(crate) fn to_lettre(&self) -> lettre::Address {
        self.0.clone()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_address_parses_and_keeps_its_text() {
        let address = EmailAddress::parse("  ana@example.com ").unwrap();
        assert_eq!(address.as_str(), "ana@example.com");
        assert_eq!(address.to_string(), "ana@example.com");
        assert_eq!(
            EmailAddress::parse("Ana@Example.COM").unwrap().as_str(),
            "Ana@example.com"
        );
    }

    #[test]
    fn line_breaks_are_refused_even_at_the_end() {
        for text in [
            "ana@example.com\r\nBcc: all@example.com",
            "ana@example.com\n",
            "ana@exa\rmple.com",
        ] {
            assert_eq!(
                EmailAddress::parse(text),
                Err(AddressError::ControlCharacter),
                "{text:?}"
            );
        }
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_clear_error() {
        assert_eq!(EmailAddress::parse("   "), Err(AddressError::Empty));
        for text in [
            "ana",
            "ana@",
            "@example.com",
            "ana @example.com",
            "a<b>@x.y",
        ] {
            let err = EmailAddress::parse(text).unwrap_err();
            assert!(matches!(err, AddressError::Invalid(_)), "{text:?}: {err:?}");
            assert!(err.to_string().contains("name@example.com"));
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(AddressError::TooLong));
    }
}
