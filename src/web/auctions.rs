//! Auctions on the web (docs/architecture.md §3, §7): `/auctions` lists
//! running, upcoming and ended lots; `/auctions/{id}` is a lot's live room,
//! rendered with its current state so it reads without JavaScript, and kept
//! live by `static/js/auction.js` over the `auction:<id>` topic; admins list,
//! edit and cancel lots through a form.

mod admin;
mod form;
mod pages;

pub use admin::{cancel, create, edit_form, new_form, update};
pub(crate) use pages::{amount, outcome_text, span};
pub use pages::{index, show};
