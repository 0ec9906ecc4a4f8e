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
}
