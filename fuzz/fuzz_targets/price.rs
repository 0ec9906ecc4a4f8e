//! `scrape::parse_price` (shop display text) and `scrape::parse_amount`
//! (markup amounts). A price is never negative nor absurd, its currency is
//! an upper-case three-letter code, it reads back the same once written out
//! plainly or the European way, and error messages quote a bounded snippet.

#![no_main]

use bazaar::scrape::{parse_amount, parse_price, Price};
use libfuzzer_sys::fuzz_target;

/// The default currency, picked by the input's first byte: sites configure
/// any text there, valid or not.
const DEFAULTS: [&str; 6] = ["EUR", "usd", "XYZ", "EURO", "", "€"];

const MAX_CENTS: i64 = 100_000_000_000;

fn plain(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// "1.299.000,99": dots group the thousands, a comma before the cents.
fn european(cents: i64) -> String {
    let units = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in units.chars().enumerate() {
        if i > 0 && (units.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("{grouped},{:02}", cents % 100)
}

fn check(price: &Price) {
    assert!((0..=MAX_CENTS).contains(&price.cents), "{price:?}");
    assert!(
        price.currency.len() == 3 && price.currency.bytes().all(|b| b.is_ascii_uppercase()),
        "{price:?}"
    );
    let currency = price.currency.as_str();
    assert_eq!(
        parse_price(&plain(price.cents), currency).as_ref(),
        Ok(price)
    );
    assert_eq!(
        parse_price(&european(price.cents), currency).as_ref(),
        Ok(price)
    );
    assert_eq!(
        parse_amount(&plain(price.cents), currency).as_ref(),
        Ok(price)
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let default = DEFAULTS[usize::from(*first) % DEFAULTS.len()];
    for parsed in [parse_price(text, default), parse_amount(text, default)] {
        match parsed {
            Ok(price) => check(&price),
            Err(e) => {
                let message = e.to_string();
                assert!(message.chars().count() < 200, "{message}");
            }
        }
    }
});
