//! The admins' lot form: what was typed, kept as typed so a refused form
//! comes back as it was, and its strict reading into a `Listing`.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Timelike, Utc};
use serde::Deserialize;

use crate::auction::store::{Listing, StoredLot, MAX_TITLE_CHARS};
use crate::auction::{Increments, LotRules, LotRulesError, LotSpec, MAX_CENTS};
use crate::domain::money::{parse_cents, units};

/// The longest description, in characters: a page of text, not a dump.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// The longest soft-close window, in seconds (a day): longer is a typo.
const MAX_SOFT_CLOSE_SECS: i64 = 86_400;

/// The soft-close window a new lot starts with, in seconds.
const DEFAULT_SOFT_CLOSE_SECS: i64 = 60;

/// An empty hard end means this long after the end: soft close can then
/// extend a lot by at most an hour.
const DEFAULT_HARD_END_AFTER: TimeDelta = TimeDelta::hours(1);

/// How far ahead a blank form suggests the start, and how long the lot runs.
const SUGGESTED_START_IN: TimeDelta = TimeDelta::hours(1);
const SUGGESTED_LENGTH: TimeDelta = TimeDelta::days(1);

/// The form's fields, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LotForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub starting: String,
    #[serde(default)]
    pub reserve: String,
    #[serde(default)]
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default)]
    pub hard_end: String,
    #[serde(default)]
    pub soft_close: String,
}

impl LotForm {
    /// A new lot's form: EUR, the default soft close, and a start and end to
    /// change.
    pub fn blank(now: DateTime<Utc>) -> LotForm {
        let start = (now + SUGGESTED_START_IN)
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now);
        let end = start + SUGGESTED_LENGTH;
        LotForm {
            currency: "EUR".to_owned(),
            starts_at: local_input(start),
            ends_at: local_input(end),
            hard_end: local_input(end + DEFAULT_HARD_END_AFTER),
            soft_close: DEFAULT_SOFT_CLOSE_SECS.to_string(),
            ..LotForm::default()
        }
    }

    /// A stored lot's listing, to edit.
    pub fn of(lot: &StoredLot) -> LotForm {
        let rules = &lot.rules;
        LotForm {
            csrf: String::new(),
            title: lot.row.title.clone(),
            description: lot.row.description.clone(),
            currency: rules.currency().to_owned(),
            starting: units(rules.starting_cents()),
            reserve: rules.reserve_cents().map(units).unwrap_or_default(),
            starts_at: local_input(rules.starts_at()),
            ends_at: local_input(rules.ends_at()),
            hard_end: local_input(rules.hard_end()),
            soft_close: rules.soft_close().num_seconds().to_string(),
        }
    }

    /// The listing the form describes, or every reason it does not describe
    /// one. `now` refuses an end that has already passed.
    pub fn listing(&self, now: DateTime<Utc>) -> Result<Listing, Vec<String>> {
        let mut errors = Vec::new();

        let title = self.title.trim();
        let title_chars = title.chars().count();
        keep(
            &mut errors,
            if (1..=MAX_TITLE_CHARS).contains(&title_chars) {
                Ok(())
            } else {
                Err(format!(
                    "The title must be 1 to {MAX_TITLE_CHARS} characters."
                ))
            },
        );
        keep(
            &mut errors,
            if self.description.chars().count() <= MAX_DESCRIPTION_CHARS {
                Ok(())
            } else {
                Err(format!(
                    "The description must be at most {MAX_DESCRIPTION_CHARS} characters."
                ))
            },
        );
        let starting = keep(
            &mut errors,
            parse_cents(&self.starting).map_err(|e| format!("Starting price: {e}")),
        );
        let reserve = keep(
            &mut errors,
            match self.reserve.trim() {
                "" => Ok(None),
                typed => parse_cents(typed)
                    .map(Some)
                    .map_err(|e| format!("Reserve: {e}")),
            },
        );
        let starts_at = keep(
            &mut errors,
            parse_time(&self.starts_at).map_err(|e| format!("Starts at: {e}")),
        );
        let ends_at = keep(
            &mut errors,
            parse_time(&self.ends_at).map_err(|e| format!("Ends at: {e}")),
        );
        let hard_end = keep(
            &mut errors,
            match (self.hard_end.trim(), ends_at) {
                ("", Some(end)) => Ok(Some(end + DEFAULT_HARD_END_AFTER)),
                ("", None) => Ok(None),
                (typed, _) => parse_time(typed)
                    .map(Some)
                    .map_err(|e| format!("Hard end: {e}")),
            },
        );
        let soft_close = keep(&mut errors, parse_soft_close(&self.soft_close));
        if let Some(end) = ends_at {
            keep(
                &mut errors,
                if end > now {
                    Ok(())
                } else {
                    Err(
                        "Ends at: the end has already passed; pick a time in the future."
                            .to_owned(),
                    )
                },
            );
        }
        let (
            Some(starting_cents),
            Some(reserve_cents),
            Some(starts_at),
            Some(ends_at),
            Some(Some(hard_end)),
            Some(soft_close),
        ) = (starting, reserve, starts_at, ends_at, hard_end, soft_close)
        else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let spec = LotSpec {
            currency: self.currency.trim().to_ascii_uppercase(),
            starting_cents,
            reserve_cents,
            increments: Increments::default(),
            starts_at,
            ends_at,
            hard_end,
            soft_close,
        };
        // The store checks these rules again; checking here first words the
        // refusal in the units the admin typed rather than in cents.
        LotRules::parse(spec.clone()).map_err(|e| vec![rule_message(&e)])?;
        Ok(Listing {
            title: title.to_owned(),
            description: self.description.clone(),
            spec,
        })
    }
}

/// The value of a field that read well; the reason of one that did not
/// goes to `errors`, so that every bad field is named at once.
fn keep<T>(errors: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

/// A refused rule, in the form's words.
fn rule_message(error: &LotRulesError) -> String {
    match error {
        LotRulesError::StartingPrice(_) => format!(
            "Starting price: it must be more than 0 and at most {}.",
            units(MAX_CENTS)
        ),
        LotRulesError::Reserve(_) => format!(
            "Reserve: it must be above the starting price and at most {}; leave it empty for no reserve.",
            units(MAX_CENTS)
        ),
        LotRulesError::Currency(_) => {
            "Currency: use a three-letter ISO code such as EUR, USD or GBP.".to_owned()
        }
        LotRulesError::EndsBeforeStart => "Ends at: the lot must end after it starts.".to_owned(),
        LotRulesError::HardEndBeforeEnd => {
            "Hard end: it must not come before the end.".to_owned()
        }
        LotRulesError::NegativeSoftClose => {
            "Soft close: the window must not be negative.".to_owned()
        }
    }
}

/// Reads a time: what `<input type=datetime-local>` sends (`2026-11-23T19:05`,
/// with optional seconds), read as UTC, or an RFC 3339 time with its offset.
pub fn parse_time(typed: &str) -> Result<DateTime<Utc>, String> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Err("it is empty; give a date and time such as 2026-11-23T19:05 (UTC).".to_owned());
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(typed) {
        return Ok(at.with_timezone(&Utc));
    }
    let local = typed.replacen(' ', "T", 1);
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(&local, format) {
            return Ok(at.and_utc());
        }
    }
    Err(format!(
        "“{typed}” is not a date and time; write it like 2026-11-23T19:05 (UTC)."
    ))
}

fn parse_soft_close(typed: &str) -> Result<TimeDelta, String> {
    let typed = typed.trim();
    let refused = || {
        format!("Soft close: “{typed}” is not a whole number of seconds from 0 to {MAX_SOFT_CLOSE_SECS}.")
    };
    if typed.is_empty() || !typed.bytes().all(|b| b.is_ascii_digit()) || typed.len() > 6 {
        return Err(refused());
    }
    let secs: i64 = typed.parse().map_err(|_| refused())?;
    if secs > MAX_SOFT_CLOSE_SECS {
        return Err(refused());
    }
    Ok(TimeDelta::seconds(secs))
}

/// A time as a `datetime-local` input shows it, in UTC to the second.
pub fn local_input(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_utc_from_a_datetime_local_input_or_rfc_3339() {
        let expected = DateTime::parse_from_rfc3339("2026-11-23T19:05:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        for typed in [
            "2026-11-23T19:05",
            "2026-11-23T19:05:00",
            "2026-11-23 19:05",
            "2026-11-23T19:05:00Z",
            "2026-11-23T20:05:00+01:00",
        ] {
            assert_eq!(parse_time(typed), Ok(expected), "{typed}");
        }
        assert!(parse_time("tomorrow").is_err());
        assert!(parse_time("2026-13-01T00:00").is_err());
    }

    fn filled(now: DateTime<Utc>) -> LotForm {
        LotForm {
            title: "A signed cartridge".into(),
            starting: "10".into(),
            ..LotForm::blank(now)
        }
    }

    #[test]
    fn a_filled_blank_form_is_a_listing_with_the_default_increments() {
        let now = Utc::now();

        let listing = filled(now).listing(now).expect("valid");

        assert_eq!(listing.spec.starting_cents, 1_000);
        assert_eq!(listing.spec.currency, "EUR");
        assert_eq!(listing.spec.increments, Increments::default());
        assert_eq!(listing.spec.soft_close, TimeDelta::seconds(60));
        assert_eq!(
            listing.spec.hard_end - listing.spec.ends_at,
            DEFAULT_HARD_END_AFTER
        );
    }

    #[test]
    fn an_empty_hard_end_is_an_hour_after_the_end() {
        let now = Utc::now();
        let form = LotForm {
            hard_end: String::new(),
            ..filled(now)
        };

        let listing = form.listing(now).expect("valid");

        assert_eq!(
            listing.spec.hard_end,
            listing.spec.ends_at + TimeDelta::hours(1)
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let now = Utc::now();
        let form = LotForm {
            title: " ".into(),
            starting: "12.345".into(),
            reserve: "abc".into(),
            soft_close: "-5".into(),
            ..filled(now)
        };

        let errors = form.listing(now).expect_err("invalid");

        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[1].starts_with("Starting price:"), "{errors:?}");
    }

    #[test]
    fn rules_are_worded_in_the_units_typed() {
        let now = Utc::now();
        let form = LotForm {
            reserve: "5".into(),
            ..filled(now)
        };

        let errors = form.listing(now).expect_err("a reserve below the start");

        assert!(
            errors[0].starts_with("Reserve: it must be above"),
            "{errors:?}"
        );
    }

    #[test]
    fn an_end_in_the_past_is_refused() {
        let now = Utc::now();
        let form = LotForm {
            starts_at: "2020-01-01T00:00".into(),
            ends_at: "2020-01-02T00:00".into(),
            hard_end: String::new(),
            ..filled(now)
        };

        let errors = form.listing(now).expect_err("ended");

        assert!(errors[0].contains("already passed"), "{errors:?}");
    }
}
