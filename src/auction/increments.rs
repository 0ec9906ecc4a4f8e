//! The tiered table of minimum bid increments: how much a bid must add to the
//! current price, by price band.

use serde::{Deserialize, Serialize};

/// One band of the table: from `from_cents` up to the next band's start, a bid
/// must add at least `step_cents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub from_cents: i64,
    pub step_cents: i64,
}

/// Why a table of increments was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncrementsError {
    #[error("an increment table needs at least one tier")]
    Empty,
    #[error("the first tier must start at 0 cents, not {0}")]
    FirstTierNotAtZero(i64),
    #[error("tier thresholds must strictly increase: {previous} is followed by {next}")]
    ThresholdsNotIncreasing { previous: i64, next: i64 },
    #[error("every step must be positive: the tier from {from_cents} has a step of {step_cents}")]
    StepNotPositive { from_cents: i64, step_cents: i64 },
    #[error("steps must not shrink as the price grows: the tier from {from_cents} steps {step_cents}, less than the {previous} below it")]
    StepShrinks {
        from_cents: i64,
        step_cents: i64,
        previous: i64,
    },
}

/// A valid table of minimum increments, sorted by threshold.
///
/// Steps never shrink as the price grows. That keeps `price + step_at(price)`
/// strictly increasing in `price`, so a higher price always asks for a higher
/// next bid and proxy resolution never lowers the price.
///
/// Stored as JSON (a list of tiers) in the lots table; deserializing validates,
/// so a table read back from the database is as valid as one built by `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Tier>", into = "Vec<Tier>")]
pub struct Increments(Vec<Tier>);

impl Increments {
    pub fn new(tiers: Vec<Tier>) -> Result<Increments, IncrementsError> {
        let first = tiers.first().ok_or(IncrementsError::Empty)?;
        if first.from_cents != 0 {
            return Err(IncrementsError::FirstTierNotAtZero(first.from_cents));
        }
        if let Some(bad) = tiers.iter().find(|t| t.step_cents <= 0) {
            return Err(IncrementsError::StepNotPositive {
                from_cents: bad.from_cents,
                step_cents: bad.step_cents,
            });
        }
        for pair in tiers.windows(2) {
            let (lower, upper) = (pair[0], pair[1]);
            if upper.from_cents <= lower.from_cents {
                return Err(IncrementsError::ThresholdsNotIncreasing {
                    previous: lower.from_cents,
                    next: upper.from_cents,
                });
            }
            if upper.step_cents < lower.step_cents {
                return Err(IncrementsError::StepShrinks {
                    from_cents: upper.from_cents,
                    step_cents: upper.step_cents,
                    previous: lower.step_cents,
                });
            }
        }
        Ok(Increments(tiers))
    }

    /// The minimum increment over `price_cents`.
    pub fn step_at(&self, price_cents: i64) -> i64 {
        // The first tier starts at 0 and prices are never negative, so some
        // tier always matches; the fallback only guards the invariant.
        self.0
            .iter()
            .rev()
            .find(|t| t.from_cents <= price_cents)
            .unwrap_or(&self.0[0])
            .step_cents
    }

    /// The lowest bid that beats `price_cents`: the price plus its increment.
    pub fn next_after(&self, price_cents: i64) -> i64 {
        price_cents.saturating_add(self.step_at(price_cents))
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.0
    }
}

impl Default for Increments {
    /// The site's default table, in euro cents, close to the usual auction
    /// house bands: 0.05 below 1.00 up to 25.00 from 1000.00.
    fn default() -> Increments {
        const DEFAULT: [(i64, i64); 8] = [
            (0, 5),
            (100, 25),
            (500, 50),
            (2_500, 100),
            (10_000, 250),
            (25_000, 500),
            (50_000, 1_000),
            (100_000, 2_500),
        ];
        Increments(
            DEFAULT
                .iter()
                .map(|&(from_cents, step_cents)| Tier {
                    from_cents,
                    step_cents,
                })
                .collect(),
        )
    }
}

impl TryFrom<Vec<Tier>> for Increments {
    type Error = IncrementsError;

    fn try_from(tiers: Vec<Tier>) -> Result<Increments, IncrementsError> {
        Increments::new(tiers)
    }
}

impl From<Increments> for Vec<Tier> {
    fn from(increments: Increments) -> Vec<Tier> {
        increments.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers(pairs: &[(i64, i64)]) -> Vec<Tier> {
        pairs
            .iter()
            .map(|&(from_cents, step_cents)| Tier {
                from_cents,
                step_cents,
            })
            .collect()
    }

    #[test]
    fn the_default_table_steps_by_price_band() {
        let table = Increments::default();

        let steps: Vec<i64> = [
            0,
            99,
            100,
            499,
            500,
            2_499,
            2_500,
            9_999,
            10_000,
            24_999,
            25_000,
            49_999,
            50_000,
            99_999,
            100_000,
            1_000_000_000,
        ]
        .iter()
        .map(|&price| table.step_at(price))
        .collect();

        assert_eq!(
            steps,
            [5, 5, 25, 25, 50, 50, 100, 100, 250, 250, 500, 500, 1_000, 1_000, 2_500, 2_500]
        );
    }

    #[test]
    fn the_default_table_is_a_valid_table() {
        let table = Increments::default();

        assert_eq!(Increments::new(table.tiers().to_vec()), Ok(table));
    }

    #[test]
    fn the_next_bid_after_a_price_adds_its_step() {
        let table = Increments::default();

        assert_eq!(table.next_after(1_200), 1_250);
        assert_eq!(table.next_after(99), 104);
    }

    #[test]
    fn an_empty_table_is_refused() {
        assert_eq!(Increments::new(vec![]), Err(IncrementsError::Empty));
    }

    #[test]
    fn a_table_must_start_at_zero() {
        assert_eq!(
            Increments::new(tiers(&[(100, 5)])),
            Err(IncrementsError::FirstTierNotAtZero(100))
        );
    }

    #[test]
    fn thresholds_must_strictly_increase() {
        assert_eq!(
            Increments::new(tiers(&[(0, 5), (100, 10), (100, 20)])),
            Err(IncrementsError::ThresholdsNotIncreasing {
                previous: 100,
                next: 100
            })
        );
    }

    #[test]
    fn steps_must_be_positive() {
        assert_eq!(
            Increments::new(tiers(&[(0, 0)])),
            Err(IncrementsError::StepNotPositive {
                from_cents: 0,
                step_cents: 0
            })
        );
        assert_eq!(
            Increments::new(tiers(&[(0, 5), (100, -1)])),
            Err(IncrementsError::StepNotPositive {
                from_cents: 100,
                step_cents: -1
            })
        );
    }

    #[test]
    fn steps_must_not_shrink() {
        assert_eq!(
            Increments::new(tiers(&[(0, 50), (1_000, 10)])),
            Err(IncrementsError::StepShrinks {
                from_cents: 1_000,
                step_cents: 10,
                previous: 50
            })
        );
    }

    #[test]
    fn a_table_round_trips_through_json() {
        let table = Increments::default();

        let json = serde_json::to_string(&table).expect("serializes");
        let back: Increments = serde_json::from_str(&json).expect("deserializes");

        assert!(json.starts_with(r#"[{"from_cents":0,"step_cents":5},"#));
        assert_eq!(back, table);
    }

    #[test]
    fn an_invalid_table_in_json_is_refused() {
        let result = serde_json::from_str::<Increments>(r#"[{"from_cents":10,"step_cents":5}]"#);

        let error = result.expect_err("a table not starting at 0 is invalid");
        assert!(error.to_string().contains("must start at 0"), "{error}");
    }
}
