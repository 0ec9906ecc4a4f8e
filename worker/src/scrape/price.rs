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
    #[error(
        "\"{text}\" names {sign}, which is the currency of several countries ({codes}); \
         the site's currency must be one of them"
    )]
    AmbiguousCurrency {
        text: String,
        sign: String,
        codes: String,
    },
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

/// Words a store uses instead of "0.00", compared once lowercased, with
/// dashes read as spaces and a trailing "!" dropped.
const FREE_WORDS: &[&str] = &[
    "free",
    "free to play",
    "play for free",
    "free download",
    "gratis",
    "grátis",
    "gratuito",
    "gratuit",
    "kostenlos",
];

fn is_free_word(text: &str) -> bool {
    let lower = text
        .to_lowercase()
        .replace(['-', '\u{2010}', '\u{2011}'], " ");
    let lower = lower.trim_end_matches(['!', '*']).trim_matches(is_space);
    let words: Vec<&str> = lower.split(is_space).filter(|w| !w.is_empty()).collect();
    FREE_WORDS.contains(&words.join(" ").as_str())
}

const ISO_CODES: &[&str] = &[
    "EUR", "USD", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "ISK", "PLN",
    "CZK", "HUF", "RON", "BGN", "RUB", "UAH", "KZT", "TRY", "BRL", "MXN", "ARS", "CLP", "COP",
    "PEN", "UYU", "CNY", "HKD", "TWD", "KRW", "INR", "IDR", "SGD", "MYR", "THB", "PHP", "VND",
    "ZAR", "ILS", "AED", "SAR", "QAR", "EGP", "NGN",
];

/// A currency sign, or a sign shared by several currencies: a store's `$`
/// is its own dollar (or peso), and `kr` names four crowns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    Code(&'static str),
    /// The currencies using the sign, and the one it means on a page that
    /// says nothing else (none for `kr`: no crown is the obvious one).
    Shared {
        sign: &'static str,
        codes: &'static [&'static str],
        usual: Option<&'static str>,
    },
}

const DOLLAR: Sign = Sign::Shared {
    sign: "$",
    codes: &[
        "USD", "CAD", "AUD", "NZD", "MXN", "ARS", "CLP", "COP", "UYU", "HKD", "SGD", "TWD",
    ],
    usual: Some("USD"),
};
const YEN: Sign = Sign::Shared {
    sign: "¥",
    codes: &["JPY", "CNY"],
    usual: Some("JPY"),
};
const CROWN: Sign = Sign::Shared {
    sign: "kr",
    codes: &["SEK", "NOK", "DKK", "ISK"],
    usual: None,
};

fn symbol_currency(c: char) -> Option<Sign> {
    Some(match c {
        '$' => DOLLAR,
        '¥' | '￥' => YEN,
        '€' => Sign::Code("EUR"),
        '£' => Sign::Code("GBP"),
        '₽' => Sign::Code("RUB"),
        '₹' => Sign::Code("INR"),
        '₩' => Sign::Code("KRW"),
        '₺' => Sign::Code("TRY"),
        '₴' => Sign::Code("UAH"),
        '₸' => Sign::Code("KZT"),
        '₱' => Sign::Code("PHP"),
        '฿' => Sign::Code("THB"),
        '₪' => Sign::Code("ILS"),
        '₫' => Sign::Code("VND"),
        '₦' => Sign::Code("NGN"),
        '円' => Sign::Code("JPY"),
        '元' => Sign::Code("CNY"),
        _ => return None,
    })
}

/// A letter run in front of `$` that says which dollar it is ("US$", "C$",
/// "CDN$", "ARS$").
fn dollar_prefix(word: &str) -> Option<&'static str> {
    let upper = word.to_uppercase();
    Some(match upper.as_str() {
        "US" => "USD",
        "C" | "CA" | "CDN" => "CAD",
        "A" | "AU" => "AUD",
        "NZ" => "NZD",
        "R" => "BRL",
        "HK" => "HKD",
        "S" | "SG" => "SGD",
        "MX" => "MXN",
        "NT" => "TWD",
        "COL" => "COP",
        _ => {
            let Sign::Shared { codes, .. } = DOLLAR else {
                return None;
            };
            return codes.iter().find(|c| **c == upper).copied();
        }
    })
}

/// A currency written as a word: an ISO code, or the local abbreviation.
fn word_currency(word: &str) -> Option<Sign> {
    let upper = word.to_uppercase();
    if let Some(code) = ISO_CODES.iter().find(|c| **c == upper) {
        return Some(Sign::Code(code));
    }
    Some(Sign::Code(match word.to_lowercase().as_str() {
        "zł" | "zl" => "PLN",
        "kč" => "CZK",
        "ft" => "HUF",
        "lei" => "RON",
        "лв" => "BGN",
        "руб" | "р" => "RUB",
        "грн" => "UAH",
        "tl" => "TRY",
        "rp" => "IDR",
        "rm" => "MYR",
        "fr" | "chf" => "CHF",
        "kr" => return Some(CROWN),
        _ => return None,
    }))
}

/// Words written with an abbreviation dot ("руб.", "Fr.", "kr.").
fn takes_a_dot(word: &str) -> bool {
    matches!(
        word.to_lowercase().as_str(),
        "руб" | "р" | "грн" | "fr" | "kr" | "лв"
    )
}

/// The currency a sign in `text` means, given the code the text names
/// elsewhere (`named`) and the site's currency.
fn resolve(
    sign: Sign,
    named: Option<&str>,
    default: &str,
    text: &str,
) -> Result<String, PriceError> {
    match sign {
        Sign::Code(code) => Ok(code.to_owned()),
        Sign::Shared { sign, codes, usual } => {
            let default = default.trim().to_ascii_uppercase();
            named
                .filter(|n| codes.contains(n))
                .or_else(|| codes.iter().find(|c| **c == default).copied())
                .or(usual)
                .map(str::to_owned)
                .ok_or_else(|| PriceError::AmbiguousCurrency {
                    text: snippet(text),
                    sign: sign.to_owned(),
                    codes: codes.join(", "),
                })
        }
    }
}

/// The ISO code for a currency as markup states it: three letters in any
/// case ("eur"), or a sign or local word ("€", "R$", "zł"; "$" is the
/// site's own dollar when its currency is one).
pub fn parse_currency(text: &str, default_currency: &str) -> Result<String, PriceError> {
    let trimmed = text.trim_matches(is_space);
    if trimmed.len() == 3 && trimmed.chars().all(|c| c.is_ascii_alphabetic()) {
        return Ok(trimmed.to_ascii_uppercase());
    }
    let mut chars = trimmed.chars();
    let sign = match (chars.next(), chars.next()) {
        (Some(c), None) => symbol_currency(c),
        _ => {
            let word = trimmed.strip_suffix('.').unwrap_or(trimmed);
            match word.strip_suffix('$') {
                Some(prefix) if !prefix.is_empty() => dollar_prefix(prefix).map(Sign::Code),
                _ => word_currency(word),
            }
        }
    };
    let sign = sign.ok_or_else(|| PriceError::InvalidCurrency(snippet(trimmed)))?;
    resolve(sign, None, default_currency, trimmed)
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
/// "£5", "USD 19.99", "1,299.00", "R$ 49,90", "199 kr", "Free".
///
/// Separators are read the way a human would: with both `.` and `,` the last
/// one is the decimal point; a lone separator followed by exactly three
/// digits groups thousands ("1.299" is 1299.00, and so is "19.999", since no
/// store prices to a tenth of a cent); one or two digits after a lone
/// separator are decimals; anything else is rejected rather than guessed.
/// A text without a currency symbol or code gets `default_currency`. A sign
/// several currencies share ("$", "¥", "kr") means the code written next to
/// it, else `default_currency` when that is one of them, else the usual one
/// ("$" is USD); "kr" has no usual one and is an error on other sites.
pub fn parse_price(text: &str, default_currency: &str) -> Result<Price, PriceError> {
    let trimmed = text.trim_matches(is_space);
    if trimmed.is_empty() {
        return Err(PriceError::Empty);
    }
    if is_free_word(trimmed) {
        return Ok(Price {
            cents: 0,
            currency: check_currency(default_currency)?,
        });
    }
    // A footnote mark ("€19.99*": "*incl. VAT" further down) is not the price.
    let trimmed = trimmed
        .trim_end_matches(['*', '†'])
        .trim_end_matches(is_space);

    let chars: Vec<char> = trimmed.chars().collect();
    let mut signs: Vec<Sign> = Vec::new();
    let mut number: Option<String> = None;

    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_space(c) {
            i += 1;
        } else if let Some(sign) = symbol_currency(c) {
            signs.push(sign);
            i += 1;
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if i < chars.len() && chars[i] == '$' {
                match dollar_prefix(&word) {
                    Some(code) => signs.push(Sign::Code(code)),
                    None => return Err(PriceError::NotAPrice(snippet(trimmed))),
                }
                i += 1;
            } else if word == "S" && chars.get(i) == Some(&'/') {
                // Peru's sol: "S/ 49.90", "S/. 49.90".
                signs.push(Sign::Code("PEN"));
                i += 1;
                if chars.get(i) == Some(&'.') {
                    i += 1;
                }
            } else {
                match word_currency(&word) {
                    Some(sign) => signs.push(sign),
                    None => return Err(PriceError::NotAPrice(snippet(trimmed))),
                }
                if chars.get(i) == Some(&'.') && takes_a_dot(&word) {
                    i += 1;
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
    let currency = match signs.is_empty() {
        true => check_currency(default_currency)?,
        false => text_currency(&signs, trimmed, default_currency)?,
    };
    Ok(Price { cents, currency })
}

/// The one currency the signs in `text` agree on. A shared sign ("$")
/// means the code written next to it ("$19.99 CAD"), else the site's
/// currency when that uses the sign, else its usual meaning.
fn text_currency(signs: &[Sign], text: &str, default: &str) -> Result<String, PriceError> {
    let named = signs.iter().find_map(|s| match s {
        Sign::Code(code) => Some(*code),
        Sign::Shared { .. } => None,
    });
    let mut first: Option<String> = None;
    for sign in signs {
        let code = resolve(*sign, named, default, text)?;
        match &first {
            Some(existing) if *existing != code => {
                return Err(PriceError::MixedCurrencies {
                    text: snippet(text),
                    first: existing.clone(),
                    second: code,
                })
            }
            Some(_) => {}
            None => first = Some(code),
        }
    }
    first.ok_or_else(|| PriceError::NotAPrice(snippet(text)))
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

    fn in_currency(text: &str, default: &str) -> (i64, String) {
        let p = parse_price(text, default).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        (p.cents, p.currency)
    }

    #[test]
    fn a_dollar_sign_is_the_sites_own_dollar_or_the_one_named_beside_it() {
        assert_eq!(in_currency("$19.99", "CAD"), (1999, "CAD".to_owned()));
        assert_eq!(in_currency("$19.99", "AUD"), (1999, "AUD".to_owned()));
        assert_eq!(in_currency("$19.99", "EUR"), (1999, "USD".to_owned()));
        assert_eq!(in_currency("$19.99 CAD", "USD"), (1999, "CAD".to_owned()));
        assert_eq!(
            in_currency("$ 1.999,99", "ARS"),
            (199_999, "ARS".to_owned())
        );
        assert_eq!(in_currency("CDN$ 19.99", "EUR"), (1999, "CAD".to_owned()));
        assert_eq!(
            in_currency("ARS$ 1.999,99", "EUR"),
            (199_999, "ARS".to_owned())
        );
        assert_eq!(in_currency("NT$ 390", "EUR"), (39_000, "TWD".to_owned()));
        assert_eq!(in_currency("R$ 49,90", "EUR"), (4990, "BRL".to_owned()));
        let err = parse_price("$19.99 EUR", "EUR").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"$19.99 EUR\" names two currencies (USD and EUR)"
        );
    }

    #[test]
    fn yen_and_crowns_follow_the_sites_currency() {
        assert_eq!(in_currency("¥ 1,980", "EUR"), (198_000, "JPY".to_owned()));
        assert_eq!(in_currency("¥ 98", "CNY"), (9800, "CNY".to_owned()));
        assert_eq!(in_currency("￥1,980", "EUR"), (198_000, "JPY".to_owned()));
        assert_eq!(in_currency("1980円", "EUR"), (198_000, "JPY".to_owned()));
        assert_eq!(in_currency("199 kr", "SEK"), (19_900, "SEK".to_owned()));
        assert_eq!(in_currency("kr. 149,00", "DKK"), (14_900, "DKK".to_owned()));
        assert_eq!(in_currency("199,- kr", "NOK"), (19_900, "NOK".to_owned()));
        assert_eq!(in_currency("199 kr SEK", "EUR"), (19_900, "SEK".to_owned()));
        let err = parse_price("199 kr", "EUR").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"199 kr\" names kr, which is the currency of several countries \
             (SEK, NOK, DKK, ISK); the site's currency must be one of them"
        );
    }

    #[test]
    fn local_currency_words_and_signs_are_read() {
        for (text, cents, code) in [
            ("Rp 129.999", 12_999_900, "IDR"),
            ("Rp 129 999", 12_999_900, "IDR"),
            ("299,99 TL", 29_999, "TRY"),
            ("RM 39.00", 3900, "MYR"),
            ("1 980 руб.", 198_000, "RUB"),
            ("Fr. 19.90", 1990, "CHF"),
            ("S/ 49.90", 4990, "PEN"),
            ("S/. 49.90", 4990, "PEN"),
            ("₱ 499.95", 49_995, "PHP"),
            ("฿ 399", 39_900, "THB"),
            ("₪ 99.90", 9990, "ILS"),
            ("99.000 ₫", 9_900_000, "VND"),
            ("1 299 ₸", 129_900, "KZT"),
            ("49,90 zł", 4990, "PLN"),
            ("1’299.00 CHF", 129_900, "CHF"),
        ] {
            assert_eq!(in_currency(text, "EUR"), (cents, code.to_owned()), "{text}");
        }
    }

    #[test]
    fn free_wordings_and_footnote_marks_are_understood() {
        for text in [
            "Free!",
            "Free To Play",
            "Free-to-Play",
            "free download",
            "Play for Free",
            "Grátis",
        ] {
            assert_eq!(ok(text), eur(0), "{text}");
        }
        assert_eq!(ok("€19.99*"), eur(1999));
        assert!(matches!(
            parse_price("Free weekend", "EUR"),
            Err(PriceError::NotAPrice(_))
        ));
    }

    #[test]
    fn currencies_in_markup_may_be_codes_signs_or_words() {
        let c = |text: &str, default: &str| parse_currency(text, default);
        assert_eq!(c(" usd ", "EUR"), Ok("USD".to_owned()));
        assert_eq!(c("KWD", "EUR"), Ok("KWD".to_owned()));
        assert_eq!(c("€", "USD"), Ok("EUR".to_owned()));
        assert_eq!(c("US$", "EUR"), Ok("USD".to_owned()));
        assert_eq!(c("R$", "EUR"), Ok("BRL".to_owned()));
        assert_eq!(c("zł", "EUR"), Ok("PLN".to_owned()));
        assert_eq!(c("$", "CAD"), Ok("CAD".to_owned()));
        assert_eq!(c("руб.", "EUR"), Ok("RUB".to_owned()));
        assert_eq!(
            c("Euro", "EUR"),
            Err(PriceError::InvalidCurrency("Euro".to_owned()))
        );
        assert!(matches!(
            c("kr", "EUR"),
            Err(PriceError::AmbiguousCurrency { .. })
        ));
        assert_eq!(c("kr", "NOK"), Ok("NOK".to_owned()));
    }

    #[test]
    fn error_messages_quote_a_bounded_snippet() {
        let long = "x".repeat(500);
        let msg = parse_price(&long, "EUR").unwrap_err().to_string();
        assert!(msg.len() < 100, "{msg}");
    }
}
