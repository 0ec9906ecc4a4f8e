//! The Scheduler's queries: opening the lots whose start has come and
//! finishing those whose end has. Each transition is conditional on the
//! status and version read, so with several nodes exactly one performs it.

use chrono::{DateTime, Utc};
use entity::lots;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::row::{rules_and_state, to_i64};
use crate::auction::{close, open, Closing, LotRules, LotState, LotStatus, Verdict};

/// How many lots one `open_due` or `close_due` call moves; the next tick of
/// the Scheduler takes the rest.
const DUE_PER_CALL: u64 = 100;

/// A lot the Scheduler has just opened.
#[derive(Debug, Clone)]
pub struct Opened {
    pub lot_id: i64,
    pub rules: LotRules,
    pub state: LotState,
}

/// A lot the Scheduler has just finished, with its verdict.
#[derive(Debug, Clone)]
pub struct Closed {
    pub lot_id: i64,
    pub rules: LotRules,
    pub closing: Closing,
}

/// Opens every scheduled lot whose start has come. Each opening is
/// conditional on the status and version read, so when several nodes run
/// this at once, each lot opens on exactly one of them.
pub async fn open_due(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<Opened>, DbErr> {
    let due = lots::Entity::find()
        .filter(lots::Column::Status.eq(LotStatus::Scheduled))
        .filter(lots::Column::StartsAt.lte(now))
        .order_by_asc(lots::Column::StartsAt)
        .limit(DUE_PER_CALL)
        .all(db)
        .await?;
    let mut opened = Vec::new();
    for row in due {
        let Some((rules, state)) = readable(&row) else {
            continue;
        };
        let Some(next) = open(&rules, &state, now) else {
            continue;
        };
        if transition(db, &row, &next, None, now).await? {
            opened.push(Opened {
                lot_id: row.id,
                rules,
                state: next,
            });
        }
    }
    Ok(opened)
}

/// Finishes every running lot whose (possibly extended) end has come, and
/// records its winner, final price and outcome; exactly once across nodes,
/// like `open_due`. A lot a bid changed in between is left for the next call,
/// which judges its new end.
pub async fn close_due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<Closed>, DbErr> {
    let due = lots::Entity::find()
        .filter(lots::Column::Status.eq(LotStatus::Running))
        .filter(lots::Column::EndsAt.lte(now))
        .order_by_asc(lots::Column::EndsAt)
        .limit(DUE_PER_CALL)
        .all(db)
        .await?;
    let mut closed = Vec::new();
    for row in due {
        let Some((rules, state)) = readable(&row) else {
            continue;
        };
        let Some(closing) = close(&rules, &state, now) else {
            continue;
        };
        if transition(db, &row, &closing.state, Some(closing.verdict), now).await? {
            closed.push(Closed {
                lot_id: row.id,
                rules,
                closing,
            });
        }
    }
    Ok(closed)
}

/// Moves a lot to `next`'s status if nobody changed it since `row` was read;
/// whether this call did it.
async fn transition(
    db: &impl ConnectionTrait,
    row: &lots::Model,
    next: &LotState,
    verdict: Option<Verdict>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut changes = lots::ActiveModel {
        status: Set(next.status),
        version: Set(to_i64(next.version)),
        updated_at: Set(now),
        ..Default::default()
    };
    if let Some(verdict) = verdict {
        let (winner, final_cents, outcome) = match verdict {
            Verdict::Sold {
                winner,
                final_cents,
            } => (Some(winner), Some(final_cents), "sold"),
            Verdict::ReserveNotMet { final_cents, .. } => {
                (None, Some(final_cents), "reserve_not_met")
            }
            Verdict::NoBids => (None, None, "no_bids"),
        };
        changes.winner_id = Set(winner);
        changes.final_cents = Set(final_cents);
        changes.outcome = Set(Some(outcome.to_owned()));
    }
    let written = lots::Entity::update_many()
        .set(changes)
        .filter(lots::Column::Id.eq(row.id))
        .filter(lots::Column::Status.eq(row.status))
        .filter(lots::Column::Version.eq(row.version))
        .exec(db)
        .await?
        .rows_affected;
    Ok(written == 1)
}

/// A due lot's rules and state; a corrupt row is logged and skipped, so it
/// does not hold up every other lot's transition.
fn readable(row: &lots::Model) -> Option<(LotRules, LotState)> {
    rules_and_state(row)
        .inspect_err(|err| tracing::error!(error = %err, "skipping a lot that cannot be read"))
        .ok()
}
