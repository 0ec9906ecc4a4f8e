//! Auction rules as pure functions: increments, proxy bidding, the hidden
//! reserve, soft close, opening and closing. No I/O and no clock: the Room,
//! the Scheduler and the database code pass in the server's time, store what
//! these return with a compare-and-set on `version`, and broadcast it.

mod bid;
mod error;
mod increments;
mod lifecycle;
mod lot;
pub(crate) mod room;
pub(crate) mod schedule;
pub mod store;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod properties;

pub use bid::{place_bid, BidOutcome, BidRequest, BidRow, Standing};
pub use error::BidError;
pub use increments::{Increments, IncrementsError, Tier};
pub use lifecycle::{close, open, Closing, Verdict};
pub use lot::{
    Leader, LotRules, LotRulesError, LotSpec, LotState, LotStatus, LotView, UserId, MAX_CENTS,
};
