//! Each bidding rule and each refusal, with concrete numbers on the default
//! increments (0.50 from 5.00, 1.00 from 25.00) and a lot from 10.00.

use chrono::TimeDelta;

use super::*;
use crate::auction::fixtures::{accept, at, bid, proxy, rules_from, running, spec};
use crate::auction::lot::{LotSpec, MAX_CENTS};
use crate::protocol::ErrorCode;

fn row(bidder: UserId, amount_cents: i64, proxy: bool) -> BidRow {
    BidRow {
        bidder,
        amount_cents,
        proxy,
    }
}

fn refusal(
    rules: &LotRules,
    state: &LotState,
    request: BidRequest,
    now: DateTime<Utc>,
) -> BidError {
    place_bid(rules, state, &request, now).expect_err("the bid should be refused")
}

#[test]
fn a_first_bid_leads_at_the_starting_price() {
    let rules = rules_from(spec());
    let state = running(&rules);

    let outcome = accept(&rules, &state, proxy(1, 1_000, 5_000), at(10));

    assert_eq!(outcome.state.current_cents, 1_000);
    assert_eq!(outcome.state.leader.map(|l| l.max_cents), Some(5_000));
    assert_eq!(outcome.rows, [row(1, 1_000, false)]);
    assert_eq!(outcome.standing, Standing::Leading { displaced: None });
    assert_eq!(outcome.state.version, state.version + 1);
    assert_eq!(outcome.state.bid_count, 1);
}

#[test]
fn a_first_bid_above_the_starting_price_opens_at_its_amount() {
    let rules = rules_from(spec());

    let outcome = accept(&rules, &running(&rules), bid(1, 1_500), at(10));

    assert_eq!(outcome.state.current_cents, 1_500);
    assert_eq!(outcome.rows, [row(1, 1_500, false)]);
}

#[test]
fn a_first_proxy_bid_typed_below_the_starting_price_opens_at_it_for_the_bidder() {
    let rules = rules_from(spec());

    let outcome = accept(&rules, &running(&rules), proxy(1, 500, 2_000), at(10));

    assert_eq!(outcome.state.current_cents, 1_000);
    assert_eq!(outcome.rows, [row(1, 1_000, true)]);
}

#[test]
fn a_proxy_war_prices_each_bid_one_increment_over_the_losing_maximum() {
    let rules = rules_from(spec());
    let state = running(&rules);

    // A's proxy goes up to 50.00.
    let a_opens = accept(&rules, &state, proxy(1, 1_000, 5_000), at(10));
    // B bids 30.00: A's proxy answers at once with 31.00.
    let b_bids = accept(&rules, &a_opens.state, bid(2, 3_000), at(20));
    // B's proxy up to 60.00 beats A's 50.00 by one increment: 51.00.
    let b_proxies = accept(&rules, &b_bids.state, proxy(2, 3_200, 6_000), at(30));
    // A matches 60.00: B placed it first and keeps the lead, at 60.00.
    let a_ties = accept(&rules, &b_proxies.state, proxy(1, 5_200, 6_000), at(40));
    // A bids 61.00: one increment over B's maximum, A leads.
    let a_wins = accept(&rules, &a_ties.state, bid(1, 6_100), at(50));

    assert_eq!(b_bids.state.current_cents, 3_100);
    assert_eq!(b_bids.standing, Standing::Outbid { leader: 1 });
    assert_eq!(b_bids.rows, [row(2, 3_000, false), row(1, 3_100, true)]);

    assert_eq!(b_proxies.state.current_cents, 5_100);
    assert_eq!(b_proxies.displaced(), Some(1));
    assert_eq!(b_proxies.rows, [row(1, 5_000, true), row(2, 5_100, true)]);

    assert_eq!(a_ties.state.current_cents, 6_000);
    assert_eq!(a_ties.standing, Standing::Outbid { leader: 2 });
    assert_eq!(a_ties.rows, [row(1, 6_000, true), row(2, 6_000, true)]);

    assert_eq!(a_wins.state.current_cents, 6_100);
    assert_eq!(a_wins.displaced(), Some(2));
    assert_eq!(a_wins.rows, [row(1, 6_100, false)]);
    assert_eq!(a_wins.state.version, state.version + 5);
    assert_eq!(a_wins.state.bid_count, 8);
}

#[test]
fn on_equal_maximums_the_earlier_bid_wins() {
    let rules = rules_from(spec());
    let first = accept(&rules, &running(&rules), proxy(1, 1_000, 4_000), at(10));

    let second = accept(&rules, &first.state, proxy(2, 1_100, 4_000), at(20));

    let leader = second.state.leader.expect("someone leads");
    assert_eq!(leader.user_id, 1);
    assert_eq!(leader.max_placed_at, at(10));
    assert_eq!(second.state.current_cents, 4_000);
    assert_eq!(second.displaced(), None);
}

#[test]
fn a_challenger_who_types_more_than_the_increment_pays_what_they_typed() {
    let rules = rules_from(spec());
    let first = accept(&rules, &running(&rules), proxy(1, 1_000, 5_000), at(10));

    let second = accept(&rules, &first.state, proxy(2, 5_500, 8_000), at(20));

    assert_eq!(second.state.current_cents, 5_500);
    assert_eq!(second.rows, [row(1, 5_000, true), row(2, 5_500, false)]);
}

#[test]
fn a_winning_price_is_capped_at_the_winners_maximum() {
    let rules = rules_from(spec());
    let first = accept(&rules, &running(&rules), proxy(1, 1_000, 5_000), at(10));

    let second = accept(&rules, &first.state, proxy(2, 2_000, 5_050), at(20));

    assert_eq!(second.state.current_cents, 5_050);
    assert_eq!(second.rows, [row(1, 5_000, true), row(2, 5_050, true)]);
}

#[test]
fn the_leader_may_raise_their_maximum_without_moving_the_price() {
    let rules = rules_from(spec());
    let first = accept(&rules, &running(&rules), proxy(1, 1_000, 5_000), at(10));

    let raised = accept(&rules, &first.state, proxy(1, 1_000, 8_000), at(20));

    assert_eq!(raised.standing, Standing::RaisedMax);
    assert_eq!(raised.state.current_cents, 1_000);
    assert_eq!(raised.state.leader.map(|l| l.max_cents), Some(8_000));
    assert_eq!(raised.rows, []);
    assert_eq!(raised.state.version, first.state.version + 1);
    assert_eq!(raised.state.bid_count, first.state.bid_count);
}

#[test]
fn a_leader_who_does_not_raise_their_maximum_is_told_they_lead() {
    let rules = rules_from(spec());
    let first = accept(&rules, &running(&rules), proxy(1, 1_000, 5_000), at(10));

    let lower = refusal(&rules, &first.state, bid(1, 3_000), at(20));
    let same = refusal(&rules, &first.state, bid(1, 5_000), at(20));

    assert_eq!(lower.code(), ErrorCode::OwnBidIsHighest);
    assert_eq!(lower, same);
    assert_eq!(
        lower.to_string(),
        "you are already the highest bidder, up to your maximum of 50.00 EUR; raise it to bid more"
    );
}

#[test]
fn a_leaders_raise_must_reach_the_minimum_next_bid() {
    let rules = rules_from(spec());
    let first = accept(&rules, &running(&rules), bid(1, 1_000), at(10));

    let error = refusal(&rules, &first.state, bid(1, 1_020), at(20));

    assert_eq!(error.to_string(), "the minimum next bid is 10.50 EUR");
}

#[test]
fn a_bid_below_the_minimum_next_bid_is_too_low() {
    let rules = rules_from(spec());
    let state = running(&rules);
    let first = accept(&rules, &state, bid(1, 1_000), at(10));

    let before_any = refusal(&rules, &state, proxy(2, 500, 999), at(5));
    let after_one = refusal(&rules, &first.state, bid(2, 1_049), at(20));

    assert_eq!(before_any.code(), ErrorCode::BidTooLow);
    assert_eq!(before_any.to_string(), "the minimum next bid is 10.00 EUR");
    assert_eq!(after_one.to_string(), "the minimum next bid is 10.50 EUR");
}

#[test]
fn a_maximum_below_the_amount_is_refused() {
    let rules = rules_from(spec());

    let error = refusal(&rules, &running(&rules), proxy(1, 2_000, 1_500), at(10));

    assert_eq!(error.code(), ErrorCode::BidAboveMax);
    assert_eq!(
        error.to_string(),
        "the bid of 20.00 EUR is above your maximum of 15.00 EUR"
    );
}

#[test]
fn zero_negative_and_enormous_amounts_are_invalid() {
    let rules = rules_from(spec());
    let state = running(&rules);

    for request in [
        bid(1, 0),
        bid(1, -500),
        bid(1, MAX_CENTS + 1),
        proxy(1, 1_000, MAX_CENTS + 1),
        proxy(1, 1_000, 0),
    ] {
        let error = refusal(&rules, &state, request, at(10));
        assert_eq!(error.code(), ErrorCode::InvalidAmount, "{request:?}");
    }
    assert!(place_bid(&rules, &state, &bid(1, MAX_CENTS), at(10)).is_ok());
}

#[test]
fn a_lot_takes_bids_only_while_running_between_its_start_and_end() {
    let rules = rules_from(spec());
    let state = running(&rules);
    let scheduled = LotState::new(&rules);
    let finished = LotState {
        status: LotStatus::Finished,
        ..state.clone()
    };

    let refused = [
        refusal(&rules, &scheduled, bid(1, 1_000), at(10)),
        refusal(&rules, &finished, bid(1, 1_000), at(10)),
        refusal(&rules, &state, bid(1, 1_000), at(-1)),
        refusal(&rules, &state, bid(1, 1_000), at(300)),
        refusal(&rules, &state, bid(1, 1_000), at(301)),
    ];
    let last_moment = at(300) - TimeDelta::milliseconds(1);

    assert!(refused.iter().all(|e| *e == BidError::LotNotOpen));
    assert_eq!(refused[0].code(), ErrorCode::LotNotOpen);
    assert!(place_bid(&rules, &state, &bid(1, 1_000), at(0)).is_ok());
    assert!(place_bid(&rules, &state, &bid(1, 1_000), last_moment).is_ok());
}

#[test]
fn a_bid_exactly_at_the_end_is_refused() {
    let rules = rules_from(spec());

    let error = refusal(&rules, &running(&rules), bid(1, 1_000), at(300));

    assert_eq!(error, BidError::LotNotOpen);
}

#[test]
fn a_bid_in_the_soft_close_window_extends_the_end() {
    let rules = rules_from(spec());
    let state = running(&rules);

    let early = accept(&rules, &state, bid(1, 1_000), at(200));
    let edge = accept(&rules, &state, bid(1, 1_000), at(240));
    let late = accept(&rules, &state, bid(1, 1_000), at(270));

    assert!(!early.extended);
    assert_eq!(early.state.ends_at, at(300));
    assert!(!edge.extended);
    assert!(late.extended);
    assert_eq!(late.state.ends_at, at(330));
}

#[test]
fn soft_close_never_extends_past_the_hard_end() {
    let rules = rules_from(LotSpec {
        hard_end: at(320),
        ..spec()
    });
    let first = accept(&rules, &running(&rules), bid(1, 1_000), at(290));

    let second = accept(&rules, &first.state, bid(2, 1_050), at(319));

    assert_eq!(first.state.ends_at, at(320));
    assert!(first.extended);
    assert_eq!(second.state.ends_at, at(320));
    assert!(!second.extended);
}

#[test]
fn a_silent_raise_of_a_maximum_does_not_extend_the_end() {
    let rules = rules_from(spec());
    let first = accept(&rules, &running(&rules), bid(1, 1_000), at(100));

    let raised = accept(&rules, &first.state, proxy(1, 1_000, 9_000), at(290));

    assert!(!raised.extended);
    assert_eq!(raised.state.ends_at, at(300));
}

#[test]
fn a_bid_below_the_reserve_leaves_it_unmet() {
    let rules = rules_from(LotSpec {
        reserve_cents: Some(5_000),
        ..spec()
    });

    let outcome = accept(&rules, &running(&rules), bid(1, 4_000), at(10));

    assert_eq!(outcome.state.current_cents, 4_000);
    assert!(!outcome.state.reserve_met(&rules));
}

#[test]
fn a_maximum_that_reaches_the_reserve_lifts_the_price_to_it() {
    let rules = rules_from(LotSpec {
        reserve_cents: Some(5_000),
        ..spec()
    });

    let outcome = accept(&rules, &running(&rules), proxy(1, 1_000, 6_000), at(10));

    assert_eq!(outcome.state.current_cents, 5_000);
    assert!(outcome.state.reserve_met(&rules));
    assert_eq!(outcome.rows, [row(1, 5_000, true)]);
}

#[test]
fn a_challenger_whose_maximum_reaches_the_reserve_leads_at_the_reserve() {
    let rules = rules_from(LotSpec {
        reserve_cents: Some(5_000),
        ..spec()
    });
    let first = accept(&rules, &running(&rules), proxy(1, 1_000, 3_000), at(10));

    let second = accept(&rules, &first.state, proxy(2, 1_100, 7_000), at(20));

    assert_eq!(second.state.current_cents, 5_000);
    assert_eq!(second.rows, [row(1, 3_000, true), row(2, 5_000, true)]);
}

#[test]
fn a_leader_raising_their_maximum_to_the_reserve_lifts_the_price_and_extends() {
    let rules = rules_from(LotSpec {
        reserve_cents: Some(5_000),
        ..spec()
    });
    let first = accept(&rules, &running(&rules), bid(1, 4_000), at(10));

    let raised = accept(&rules, &first.state, proxy(1, 4_100, 5_500), at(280));

    assert_eq!(raised.standing, Standing::RaisedMax);
    assert_eq!(raised.state.current_cents, 5_000);
    assert!(raised.state.reserve_met(&rules));
    assert_eq!(raised.rows, [row(1, 5_000, true)]);
    assert!(raised.extended);
}
