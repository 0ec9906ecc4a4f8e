//! A lot's row as the auction rules see it: read back into rules and state,
//! or refused as corrupt when it no longer holds, and a state written back
//! into its columns. Lots, bids and the Scheduler all read and write lots
//! through these, so the columns mean the same everywhere.

use chrono::TimeDelta;
use entity::lots;
use sea_orm::ActiveValue::Set;

use crate::auction::{Increments, Leader, LotRules, LotSpec, LotState};

/// A lot row that no longer reads back as valid rules and state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lot {id} is stored with {problem}")]
pub struct CorruptLot {
    pub id: i64,
    pub problem: String,
}

/// The rules and state of a lot row, or why they do not hold.
pub fn rules_and_state(row: &lots::Model) -> Result<(LotRules, LotState), CorruptLot> {
    let corrupt = |problem: String| CorruptLot {
        id: row.id,
        problem,
    };
    let increments: Increments = serde_json::from_str(&row.increments)
        .map_err(|e| corrupt(format!("increments that do not parse: {e}")))?;
    let soft_close = TimeDelta::try_seconds(row.soft_close_secs)
        .ok_or_else(|| corrupt(format!("a soft close of {} s", row.soft_close_secs)))?;
    let rules = LotRules::parse(LotSpec {
        currency: row.currency.clone(),
        starting_cents: row.starting_cents,
        reserve_cents: row.reserve_cents,
        increments,
        starts_at: row.starts_at,
        ends_at: row.listed_ends_at,
        hard_end: row.hard_end,
        soft_close,
    })
    .map_err(|e| corrupt(format!("rules that do not hold: {e}")))?;
    let leader = match (
        row.leader_id,
        row.leader_max_cents,
        row.leader_max_placed_at,
    ) {
        (Some(user_id), Some(max_cents), Some(max_placed_at)) => Some(Leader {
            user_id,
            max_cents,
            max_placed_at,
        }),
        (None, None, None) => None,
        _ => return Err(corrupt("a leader with missing fields".into())),
    };
    let count = |n: i64, what: &str| {
        u64::try_from(n).map_err(|_| corrupt(format!("a negative {what} ({n})")))
    };
    let state = LotState {
        status: row.status,
        ends_at: row.ends_at,
        current_cents: row.current_cents,
        leader,
        bid_count: count(row.bid_count, "bid count")?,
        version: count(row.version, "version")?,
    };
    Ok((rules, state))
}

/// Sets the columns that hold a lot's state.
pub(super) fn write_state(row: &mut lots::ActiveModel, state: &LotState) {
    row.status = Set(state.status);
    row.ends_at = Set(state.ends_at);
    row.current_cents = Set(state.current_cents);
    row.leader_id = Set(state.leader.map(|l| l.user_id));
    row.leader_max_cents = Set(state.leader.map(|l| l.max_cents));
    row.leader_max_placed_at = Set(state.leader.map(|l| l.max_placed_at));
    row.bid_count = Set(to_i64(state.bid_count));
    row.version = Set(to_i64(state.version));
}

/// A count or version as its `i64` column holds it, saturating.
pub(super) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
