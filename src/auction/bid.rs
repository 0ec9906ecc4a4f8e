//! Placing a bid: eBay-style proxy bidding, the reserve jump and soft close.
//!
//! A bid carries an amount and, optionally, a maximum (`max`, at least the
//! amount). Its *maximum* is `max`, or the amount when there is none: the most
//! the system will bid for that person. The visible price is the
//! second-highest maximum plus one increment, capped at the leader's maximum.
//!
//! - **Open:** only a running lot takes bids, from `starts_at` up to but not
//!   including `ends_at`.
//! - **Valid:** the amount and maximum are 1 cent to [`MAX_CENTS`], and the
//!   maximum is at least the amount.
//! - **Too low:** every maximum must reach the minimum next bid: the starting
//!   price before the first bid, afterwards the price plus its increment.
//! - **First bid:** it leads at the starting price, or at its amount when the
//!   bidder typed more: an explicit amount is a bid the bidder chose to show.
//! - **A challenger with a higher maximum** leads. The price becomes the old
//!   leader's maximum plus one increment, or the challenger's amount if that
//!   is higher, but never above the challenger's maximum.
//! - **A challenger with an equal or lower maximum** is outbid at once: the
//!   earlier bid wins ties. The price becomes the challenger's maximum plus one
//!   increment, capped at the leader's maximum.
//! - **The leader** may raise their maximum. The price stays where it is
//!   (raising your own price would only cost you), unless the reserve jump
//!   applies. Bidding without raising it is refused.
//! - **Reserve jump:** once the leader's maximum reaches the hidden reserve,
//!   the price rises to the reserve (if it is below), so that `reserve_met`
//!   shows. Never above the leader's maximum, which is at least the reserve.
//! - **Soft close:** a bid that moves the price within the last `soft_close`
//!   before the end pushes the end to `now + soft_close`, never past the hard
//!   end. A leader's silent raise of their maximum gives others nothing to
//!   answer, so it does not extend.
//! - **Records:** every accepted bid bumps `version` by one. The rows it
//!   returns are the visible price moves, in order, for the bids table: the
//!   loser's proxy reaching its maximum, then the leader's new price. A row is
//!   `proxy` when the system placed that amount rather than the bidder typing
//!   it.

use chrono::{DateTime, Utc};

use super::error::BidError;
use super::lot::{Leader, LotRules, LotState, LotStatus, UserId, MAX_CENTS};

/// A bid as the client sent it, with the bidder the session vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BidRequest {
    pub bidder: UserId,
    pub amount_cents: i64,
    /// A proxy bid: the system bids for this person up to here.
    pub max_cents: Option<i64>,
}

/// One row for the bids table: a move of the visible price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BidRow {
    pub bidder: UserId,
    pub amount_cents: i64,
    /// Placed by the system on the bidder's maximum, not typed by them.
    pub proxy: bool,
}

/// Where an accepted bid left its bidder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The bidder leads. `displaced` was leading before and gets `outbid`.
    Leading { displaced: Option<UserId> },
    /// The leader's proxy beat this bid at once; `leader` still leads.
    Outbid { leader: UserId },
    /// The leader raised their own maximum.
    RaisedMax,
}

/// What an accepted bid changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidOutcome {
    /// The lot after the bid, `version` one higher: write it with a
    /// compare-and-set on the old version.
    pub state: LotState,
    /// The bids to insert, in order. Empty for a silent raise of a maximum.
    pub rows: Vec<BidRow>,
    pub standing: Standing,
    /// Whether soft close pushed `ends_at` later.
    pub extended: bool,
}

impl BidOutcome {
    /// The previous leader, when this bid took the lead from them.
    pub fn displaced(&self) -> Option<UserId> {
        match self.standing {
            Standing::Leading { displaced } => displaced,
            Standing::Outbid { .. } | Standing::RaisedMax => None,
        }
    }
}

/// Applies one bid to a lot at `now`, or says why it is refused. Pure: the
/// caller stores the outcome and broadcasts it.
pub fn place_bid(
    rules: &LotRules,
    state: &LotState,
    request: &BidRequest,
    now: DateTime<Utc>,
) -> Result<BidOutcome, BidError> {
    let open =
        state.status == LotStatus::Running && rules.starts_at() <= now && now < state.ends_at;
    if !open {
        return Err(BidError::LotNotOpen);
    }
    let max = bidder_max(rules, request)?;
    let min_next = state.min_next_cents(rules);
    let too_low = || BidError::BidTooLow {
        min_next: rules.money(min_next),
    };
    let increments = rules.increments();
    let challenger = Leader {
        user_id: request.bidder,
        max_cents: max,
        max_placed_at: now,
    };

    let mut rows = Vec::new();
    let (leader, price, standing) = match state.leader {
        Some(leader) if leader.user_id == request.bidder => {
            if max <= leader.max_cents {
                return Err(BidError::OwnBidIsHighest {
                    your_max: rules.money(leader.max_cents),
                });
            }
            if max < min_next {
                return Err(too_low());
            }
            (challenger, state.current_cents, Standing::RaisedMax)
        }
        _ if max < min_next => return Err(too_low()),
        None => {
            let price = rules.starting_cents().max(request.amount_cents);
            (challenger, price, Standing::Leading { displaced: None })
        }
        Some(leader) if max > leader.max_cents => {
            if leader.max_cents > state.current_cents {
                rows.push(BidRow {
                    bidder: leader.user_id,
                    amount_cents: leader.max_cents,
                    proxy: true,
                });
            }
            let price = increments
                .next_after(leader.max_cents)
                .max(request.amount_cents)
                .min(max);
            let displaced = Some(leader.user_id);
            (challenger, price, Standing::Leading { displaced })
        }
        Some(leader) => {
            rows.push(BidRow {
                bidder: request.bidder,
                amount_cents: max,
                proxy: max != request.amount_cents,
            });
            let price = increments.next_after(max).min(leader.max_cents);
            let standing = Standing::Outbid {
                leader: leader.user_id,
            };
            (leader, price, standing)
        }
    };
    let price = reserve_jump(rules, price, leader.max_cents);
    if state.leader.is_none() || price != state.current_cents {
        let typed = leader.user_id == request.bidder && price == request.amount_cents;
        rows.push(BidRow {
            bidder: leader.user_id,
            amount_cents: price,
            proxy: !typed,
        });
    }

    let ends_at = if rows.is_empty() {
        state.ends_at
    } else {
        soft_close_end(rules, state.ends_at, now)
    };
    let next = LotState {
        status: state.status,
        ends_at,
        current_cents: price,
        leader: Some(leader),
        bid_count: state.bid_count + rows.len() as u64,
        version: state.version + 1,
    };
    Ok(BidOutcome {
        extended: next.ends_at > state.ends_at,
        state: next,
        rows,
        standing,
    })
}

/// The most this bid lets the system pay for its bidder, once its amounts
/// are known to be in range.
fn bidder_max(rules: &LotRules, request: &BidRequest) -> Result<i64, BidError> {
    let out_of_range = |cents: i64| !(1..=MAX_CENTS).contains(&cents);
    if out_of_range(request.amount_cents) || request.max_cents.is_some_and(out_of_range) {
        return Err(BidError::InvalidAmount {
            cap: rules.money(MAX_CENTS),
        });
    }
    match request.max_cents {
        Some(max) if max < request.amount_cents => Err(BidError::BidAboveMax {
            amount: rules.money(request.amount_cents),
            max: rules.money(max),
        }),
        Some(max) => Ok(max),
        None => Ok(request.amount_cents),
    }
}

/// The price raised to the reserve once the leader's maximum reaches it.
fn reserve_jump(rules: &LotRules, price: i64, leader_max: i64) -> i64 {
    match rules.reserve_cents() {
        Some(reserve) if leader_max >= reserve => price.max(reserve),
        _ => price,
    }
}

/// The end after a price move at `now`: pushed to `now + soft_close` when
/// that is later, but never past the hard end.
fn soft_close_end(rules: &LotRules, ends_at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let pushed = now
        .checked_add_signed(rules.soft_close())
        .unwrap_or(rules.hard_end())
        .min(rules.hard_end());
    pushed.max(ends_at)
}

#[cfg(test)]
mod tests;
