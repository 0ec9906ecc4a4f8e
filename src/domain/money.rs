//! Money: integer minor units plus a currency. Never a float.

use std::fmt;

/// An amount in minor units (cents) of a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub cents: i64,
    pub currency: String,
}

/// Cents as major units with two decimals: `1350` → `13.50`.
pub fn units(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Reads an amount typed in major units into cents, strictly: `12`, `12.5`
/// and `12.50` are fine; a sign, a comma, a third decimal or anything else
/// is refused rather than guessed (unlike the scraper's `parse_price`, which
/// must read whatever a store prints).
pub fn parse_cents(typed: &str) -> Result<i64, String> {
    let typed = typed.trim();
    let example = "write an amount like 12 or 12.50";
    if typed.is_empty() {
        return Err(format!("it is empty; {example}."));
    }
    if typed.starts_with('-') {
        return Err(format!("“{typed}” is negative; {example}."));
    }
    let (whole, fraction) = typed.split_once('.').unwrap_or((typed, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || (typed.ends_with('.')) {
        return Err(format!("“{typed}” is not an amount; {example}."));
    }
    if fraction.len() > 2 {
        return Err(format!("“{typed}” has more than two decimals; {example}."));
    }
    // 12 digits of major units is far past MAX_CENTS and far from overflow.
    if whole.trim_start_matches('0').len() > 12 {
        return Err(format!("“{typed}” is too large."));
    }
    let whole: i64 = whole
        .parse()
        .map_err(|_| format!("“{typed}” is too large."))?;
    let fraction: i64 = format!("{fraction:0<2}").parse().unwrap_or(0);
    Ok(whole * 100 + fraction)
}

impl Money {
    pub fn new(cents: i64, currency: &str) -> Money {
        Money {
            cents,
            currency: currency.to_owned(),
        }
    }

    /// With the ISO code rather than a symbol (`13.50 EUR`), as protocol
    /// messages and auction pages write money, so every client reads alike.
    pub fn with_code(&self) -> String {
        format!("{} {}", units(self.cents), self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let amount = units(self.cents);
        match self.currency.as_str() {
            "EUR" => write!(f, "{amount} €"),
            "USD" => write!(f, "${amount}"),
            "GBP" => write!(f, "£{amount}"),
            other => write!(f, "{amount} {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_prints_with_two_decimals_and_its_symbol() {
        assert_eq!(Money::new(799, "EUR").to_string(), "7.99 €");
        assert_eq!(Money::new(129900, "USD").to_string(), "$1299.00");
        assert_eq!(Money::new(5, "GBP").to_string(), "£0.05");
        assert_eq!(Money::new(-150, "CHF").to_string(), "-1.50 CHF");
        assert_eq!(Money::new(0, "EUR").to_string(), "0.00 €");
        assert_eq!(Money::new(1350, "EUR").with_code(), "13.50 EUR");
        assert_eq!(Money::new(-5, "EUR").with_code(), "-0.05 EUR");
    }

    #[test]
    fn amounts_are_read_exactly_in_major_units() {
        for (typed, cents) in [
            ("12", 1_200),
            ("12.5", 1_250),
            ("12.50", 1_250),
            (" 0.05 ", 5),
            ("007.10", 710),
            ("10000000", 1_000_000_000),
        ] {
            assert_eq!(parse_cents(typed), Ok(cents), "{typed}");
        }
    }

    #[test]
    fn anything_but_a_plain_amount_is_refused() {
        for typed in [
            "",
            "-1",
            "-0.50",
            "12.345",
            "12,50",
            "1.299,00",
            "12.",
            ".5",
            "1e3",
            "12 EUR",
            "abc",
            "+12",
            "1.2.3",
            "99999999999999",
        ] {
            assert!(parse_cents(typed).is_err(), "{typed:?} was accepted");
        }
        assert!(parse_cents("12.345").unwrap_err().contains("two decimals"));
        assert!(parse_cents("-1").unwrap_err().contains("negative"));
    }
}
