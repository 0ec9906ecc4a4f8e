//! A lot: the rules fixed when it is listed, the state that bids change, and
//! the public view of that state that events carry.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::increments::Increments;
use crate::domain::money::Money;

pub use entity::lots::LotStatus;

/// Who bids: an account id. Guests cannot bid.
pub type UserId = i64;

/// The largest amount, in cents, a bid, a maximum, a starting price or a
/// reserve may be: 10 million in major units. It keeps every sum the rules
/// make far from `i64` overflow and catches typos with extra zeros.
pub const MAX_CENTS: i64 = 1_000_000_000;

/// A lot as the seller (or an admin) lists it, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotSpec {
    /// ISO 4217 code of the lot's money, e.g. `EUR`.
    pub currency: String,
    /// The lowest opening bid.
    pub starting_cents: i64,
    /// The hidden price below which the lot is not sold.
    pub reserve_cents: Option<i64>,
    pub increments: Increments,
    pub starts_at: DateTime<Utc>,
    /// The end before any soft-close extension.
    pub ends_at: DateTime<Utc>,
    /// Soft close never extends the end past this.
    pub hard_end: DateTime<Utc>,
    /// A bid this close to the end pushes the end to `now + soft_close`.
    pub soft_close: TimeDelta,
}

/// Why a lot's spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LotRulesError {
    #[error("the currency must be a three-letter ISO code such as EUR, not {0:?}")]
    Currency(String),
    #[error("the starting price must be between 1 and {MAX_CENTS} cents, not {0}")]
    StartingPrice(i64),
    #[error("the reserve must be above the starting price and at most {MAX_CENTS} cents, not {0}")]
    Reserve(i64),
    #[error("the lot must end after it starts")]
    EndsBeforeStart,
    #[error("the hard end must not come before the end")]
    HardEndBeforeEnd,
    #[error("the soft-close window must not be negative")]
    NegativeSoftClose,
}

/// A lot's rules, valid by construction: they do not change while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotRules(LotSpec);

impl LotRules {
    pub fn parse(spec: LotSpec) -> Result<LotRules, LotRulesError> {
        let currency_ok =
            spec.currency.len() == 3 && spec.currency.bytes().all(|b| b.is_ascii_uppercase());
        if !currency_ok {
            return Err(LotRulesError::Currency(spec.currency));
        }
        if !(1..=MAX_CENTS).contains(&spec.starting_cents) {
            return Err(LotRulesError::StartingPrice(spec.starting_cents));
        }
        if let Some(reserve) = spec.reserve_cents {
            // A reserve at or below the starting price could never stop a
            // sale: leave it out instead.
            if reserve <= spec.starting_cents || reserve > MAX_CENTS {
                return Err(LotRulesError::Reserve(reserve));
            }
        }
        if spec.ends_at <= spec.starts_at {
            return Err(LotRulesError::EndsBeforeStart);
        }
        if spec.hard_end < spec.ends_at {
            return Err(LotRulesError::HardEndBeforeEnd);
        }
        if spec.soft_close < TimeDelta::zero() {
            return Err(LotRulesError::NegativeSoftClose);
        }
        Ok(LotRules(spec))
    }

    pub fn currency(&self) -> &str {
        &self.0.currency
    }

    pub fn starting_cents(&self) -> i64 {
        self.0.starting_cents
    }

    pub fn reserve_cents(&self) -> Option<i64> {
        self.0.reserve_cents
    }

    pub fn increments(&self) -> &Increments {
        &self.0.increments
    }

    pub fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }

    /// The end as listed, before any extension.
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.0.ends_at
    }

    pub fn hard_end(&self) -> DateTime<Utc> {
        self.0.hard_end
    }

    pub fn soft_close(&self) -> TimeDelta {
        self.0.soft_close
    }

    /// An amount of this lot's currency.
    pub fn money(&self, cents: i64) -> Money {
        Money::new(cents, self.currency())
    }
}

/// The highest bidder and the proxy maximum they are willing to pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    pub user_id: UserId,
    /// Hidden from everyone else: the visible price bids up to it.
    pub max_cents: i64,
    /// When this maximum was placed. Bids are applied one at a time, so a
    /// challenger is always later than the leader and a tie stays with the
    /// leader; the time is kept for the record.
    pub max_placed_at: DateTime<Utc>,
}

/// What bids change: the lot row that the compare-and-set on `version` updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotState {
    pub status: LotStatus,
    /// The current end: the listed end, pushed later by soft close.
    pub ends_at: DateTime<Utc>,
    /// The visible price. Before the first bid it is the starting price.
    pub current_cents: i64,
    pub leader: Option<Leader>,
    /// Rows in the bids table: every visible price move, auto-bids included.
    pub bid_count: u64,
    /// Bumped by one on every accepted change; the `seq` of the lot's events.
    pub version: u64,
}

impl LotState {
    /// A freshly listed lot: scheduled, no bids, at its starting price.
    pub fn new(rules: &LotRules) -> LotState {
        LotState {
            status: LotStatus::Scheduled,
            ends_at: rules.ends_at(),
            current_cents: rules.starting_cents(),
            leader: None,
            bid_count: 0,
            version: 0,
        }
    }

    /// The lowest maximum a new bid may carry: the starting price before the
    /// first bid, afterwards the price plus its increment.
    pub fn min_next_cents(&self, rules: &LotRules) -> i64 {
        match self.leader {
            None => rules.starting_cents(),
            Some(_) => rules.increments().next_after(self.current_cents),
        }
    }

    /// Whether the reserve no longer stands in the way of a sale: there is
    /// none, or the price has reached it. The price reaches the reserve as
    /// soon as the leader's maximum does (see `place_bid`).
    pub fn reserve_met(&self, rules: &LotRules) -> bool {
        match rules.reserve_cents() {
            None => true,
            Some(reserve) => self.leader.is_some() && self.current_cents >= reserve,
        }
    }

    /// What everyone may see. Never the reserve, never the leader's maximum.
    pub fn view(&self, rules: &LotRules) -> LotView {
        LotView {
            status: self.status,
            currency: rules.currency().to_owned(),
            current_cents: self.current_cents,
            min_next_cents: self.min_next_cents(rules),
            leader: self.leader.map(|leader| leader.user_id),
            bid_count: self.bid_count,
            ends_at: self.ends_at,
            reserve_met: self.reserve_met(rules),
            version: self.version,
        }
    }
}

/// A lot's public state, as `bid`, `lot`, `started` and `finished` events and
/// the join reply carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LotView {
    pub status: LotStatus,
    pub currency: String,
    pub current_cents: i64,
    pub min_next_cents: i64,
    /// The leading account, if any; the Room shows its name.
    pub leader: Option<UserId>,
    pub bid_count: u64,
    pub ends_at: DateTime<Utc>,
    pub reserve_met: bool,
    /// Events carry it as `seq`, so clients drop any older state.
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auction::fixtures::{at, spec};

    #[test]
    fn a_valid_spec_becomes_rules() {
        let rules = LotRules::parse(spec()).expect("the fixture is valid");

        assert_eq!(rules.starting_cents(), 1_000);
        assert_eq!(rules.money(1_300), Money::new(1_300, "EUR"));
    }

    /// Breaks one field of a valid spec.
    type Spoil = fn(&mut LotSpec);

    #[test]
    fn a_spec_with_a_bad_field_is_refused() {
        let cases: [(Spoil, LotRulesError); 8] = [
            (
                |s| s.currency = "eur".into(),
                LotRulesError::Currency("eur".into()),
            ),
            (|s| s.starting_cents = 0, LotRulesError::StartingPrice(0)),
            (
                |s| s.starting_cents = MAX_CENTS + 1,
                LotRulesError::StartingPrice(MAX_CENTS + 1),
            ),
            (
                |s| s.reserve_cents = Some(1_000),
                LotRulesError::Reserve(1_000),
            ),
            (
                |s| s.reserve_cents = Some(MAX_CENTS + 1),
                LotRulesError::Reserve(MAX_CENTS + 1),
            ),
            (|s| s.ends_at = s.starts_at, LotRulesError::EndsBeforeStart),
            (
                |s| s.hard_end = s.ends_at - TimeDelta::seconds(1),
                LotRulesError::HardEndBeforeEnd,
            ),
            (
                |s| s.soft_close = TimeDelta::seconds(-1),
                LotRulesError::NegativeSoftClose,
            ),
        ];

        for (spoil, expected) in cases {
            let mut bad = spec();
            spoil(&mut bad);
            assert_eq!(LotRules::parse(bad), Err(expected));
        }
    }

    #[test]
    fn a_new_lot_is_scheduled_at_its_starting_price_with_no_bids() {
        let rules = LotRules::parse(spec()).expect("valid");

        let state = LotState::new(&rules);

        assert_eq!(state.status, LotStatus::Scheduled);
        assert_eq!(state.current_cents, 1_000);
        assert_eq!(state.min_next_cents(&rules), 1_000);
        assert_eq!(state.ends_at, at(300));
        assert_eq!(state.version, 0);
    }

    #[test]
    fn a_reserve_is_not_met_before_the_first_bid() {
        let with_reserve = LotRules::parse(LotSpec {
            reserve_cents: Some(5_000),
            ..spec()
        })
        .expect("valid");
        let without = LotRules::parse(spec()).expect("valid");

        assert!(!LotState::new(&with_reserve).reserve_met(&with_reserve));
        assert!(LotState::new(&without).reserve_met(&without));
    }

    #[test]
    fn the_view_shows_the_state_but_hides_the_reserve_and_the_maximum() {
        let rules = LotRules::parse(LotSpec {
            reserve_cents: Some(5_000),
            ..spec()
        })
        .expect("valid");
        let state = LotState {
            status: LotStatus::Running,
            current_cents: 1_200,
            leader: Some(Leader {
                user_id: 7,
                max_cents: 4_321,
                max_placed_at: at(10),
            }),
            bid_count: 3,
            version: 4,
            ..LotState::new(&rules)
        };

        let json = serde_json::to_value(state.view(&rules)).expect("serializes");

        assert_eq!(
            json,
            serde_json::json!({
                "status": "running",
                "currency": "EUR",
                "current_cents": 1200,
                "min_next_cents": 1250,
                "leader": 7,
                "bid_count": 3,
                "ends_at": "2026-11-23T19:05:00Z",
                "reserve_met": false,
                "version": 4,
            })
        );
        let text = json.to_string();
        assert!(!text.contains("5000") && !text.contains("4321"), "{text}");
    }
}
