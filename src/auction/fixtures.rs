//! Lots, times and bids shared by the auction tests.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::bid::{place_bid, BidOutcome, BidRequest};
use super::increments::Increments;
use super::lot::{LotRules, LotSpec, LotState, LotStatus, UserId};

/// `seconds` after the lot opens (2026-11-23 19:00:00 UTC).
pub fn at(seconds: i64) -> DateTime<Utc> {
    let opening = Utc
        .with_ymd_and_hms(2026, 11, 23, 19, 0, 0)
        .single()
        .unwrap_or_default();
    opening + TimeDelta::seconds(seconds)
}

/// A lot in EUR from 10.00 with the default increments, open for five
/// minutes, a one-minute soft close and a hard end at fifteen minutes.
pub fn spec() -> LotSpec {
    LotSpec {
        currency: "EUR".into(),
        starting_cents: 1_000,
        reserve_cents: None,
        increments: Increments::default(),
        starts_at: at(0),
        ends_at: at(300),
        hard_end: at(900),
        soft_close: TimeDelta::seconds(60),
    }
}

pub fn rules_from(spec: LotSpec) -> LotRules {
    LotRules::parse(spec).expect("the test lot is valid")
}

/// The state of a lot that has just opened.
pub fn running(rules: &LotRules) -> LotState {
    LotState {
        status: LotStatus::Running,
        version: 1,
        ..LotState::new(rules)
    }
}

pub fn bid(bidder: UserId, amount_cents: i64) -> BidRequest {
    BidRequest {
        bidder,
        amount_cents,
        max_cents: None,
    }
}

pub fn proxy(bidder: UserId, amount_cents: i64, max_cents: i64) -> BidRequest {
    BidRequest {
        bidder,
        amount_cents,
        max_cents: Some(max_cents),
    }
}

/// Places a bid the test expects to be accepted.
pub fn accept(
    rules: &LotRules,
    state: &LotState,
    request: BidRequest,
    now: DateTime<Utc>,
) -> BidOutcome {
    place_bid(rules, state, &request, now)
        .unwrap_or_else(|e| panic!("{request:?} at {now} was refused: {e}"))
}
