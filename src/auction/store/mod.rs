//! Auction persistence: lots and their bids. The database is the truth
//! (docs/architecture.md §3): a bid is one compare-and-set on the lot's
//! `version` plus its rows in `bids`, in one transaction, and every scheduled
//! transition is a conditional update, so nodes sharing one database never lose
//! or repeat a change.
//!
//! `lots` lists, edits, cancels and reads lots; `bids` places bids and reads
//! them back; `due` opens and closes lots for the Scheduler; `row` maps a
//! lot's row to the rules and state, for all three.

mod bids;
mod due;
mod lots;
mod row;

pub use bids::{bids_for, place_bid, place_bid_from, BidRecord, PlaceBidError, PlacedBid};
pub use due::{close_due, open_due, Closed, Opened};
pub use lots::{
    cancel_lot, create_lot, get_lot, list_lots, update_lot, Listing, LotLists, StoreError,
    StoredLot, MAX_TITLE_CHARS,
};
pub use row::{rules_and_state, CorruptLot};
