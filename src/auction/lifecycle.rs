//! Opening and closing a lot on schedule. The Scheduler calls these with the
//! server's clock and stores the result with a compare-and-set on `version`,
//! so exactly one node performs each transition.

use chrono::{DateTime, Utc};

use super::lot::{LotRules, LotState, LotStatus, UserId};

/// How a lot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The leader wins at the final price.
    Sold { winner: UserId, final_cents: i64 },
    /// Bids came, but the leader's maximum never reached the hidden reserve.
    ReserveNotMet { leader: UserId, final_cents: i64 },
    /// Nobody bid.
    NoBids,
}

/// A lot that has just finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    /// The finished lot, `version` one higher.
    pub state: LotState,
    pub verdict: Verdict,
}

/// Opens a scheduled lot once its start has come; `None` when there is
/// nothing to do. A lot whose end has also passed opens all the same, and
/// the next `close` finishes it, so every lot goes through both events.
pub fn open(rules: &LotRules, state: &LotState, now: DateTime<Utc>) -> Option<LotState> {
    if state.status != LotStatus::Scheduled || now < rules.starts_at() {
        return None;
    }
    Some(LotState {
        status: LotStatus::Running,
        version: state.version + 1,
        ..state.clone()
    })
}

/// Finishes a running lot once its (possibly extended) end has come; `None`
/// when there is nothing to do.
pub fn close(rules: &LotRules, state: &LotState, now: DateTime<Utc>) -> Option<Closing> {
    if state.status != LotStatus::Running || now < state.ends_at {
        return None;
    }
    let final_cents = state.current_cents;
    let verdict = match state.leader {
        None => Verdict::NoBids,
        Some(leader) if state.reserve_met(rules) => Verdict::Sold {
            winner: leader.user_id,
            final_cents,
        },
        Some(leader) => Verdict::ReserveNotMet {
            leader: leader.user_id,
            final_cents,
        },
    };
    Some(Closing {
        state: LotState {
            status: LotStatus::Finished,
            version: state.version + 1,
            ..state.clone()
        },
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auction::fixtures::{accept, at, bid, proxy, rules_from, running, spec};
    use crate::auction::lot::LotSpec;

    #[test]
    fn a_scheduled_lot_opens_at_its_start() {
        let rules = rules_from(spec());
        let scheduled = LotState::new(&rules);

        let early = open(&rules, &scheduled, at(-1));
        let opened = open(&rules, &scheduled, at(0)).expect("opens at the start");

        assert_eq!(early, None);
        assert_eq!(opened.status, LotStatus::Running);
        assert_eq!(opened.version, scheduled.version + 1);
    }

    #[test]
    fn a_lot_opens_only_once() {
        let rules = rules_from(spec());
        let opened = running(&rules);

        assert_eq!(open(&rules, &opened, at(10)), None);
    }

    #[test]
    fn a_running_lot_closes_at_its_end_and_not_before() {
        let rules = rules_from(spec());
        let state = running(&rules);

        let early = close(&rules, &state, at(299));
        let closing = close(&rules, &state, at(300)).expect("closes at the end");

        assert_eq!(early, None);
        assert_eq!(closing.state.status, LotStatus::Finished);
        assert_eq!(closing.state.version, state.version + 1);
        assert_eq!(closing.verdict, Verdict::NoBids);
    }

    #[test]
    fn a_scheduled_or_finished_lot_does_not_close() {
        let rules = rules_from(spec());
        let scheduled = LotState::new(&rules);
        let finished = close(&rules, &running(&rules), at(300))
            .expect("closes")
            .state;

        assert_eq!(close(&rules, &scheduled, at(999)), None);
        assert_eq!(close(&rules, &finished, at(999)), None);
    }

    #[test]
    fn a_cancelled_lot_takes_no_bids_and_neither_opens_nor_closes() {
        let rules = rules_from(spec());
        let cancelled = LotState {
            status: LotStatus::Cancelled,
            ..running(&rules)
        };

        let refused = crate::auction::place_bid(&rules, &cancelled, &bid(1, 1_000), at(10));

        assert_eq!(refused, Err(crate::auction::BidError::LotNotOpen));
        assert_eq!(open(&rules, &cancelled, at(10)), None);
        assert_eq!(close(&rules, &cancelled, at(999)), None);
    }

    #[test]
    fn the_leader_wins_at_the_final_price() {
        let rules = rules_from(spec());
        let state = running(&rules);
        let state = accept(&rules, &state, proxy(1, 1_000, 5_000), at(10)).state;
        let state = accept(&rules, &state, bid(2, 3_000), at(20)).state;

        let closing = close(&rules, &state, at(300)).expect("closes");

        assert_eq!(
            closing.verdict,
            Verdict::Sold {
                winner: 1,
                final_cents: 3_100
            }
        );
    }

    #[test]
    fn a_lot_whose_reserve_is_not_met_is_not_sold() {
        let rules = rules_from(LotSpec {
            reserve_cents: Some(5_000),
            ..spec()
        });
        let state = accept(&rules, &running(&rules), bid(1, 4_000), at(10)).state;

        let closing = close(&rules, &state, at(300)).expect("closes");

        assert_eq!(
            closing.verdict,
            Verdict::ReserveNotMet {
                leader: 1,
                final_cents: 4_000
            }
        );
    }

    #[test]
    fn an_extended_lot_closes_at_its_new_end() {
        let rules = rules_from(spec());
        let state = accept(&rules, &running(&rules), bid(1, 1_000), at(290)).state;

        let at_old_end = close(&rules, &state, at(300));
        let at_new_end = close(&rules, &state, at(350));

        assert_eq!(at_old_end, None);
        assert!(at_new_end.is_some());
    }
}
