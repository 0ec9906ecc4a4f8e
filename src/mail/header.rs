//! Header text a mail carries (subjects, display names, extra headers),
//! checked once so no line break can smuggle in a header of its own.

use std::fmt;

/// The longest header line RFC 5322 allows, without its CRLF.
const MAX_LEN: usize = 998;

/// Text that is safe in a header value: no CR, LF or other control character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderText(String);

/// An extra header: a valid field name and a `HeaderText` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHeader {
    name: String,
    value: HeaderText,
}

/// Why a text cannot go into a header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header text cannot contain line breaks or control characters")]
    ControlCharacter,
    #[error("header text has at most {MAX_LEN} characters")]
    TooLong,
    #[error("{0:?} is not a header name (letters, digits and '-' only)")]
    InvalidName(String),
}

impl HeaderText {
    pub fn parse(text: &str) -> Result<HeaderText, HeaderError> {
        if text.chars().any(char::is_control) {
            return Err(HeaderError::ControlCharacter);
        }
        if text.len() > MAX_LEN {
            return Err(HeaderError::TooLong);
        }
        Ok(HeaderText(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ExtraHeader {
    /// `List-Unsubscribe: <https://...>`, say.
    pub fn parse(name: &str, value: &str) -> Result<ExtraHeader, HeaderError> {
        let valid_name = !name.is_empty()
            && name.len() <= 76
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_name {
            return Err(HeaderError::InvalidName(name.to_owned()));
        }
        Ok(ExtraHeader {
            name: name.to_owned(),
            value: HeaderText::parse(value)?,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn value(&self) -> &HeaderText {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_with_a_line_break_is_refused() {
        assert_eq!(
            HeaderText::parse("Price drop\r\nBcc: everyone@example.com"),
            Err(HeaderError::ControlCharacter)
        );
        assert_eq!(
            HeaderText::parse("Hi\n"),
            Err(HeaderError::ControlCharacter)
        );
        assert_eq!(
            HeaderText::parse("Price drop: Doom → 4,99 €")
                .unwrap()
                .as_str(),
            "Price drop: Doom → 4,99 €"
        );
    }

    #[test]
    fn extra_headers_need_a_plain_name_and_a_safe_value() {
        let header = ExtraHeader::parse("List-Id", "Bazaar <digest.bazaar.localhost>").unwrap();
        assert_eq!(header.name(), "List-Id");
        assert!(matches!(
            ExtraHeader::parse("List-Id: x\r\nBcc", "v"),
            Err(HeaderError::InvalidName(_))
        ));
        assert!(matches!(
            ExtraHeader::parse("", "v"),
            Err(HeaderError::InvalidName(_))
        ));
        assert_eq!(
            ExtraHeader::parse("List-Id", "a\r\nBcc: b"),
            Err(HeaderError::ControlCharacter)
        );
    }
}
