//! Properties of bidding over random lots and random sequences of bids: a few
//! bidders, amounts around the minimum next bid (some too low, some with a
//! maximum below the amount), at random times around the lot's window.
//! Maxima, starting prices and reserves are often whole euros, so that equal
//! maximums and a maximum exactly at the reserve come up.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use proptest::collection::vec;
use proptest::prelude::*;

use super::bid::{place_bid, BidOutcome, BidRequest, Standing};
use super::error::BidError;
use super::fixtures::{at, rules_from, running, spec};
use super::increments::{Increments, Tier};
use super::lifecycle::{close, Verdict};
use super::lot::{LotRules, LotSpec, LotState, UserId, MAX_CENTS};
use crate::protocol::ErrorCode;

/// How an attempt picks its maximum.
#[derive(Debug, Clone)]
enum Max {
    /// None: the amount is the maximum.
    None,
    /// The amount plus this; negative is a maximum below the amount.
    Above(i64),
    /// Whole euros, whatever the amount: ties come up.
    Euros(i64),
    /// Exactly the leader's maximum: a tie, or a leader bidding it again.
    Leaders,
    /// Exactly the reserve, when there is one.
    Reserve,
}

/// One attempt, relative to the lot's state when it is made.
#[derive(Debug, Clone)]
struct Attempt {
    bidder: UserId,
    /// Added to the minimum next bid to get the amount.
    offset: i64,
    max: Max,
    /// Milliseconds since the previous attempt.
    gap_ms: i64,
}

fn increments() -> impl Strategy<Value = Increments> {
    (vec(1..20_000i64, 0..5), vec(1..500i64, 5)).prop_map(|(mut thresholds, mut steps)| {
        thresholds.push(0);
        thresholds.sort_unstable();
        thresholds.dedup();
        steps.sort_unstable();
        let tiers = thresholds
            .into_iter()
            .zip(steps)
            .map(|(from_cents, step_cents)| Tier {
                from_cents,
                step_cents,
            })
            .collect();
        Increments::new(tiers).expect("sorted thresholds from 0, growing positive steps")
    })
}

fn lot() -> impl Strategy<Value = LotRules> {
    (
        prop_oneof![1..5_000i64, (1..50i64).prop_map(|euros| euros * 100)],
        prop::option::of(prop_oneof![
            1..30_000i64,
            (1..300i64).prop_map(|euros| euros * 100)
        ]),
        increments(),
        0..600i64,
        0..120i64,
    )
        .prop_map(
            |(starting_cents, reserve_above, increments, slack, window)| {
                rules_from(LotSpec {
                    starting_cents,
                    reserve_cents: reserve_above.map(|above| starting_cents + above),
                    increments,
                    hard_end: at(300 + slack),
                    soft_close: TimeDelta::seconds(window),
                    ..spec()
                })
            },
        )
}

fn attempts() -> impl Strategy<Value = Vec<Attempt>> {
    let attempt = (
        1..=4i64,
        -300..4_000i64,
        prop_oneof![
            Just(Max::None),
            (-100..6_000i64).prop_map(Max::Above),
            (1..400i64).prop_map(Max::Euros),
            Just(Max::Leaders),
            Just(Max::Reserve),
        ],
        0..10_000i64,
    )
        .prop_map(|(bidder, offset, max, gap_ms)| Attempt {
            bidder,
            offset,
            max,
            gap_ms,
        });
    vec(attempt, 1..60)
}

/// What the rules must agree with: each bidder's maximum and when it was
/// placed (the index of the accepted bid), learnt only from the requests.
#[derive(Default)]
struct Ledger {
    maxima: BTreeMap<UserId, (i64, usize)>,
    /// Every (bidder, amount) the bids table has shown.
    shown: BTreeSet<(UserId, i64)>,
}

impl Ledger {
    /// The highest maximum, the earliest placed on a tie.
    fn expected_leader(&self) -> Option<(UserId, i64)> {
        self.maxima
            .iter()
            .max_by_key(|(_, &(max, placed))| (max, std::cmp::Reverse(placed)))
            .map(|(&user, &(max, _))| (user, max))
    }
}

/// Runs the attempts in time order, checking every step, and returns the
/// final state.
fn run(rules: &LotRules, attempts: &[Attempt]) -> Result<LotState, TestCaseError> {
    let mut state = running(rules);
    let mut ledger = Ledger::default();
    let mut now = at(-20);
    let mut accepted = 0;
    for attempt in attempts {
        now += TimeDelta::milliseconds(attempt.gap_ms);
        let amount_cents = state.min_next_cents(rules) + attempt.offset;
        let request = BidRequest {
            bidder: attempt.bidder,
            amount_cents,
            max_cents: match attempt.max {
                Max::None => None,
                Max::Above(extra) => Some(amount_cents + extra),
                Max::Euros(euros) => Some(euros * 100),
                Max::Leaders => state.leader.map(|leader| leader.max_cents),
                Max::Reserve => rules.reserve_cents(),
            },
        };
        let result = place_bid(rules, &state, &request, now);
        prop_assert_eq!(
            result.as_ref().err().map(BidError::code),
            expected_refusal(rules, &state, &request, now),
            "{:?} at {} on {:?}",
            request,
            now,
            state
        );
        if let Ok(outcome) = result {
            let max = request.max_cents.unwrap_or(amount_cents);
            if let Some(&(previous, _)) = ledger.maxima.get(&request.bidder) {
                prop_assert!(max > previous, "a bidder's maximum only grows");
            }
            ledger.maxima.insert(request.bidder, (max, accepted));
            accepted += 1;
            let rows = outcome
                .rows
                .iter()
                .map(|row| (row.bidder, row.amount_cents));
            ledger.shown.extend(rows);
            check_step(rules, &state, &request, &outcome, &ledger, now)?;
            state = outcome.state;
        }
    }
    Ok(state)
}

/// The code a bid must be refused with, from the rules as docs/protocol.md and
/// the module docs state them, checked in the order a bidder is told.
fn expected_refusal(
    rules: &LotRules,
    state: &LotState,
    request: &BidRequest,
    now: DateTime<Utc>,
) -> Option<ErrorCode> {
    let in_range = |cents: i64| (1..=MAX_CENTS).contains(&cents);
    let max = request.max_cents.unwrap_or(request.amount_cents);
    let leads = state.leader.filter(|l| l.user_id == request.bidder);
    if !(rules.starts_at() <= now && now < state.ends_at) {
        Some(ErrorCode::LotNotOpen)
    } else if !in_range(request.amount_cents) || !in_range(max) {
        Some(ErrorCode::InvalidAmount)
    } else if max < request.amount_cents {
        Some(ErrorCode::BidAboveMax)
    } else if leads.is_some_and(|l| max <= l.max_cents) {
        Some(ErrorCode::OwnBidIsHighest)
    } else if max < state.min_next_cents(rules) {
        Some(ErrorCode::BidTooLow)
    } else {
        None
    }
}

fn check_step(
    rules: &LotRules,
    before: &LotState,
    request: &BidRequest,
    outcome: &BidOutcome,
    ledger: &Ledger,
    now: DateTime<Utc>,
) -> Result<(), TestCaseError> {
    let after = &outcome.state;
    let leader = after.leader.expect("an accepted bid leaves a leader");

    prop_assert_eq!(after.version, before.version + 1);
    prop_assert!(
        after.current_cents >= before.current_cents,
        "the price fell"
    );
    prop_assert!(after.current_cents >= rules.starting_cents());
    prop_assert!(
        after.current_cents <= leader.max_cents,
        "price above the leader's maximum"
    );
    prop_assert_eq!(
        ledger.expected_leader(),
        Some((leader.user_id, leader.max_cents))
    );
    for (&user, &(max, _)) in &ledger.maxima {
        if user != leader.user_id {
            prop_assert!(
                after.current_cents >= max,
                "the price is below a loser's maximum"
            );
            prop_assert!(
                ledger.shown.contains(&(user, max)),
                "a loser's maximum is not in the bids"
            );
        }
    }
    if let Standing::Leading { .. } = outcome.standing {
        prop_assert!(
            after.current_cents >= request.amount_cents,
            "the leader's typed amount is not shown"
        );
    }
    let reserve_reached = rules.reserve_cents().is_none_or(|r| leader.max_cents >= r);
    prop_assert_eq!(after.reserve_met(rules), reserve_reached);

    prop_assert!(after.ends_at >= before.ends_at, "the end moved earlier");
    prop_assert!(
        after.ends_at <= rules.hard_end(),
        "the end passed the hard end"
    );
    if outcome.extended {
        prop_assert_eq!(
            after.ends_at,
            (now + rules.soft_close()).min(rules.hard_end())
        );
    }
    if outcome.rows.is_empty() {
        prop_assert_eq!(
            after.ends_at,
            before.ends_at,
            "a silent raise moved the end"
        );
    }

    prop_assert_eq!(
        after.bid_count,
        before.bid_count + outcome.rows.len() as u64
    );
    let recorded = outcome.rows.iter().any(|row| row.bidder == request.bidder);
    match outcome.standing {
        Standing::RaisedMax => prop_assert_eq!(
            outcome.rows.is_empty(),
            after.current_cents == before.current_cents,
            "a raise records a row exactly when it moves the price"
        ),
        _ => prop_assert!(recorded, "every bid but a silent raise is recorded"),
    }
    let mut previous = before.leader.map(|_| before.current_cents);
    for row in &outcome.rows {
        let (bidder_max, _) = ledger.maxima[&row.bidder];
        let valid = match previous {
            None => row.amount_cents >= rules.starting_cents(),
            Some(price) => {
                row.amount_cents >= rules.increments().next_after(price)
                    || (row.amount_cents >= price && row.amount_cents == bidder_max)
                    || Some(row.amount_cents) == rules.reserve_cents()
            }
        };
        prop_assert!(
            valid,
            "row {:?} after {:?} is not a valid step",
            row,
            previous
        );
        prop_assert!(
            row.amount_cents <= bidder_max,
            "a row above its bidder's maximum"
        );
        previous = Some(row.amount_cents);
    }
    if let Some(last) = outcome.rows.last() {
        prop_assert_eq!(last.amount_cents, after.current_cents);
        prop_assert_eq!(last.bidder, leader.user_id);
    }
    Ok(())
}

proptest! {
    // A case is a few dozen pure calls, so many cases cost little.
    #![proptest_config(ProptestConfig::with_cases(1_024))]

    #[test]
    fn random_bidding_keeps_every_rule(rules in lot(), attempts in attempts()) {
        run(&rules, &attempts)?;
    }

    #[test]
    fn a_closed_lot_sells_to_the_leader_within_their_maximum_only_at_the_reserve(
        rules in lot(),
        attempts in attempts(),
    ) {
        let state = run(&rules, &attempts)?;

        let closing = close(&rules, &state, state.ends_at).expect("a running lot closes at its end");

        match (state.leader, closing.verdict) {
            (None, Verdict::NoBids) => {}
            (Some(leader), Verdict::Sold { winner, final_cents }) => {
                prop_assert_eq!(winner, leader.user_id);
                prop_assert!(final_cents <= leader.max_cents);
                prop_assert!(rules.reserve_cents().is_none_or(|r| final_cents >= r));
            }
            (Some(leader), Verdict::ReserveNotMet { leader: user, final_cents }) => {
                prop_assert_eq!(user, leader.user_id);
                prop_assert!(rules.reserve_cents().is_some_and(|r| final_cents < r));
            }
            (leader, verdict) => prop_assert!(false, "{:?} closed as {:?}", leader, verdict),
        }
    }
}
