//! Turns the price text a store shows (or the amount its markup carries) into
//! integer cents and an ISO currency code, without ever going through floats.

use thiserror::Error;

/// A price in minor units of `currency` (cents for EUR, USD, GBP…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub cents: i64,
    pub currency: String,
}

/// Anything above this is a parsing accident, not a game (a billion units).
const MAX_CENTS: i64 = 100_000_000_000;

/// Why a price could not be read. The messages end up in admin-facing task
/// failure reasons, so they quote (a bounded snippet of) the offending text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PriceError {
    #[error("the price text is empty")]
    Empty,
    #[error("\"{0}\" is not a price")]
    NotAPrice(String),
    #[error("\"{0}\" is a negative price")]
    Negative(String),
    #[error("\"{0}\" contains more than one number")]
    MultipleNumbers(String),
    #[error("\"{0}\" is not a well-formed amount (digit grouping or decimals do not add up)")]
    Malformed(String),
    #[error("\"{0}\" has more than two decimal digits")]
    TooManyDecimals(String),
    #[error("\"{text}\" names two currencies ({first} and {second})")]
    MixedCurrencies {
        text: String,
        first: String,
        second: String,
    },
    #[error("\"{0}\" is implausibly large for a price")]
    TooLarge(String),
    #[error("\"{0}\" is not a currency code")]
    InvalidCurrency(String),
}

/// Error messages quote the input; a page can put anything in there.
fn snippet(text: &str) -> String {
    let text = text.trim();
    let mut out: String = text.chars().take(60).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Words a store uses instead of "0.00".
const FREE_WORDS: &[&str] = &[
    "free",
    "free to play",
    "free-to-play",
    "gratis",
    "kostenlos",
    "gratuit",
];

const ISO_CODES: &[&str] = &[
    "EUR", "USD", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK",
    "HUF", "RON", "BGN", "RUB", "UAH", "TRY", "BRL", "MXN", "ARS", "CLP", "COP", "CNY", "HKD",
    "TWD", "KRW", "INR", "IDR", "SGD", "MYR", "THB", "PHP", "VND", "ZAR", "ILS", "AED", "SAR",
];

fn symbol_currency(c: char) -> Option<&'static str> {
    Some(match c {
        '€' => "EUR",
        '$' => "USD",
        '£' => "GBP",
        '¥' => "JPY",
        '₽' => "RUB",
        '₹' => "INR",
        '₩' => "KRW",
        '₺' => "TRY",
        '₴' => "UAH",
        _ => return None,
    })
}

/// A letter run in front of `$` that says which dollar it is ("US$", "C$").
fn dollar_prefix(word: &str) -> Option<&'static str> {
    Some(match word {
        "US" => "USD",
        "C" | "CA" | "CAD" => "CAD",
        "A" | "AU" | "AUD" => "AUD",
        "NZ" => "NZD",
        "R" => "BRL",
        "HK" => "HKD",
        "S" | "SG" => "SGD",
        "MX" => "MXN",
        _ => return None,
    })
}

fn word_currency(word: &str) -> Option<String> {
    let upper = word.to_uppercase();
    if ISO_CODES.contains(&upper.as_str()) {
        return Some(upper);
    }
    match word.to_lowercase().as_str() {
        "zł" | "zl" => Some("PLN".to_owned()),
        "kč" => Some("CZK".to_owned()),
        "ft" => Some("HUF".to_owned()),
        _ => None,
    }
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{a0}' | '\u{202f}' | '\u{2009}' | '\u{200b}')
}

/// Separators that can only group thousands ("1 299,00", "1'299.00").
fn is_group_only(c: char) -> bool {
    is_space(c) || matches!(c, '\'' | '’')
}

fn check_currency(code: &str) -> Result<String, PriceError> {
    let code = code.trim();
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(PriceError::InvalidCurrency(snippet(code)))
    }
}

/// Parses a price as a store displays it: "1.299,00 €", "€19.99", "$19.99",
/// "£5", "USD 19.99", "1,299.00", "Free".
///
/// Separators are read the way a human would: with both `.` and `,` the last
/// one is the decimal point; a lone separator followed by exactly three
/// digits groups thousands ("1.299" is 1299.00, and so is "19.999", since no
/// store prices to a tenth of a cent); one or two digits after a lone
/// separator are decimals; anything else is rejected rather than guessed.
/// A text without a currency symbol or code gets `default_currency`.
pub fn parse_price(text: &str, default_currency: &str) -> Result<Price, PriceError> {
    let trimmed = text.trim_matches(is_space);
    if trimmed.is_empty() {
        return Err(PriceError::Empty);
    }
    let lower = trimmed.to_lowercase();
    if FREE_WORDS.contains(&lower.as_str()) {
        return Ok(Price {
            cents: 0,
            currency: check_currency(default_currency)?,
        });
    }

    let chars: Vec<char> = trimmed.chars().collect();
    let mut currency: Option<String> = None;
    let mut number: Option<String> = None;
    let mut note_currency = |code: String| -> Result<(), PriceError> {
        match &currency {
            Some(existing) if *existing != code => Err(PriceError::MixedCurrencies {
                text: snippet(trimmed),
                first: existing.clone(),
                second: code,
            }),
            _ => {
                currency = Some(code);
                Ok(())
            }
        }
    };

    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_space(c) {
            i += 1;
        } else if let Some(code) = symbol_currency(c) {
            note_currency(code.to_owned())?;
            i += 1;
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if i < chars.len() && chars[i] == '$' {
                match dollar_prefix(&word) {
                    Some(code) => note_currency(code.to_owned())?,
                    None => return Err(PriceError::NotAPrice(snippet(trimmed))),
                }
                i += 1;
            } else {
                match word_currency(&word) {
                    Some(code) => note_currency(code)?,
                    None => return Err(PriceError::NotAPrice(snippet(trimmed))),
                }
            }
        } else if matches!(c, '-' | '−' | '–') && number.is_none() {
            // A minus before any digits; a dash after them is the "19,-" style.
            let digits_follow = chars[i + 1..]
                .iter()
                .find(|c| !is_space(**c))
                .is_some_and(|c| c.is_ascii_digit() || symbol_currency(*c).is_some());
            return Err(if digits_follow {
                PriceError::Negative(snippet(trimmed))
            } else {
                PriceError::NotAPrice(snippet(trimmed))
            });
        } else if c.is_ascii_digit() {
            if number.is_some() {
                return Err(PriceError::MultipleNumbers(snippet(trimmed)));
            }
            let start = i;
            let mut end = i;
            while i < chars.len() {
                let d = chars[i];
                if d.is_ascii_digit() {
                    i += 1;
                    end = i;
                } else if matches!(d, '.' | ',') || is_group_only(d) {
                    // A separator only belongs to the number if a digit follows it.
                    if chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()) {
                        i += 1;
                    } else {
                        break;
                    }
                } else {
                    break;
                }
            }
            let mut raw: String = chars[start..end].iter().collect();
            // "19,-" / "19.–": whole units, as German and Nordic shops write them.
            if matches!(chars.get(i), Some('.' | ','))
                && matches!(chars.get(i + 1), Some('-' | '–' | '—'))
            {
                i += 2;
                raw.push_str(",00");
            }
            number = Some(raw);
        } else {
            return Err(PriceError::NotAPrice(snippet(trimmed)));
        }
    }

    let Some(raw) = number else {
        return Err(PriceError::NotAPrice(snippet(trimmed)));
    };
    let cents = grouped_to_cents(&raw).map_err(|e| e.with_text(trimmed))?;
    let currency = match currency {
        Some(code) => code,
        None => check_currency(default_currency)?,
    };
    Ok(Price { cents, currency })
}

/// Which way a number's separators failed; the caller adds the text.
enum NumberFault {
    Malformed,
    TooManyDecimals,
    TooLarge,
}

impl NumberFault {
    fn with_text(self, text: &str) -> PriceError {
        let text = snippet(text);
        match self {
            NumberFault::Malformed => PriceError::Malformed(text),
            NumberFault::TooManyDecimals => PriceError::TooManyDecimals(text),
            NumberFault::TooLarge => PriceError::TooLarge(text),
        }
    }
}

/// `raw` is digits with single separators between them (the scanner
/// guarantees that shape).
fn grouped_to_cents(raw: &str) -> Result<i64, NumberFault> {
    let mut groups: Vec<&str> = Vec::new();
    let mut seps: Vec<char> = Vec::new();
    let mut start = 0;
    for (idx, c) in raw.char_indices() {
        if !c.is_ascii_digit() {
            groups.push(&raw[start..idx]);
            seps.push(c);
            start = idx + c.len_utf8();
        }
    }
    groups.push(&raw[start..]);

    let has_dot = seps.contains(&'.');
    let has_comma = seps.contains(&',');
    let decimal_sep = match (has_dot, has_comma) {
        (true, true) => seps.iter().rev().copied().find(|c| matches!(c, '.' | ',')),
        (false, false) => None,
        _ => {
            let sep = if has_dot { '.' } else { ',' };
            let count = seps.iter().filter(|c| **c == sep).count();
            let last_is_sep = seps.last() == Some(&sep);
            let tail = groups.last().map_or(0, |g| g.len());
            if count == 1 && last_is_sep && tail != 3 {
                Some(sep)
            } else if count == 1 && last_is_sep && groups.len() == 2 && groups[0] == "0" {
                // "0.999" cannot be a thousands group: it has three decimals.
                return Err(NumberFault::TooManyDecimals);
            } else {
                None
            }
        }
    };

    let (int_groups, decimals) = match decimal_sep {
        Some(sep) => {
            if seps.last() != Some(&sep) || seps.iter().filter(|c| **c == sep).count() != 1 {
                return Err(NumberFault::Malformed);
            }
            let (last, rest) = groups.split_last().ok_or(NumberFault::Malformed)?;
            (rest.to_vec(), *last)
        }
        None => (groups, ""),
    };
    if decimals.len() > 2 {
        return Err(NumberFault::TooManyDecimals);
    }
    let int_seps = if decimal_sep.is_some() {
        &seps[..seps.len() - 1]
    } else {
        &seps[..]
    };
    // Thousands separators must be one kind, with full groups of three.
    if let Some(first) = int_seps.first() {
        if int_seps
            .iter()
            .any(|s| s != first && !(is_group_only(*s) && is_group_only(*first)))
        {
            return Err(NumberFault::Malformed);
        }
        let lead = int_groups.first().map_or(0, |g| g.len());
        if !(1..=3).contains(&lead) || int_groups[1..].iter().any(|g| g.len() != 3) {
            return Err(NumberFault::Malformed);
        }
    }

    let units: String = int_groups.concat();
    let units = units.trim_start_matches('0');
    if units.len() > 12 {
        return Err(NumberFault::TooLarge);
    }
    let units: i64 = if units.is_empty() {
        0
    } else {
        units.parse().map_err(|_| NumberFault::Malformed)?
    };
    let frac: i64 = match decimals.len() {
        0 => 0,
        1 => {
            decimals
                .parse::<i64>()
                .map_err(|_| NumberFault::Malformed)?
                * 10
        }
        _ => decimals.parse().map_err(|_| NumberFault::Malformed)?,
    };
    let cents = units
        .checked_mul(100)
        .and_then(|c| c.checked_add(frac))
        .ok_or(NumberFault::TooLarge)?;
    if cents > MAX_CENTS {
        return Err(NumberFault::TooLarge);
    }
    Ok(cents)
}

/// Parses a machine-readable amount (JSON-LD `price`, OpenGraph
/// `product:price:amount`): "19.99", "19", "19.9", "0.00". The dot is the
/// decimal point; trailing zeros beyond two decimals ("19.990") are fine.
/// A lone comma with one or two decimals ("19,99") is accepted too, since
/// European shops put their display format into markup often enough.
pub fn parse_amount(amount: &str, currency: &str) -> Result<Price, PriceError> {
    let text = amount.trim_matches(is_space);
    if text.is_empty() {
        return Err(PriceError::Empty);
    }
    let currency = check_currency(currency)?;
    let body = text.strip_prefix('+').unwrap_or(text);
    if body.starts_with(['-', '−']) {
        return Err(PriceError::Negative(snippet(text)));
    }
    let (units, decimals) = match body.split_once('.') {
        Some(parts) => parts,
        None => match body.split_once(',') {
            Some((u, d)) if (1..=2).contains(&d.len()) => (u, d),
            Some(_) => return Err(PriceError::NotAPrice(snippet(text))),
            None => (body, ""),
        },
    };
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if units.is_empty() && decimals.is_empty() || !all_digits(units) || !all_digits(decimals) {
        return Err(PriceError::NotAPrice(snippet(text)));
    }
    let (kept, extra) = decimals.split_at(decimals.len().min(2));
    if extra.chars().any(|c| c != '0') {
        return Err(PriceError::TooManyDecimals(snippet(text)));
    }
    let units = units.trim_start_matches('0');
    if units.len() > 12 {
        return Err(PriceError::TooLarge(snippet(text)));
    }
    let units: i64 = if units.is_empty() {
        0
    } else {
        units
            .parse()
            .map_err(|_| PriceError::NotAPrice(snippet(text)))?
    };
    let frac: i64 = match kept.len() {
        0 => 0,
        1 => i64::from(kept.as_bytes()[0] - b'0') * 10,
        _ => kept
            .parse()
            .map_err(|_| PriceError::NotAPrice(snippet(text)))?,
    };
    let cents = units * 100 + frac;
    if cents > MAX_CENTS {
        return Err(PriceError::TooLarge(snippet(text)));
    }
    Ok(Price { cents, currency })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (i64, String) {
        let p = parse_price(text, "EUR").unwrap_or_else(|e| panic!("{text:?}: {e}"));
        (p.cents, p.currency)
    }

    fn eur(cents: i64) -> (i64, String) {
        (cents, "EUR".to_owned())
    }

    #[test]
    fn european_price_with_thousands_dot_is_parsed() {
        assert_eq!(ok("1.299,00 €"), eur(129_900));
    }

    #[test]
    fn european_price_with_decimal_comma_is_parsed() {
        assert_eq!(ok("19,99 €"), eur(1999));
        assert_eq!(ok("7,99 €"), eur(799));
    }

    #[test]
    fn euro_sign_before_dotted_amount_is_parsed() {
        assert_eq!(ok("€19.99"), eur(1999));
    }

    #[test]
    fn dollar_and_pound_signs_set_the_currency() {
        assert_eq!(ok("$19.99"), (1999, "USD".to_owned()));
        assert_eq!(ok("£5"), (500, "GBP".to_owned()));
        assert_eq!(ok("US$ 4.50"), (450, "USD".to_owned()));
    }

    #[test]
    fn iso_codes_before_or_after_the_amount_set_the_currency() {
        assert_eq!(ok("USD 19.99"), (1999, "USD".to_owned()));
        assert_eq!(ok("19.99 EUR"), eur(1999));
        assert_eq!(ok("19,99 gbp"), (1999, "GBP".to_owned()));
    }

    #[test]
    fn english_thousands_comma_uses_the_default_currency() {
        let p = parse_price("1,299.00", "USD").unwrap();
        assert_eq!(
            p,
            Price {
                cents: 129_900,
                currency: "USD".into()
            }
        );
    }

    #[test]
    fn bare_amount_uses_the_default_currency() {
        let p = parse_price("19.99", "gbp").unwrap();
        assert_eq!(
            p,
            Price {
                cents: 1999,
                currency: "GBP".into()
            }
        );
    }

    #[test]
    fn free_words_and_zero_are_zero() {
        for text in ["Free", "free", "Gratis", "FREE TO PLAY", "0", "0,00 €"] {
            assert_eq!(ok(text).0, 0, "{text}");
        }
    }

    #[test]
    fn surrounding_whitespace_and_nbsp_are_ignored() {
        assert_eq!(ok("\n   19,99\u{a0}€ \t\n"), eur(1999));
        assert_eq!(ok("1\u{202f}299,00\u{a0}€"), eur(129_900));
    }

    #[test]
    fn lone_separator_before_three_digits_groups_thousands() {
        assert_eq!(ok("1.299"), eur(129_900));
        assert_eq!(ok("1,299"), eur(129_900));
        assert_eq!(ok("19.999"), eur(1_999_900));
        assert_eq!(ok("1.299.000 €"), eur(129_900_000));
    }

    #[test]
    fn one_decimal_digit_means_tens_of_cents() {
        assert_eq!(ok("19,9 €"), eur(1990));
    }

    #[test]
    fn german_dash_for_whole_units_is_accepted() {
        assert_eq!(ok("19,- €"), eur(1900));
    }

    #[test]
    fn text_that_is_not_a_price_is_rejected() {
        assert_eq!(parse_price("", "EUR"), Err(PriceError::Empty));
        assert_eq!(parse_price("  \u{a0}", "EUR"), Err(PriceError::Empty));
        assert!(matches!(
            parse_price("N/A", "EUR"),
            Err(PriceError::NotAPrice(_))
        ));
        assert!(matches!(
            parse_price("call us", "EUR"),
            Err(PriceError::NotAPrice(_))
        ));
        assert!(matches!(
            parse_price("€", "EUR"),
            Err(PriceError::NotAPrice(_))
        ));
    }

    #[test]
    fn negative_prices_are_rejected() {
        assert!(matches!(
            parse_price("-5,00 €", "EUR"),
            Err(PriceError::Negative(_))
        ));
        assert!(matches!(
            parse_price("€ -5", "EUR"),
            Err(PriceError::Negative(_))
        ));
    }

    #[test]
    fn ambiguous_decimals_are_rejected() {
        assert!(matches!(
            parse_price("19.9999", "EUR"),
            Err(PriceError::TooManyDecimals(_))
        ));
        assert!(matches!(
            parse_price("0.999", "EUR"),
            Err(PriceError::TooManyDecimals(_))
        ));
        assert!(matches!(
            parse_price("1.29,00", "EUR"),
            Err(PriceError::Malformed(_))
        ));
        assert!(matches!(
            parse_price("1,299,00", "EUR"),
            Err(PriceError::Malformed(_))
        ));
    }

    #[test]
    fn two_different_currencies_are_rejected() {
        let err = parse_price("€19.99 $", "EUR").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"€19.99 $\" names two currencies (EUR and USD)"
        );
        assert_eq!(ok("€19.99 EUR"), eur(1999));
    }

    #[test]
    fn two_numbers_are_rejected() {
        assert!(matches!(
            parse_price("19,99 € 29,99 €", "EUR"),
            Err(PriceError::MultipleNumbers(_))
        ));
    }

    #[test]
    fn absurdly_large_amounts_are_rejected() {
        assert!(matches!(
            parse_price("1.000.000.001 €", "EUR"),
            Err(PriceError::TooLarge(_))
        ));
        assert!(matches!(
            parse_price("99999999999999999999999", "EUR"),
            Err(PriceError::TooLarge(_))
        ));
        assert_eq!(ok("1.000.000.000 €"), eur(100_000_000_000));
    }

    #[test]
    fn machine_amounts_use_a_decimal_dot() {
        let a = |s: &str| parse_amount(s, "eur").map(|p| p.cents);
        assert_eq!(a("19.99"), Ok(1999));
        assert_eq!(a("19"), Ok(1900));
        assert_eq!(a("0.00"), Ok(0));
        assert_eq!(a("19.9"), Ok(1990));
        assert_eq!(a("19.990"), Ok(1999));
        assert_eq!(a(" 7.99 "), Ok(799));
        assert_eq!(a("19,99"), Ok(1999));
        assert_eq!(a(".5"), Ok(50));
        assert_eq!(parse_amount("7.99", "eur").unwrap().currency, "EUR");
    }

    #[test]
    fn bad_machine_amounts_are_rejected() {
        assert!(matches!(
            parse_amount("19.999", "EUR"),
            Err(PriceError::TooManyDecimals(_))
        ));
        assert!(matches!(
            parse_amount("-1", "EUR"),
            Err(PriceError::Negative(_))
        ));
        assert!(matches!(
            parse_amount("abc", "EUR"),
            Err(PriceError::NotAPrice(_))
        ));
        assert!(matches!(
            parse_amount(".", "EUR"),
            Err(PriceError::NotAPrice(_))
        ));
        assert!(matches!(
            parse_amount("1e3", "EUR"),
            Err(PriceError::NotAPrice(_))
        ));
        assert!(matches!(parse_amount("", "EUR"), Err(PriceError::Empty)));
        assert!(matches!(
            parse_amount("1", "euro"),
            Err(PriceError::InvalidCurrency(_))
        ));
        assert!(matches!(
            parse_amount("1000000000000", "EUR"),
            Err(PriceError::TooLarge(_))
        ));
    }

    #[test]
    fn error_messages_quote_a_bounded_snippet() {
        let long = "x".repeat(500);
        let msg = parse_price(&long, "EUR").unwrap_err().to_string();
        assert!(msg.len() < 100, "{msg}");
    }
}
