//! Why a bid was refused, as the `bid` reply tells the bidder
//! (docs/protocol.md §1).

use crate::domain::money::Money;
use crate::protocol::ErrorCode;

/// A bid the rules refuse. `code()` is the reply's `code`, the `Display` text
/// its `message`.
///
/// `not_logged_in` and `rate_limited` are refused before the rules see a bid
/// (by the session), so they are not here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BidError {
    /// Not running, not started yet, or at or past its end.
    #[error("the lot is not open for bids")]
    LotNotOpen,
    /// Zero, negative, or above the cap.
    #[error("a bid must be more than 0 and at most {}", .cap.with_code())]
    InvalidAmount { cap: Money },
    /// `max_cents` is below `amount_cents`.
    #[error("the bid of {} is above your maximum of {}", .amount.with_code(), .max.with_code())]
    BidAboveMax { amount: Money, max: Money },
    /// The bid (or its maximum) is below the minimum next bid.
    #[error("the minimum next bid is {}", .min_next.with_code())]
    BidTooLow { min_next: Money },
    /// The leader bid again without raising their maximum.
    #[error("you are already the highest bidder, up to your maximum of {}; raise it to bid more", .your_max.with_code())]
    OwnBidIsHighest { your_max: Money },
}

impl BidError {
    /// The stable error code of docs/protocol.md §1.
    pub fn code(&self) -> ErrorCode {
        match self {
            BidError::LotNotOpen => ErrorCode::LotNotOpen,
            BidError::InvalidAmount { .. } => ErrorCode::InvalidAmount,
            BidError::BidAboveMax { .. } => ErrorCode::BidAboveMax,
            BidError::BidTooLow { .. } => ErrorCode::BidTooLow,
            BidError::OwnBidIsHighest { .. } => ErrorCode::OwnBidIsHighest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(cents: i64) -> Money {
        Money::new(cents, "EUR")
    }

    #[test]
    fn each_error_has_its_protocol_code() {
        let codes: Vec<ErrorCode> = [
            BidError::LotNotOpen,
            BidError::InvalidAmount { cap: eur(1) },
            BidError::BidAboveMax {
                amount: eur(2),
                max: eur(1),
            },
            BidError::BidTooLow { min_next: eur(1) },
            BidError::OwnBidIsHighest { your_max: eur(1) },
        ]
        .iter()
        .map(BidError::code)
        .collect();

        assert_eq!(
            codes,
            [
                ErrorCode::LotNotOpen,
                ErrorCode::InvalidAmount,
                ErrorCode::BidAboveMax,
                ErrorCode::BidTooLow,
                ErrorCode::OwnBidIsHighest
            ]
        );
    }

    #[test]
    fn a_too_low_bid_is_told_the_minimum_as_the_protocol_writes_it() {
        let error = BidError::BidTooLow {
            min_next: eur(1_300),
        };

        assert_eq!(error.to_string(), "the minimum next bid is 13.00 EUR");
    }

    #[test]
    fn messages_name_the_amounts_that_matter() {
        let above = BidError::BidAboveMax {
            amount: eur(2_005),
            max: eur(2_000),
        };
        let own = BidError::OwnBidIsHighest {
            your_max: eur(5_000),
        };
        let invalid = BidError::InvalidAmount {
            cap: eur(1_000_000_000),
        };

        assert_eq!(
            above.to_string(),
            "the bid of 20.05 EUR is above your maximum of 20.00 EUR"
        );
        assert_eq!(
            own.to_string(),
            "you are already the highest bidder, up to your maximum of 50.00 EUR; raise it to bid more"
        );
        assert_eq!(
            invalid.to_string(),
            "a bid must be more than 0 and at most 10000000.00 EUR"
        );
    }
}
