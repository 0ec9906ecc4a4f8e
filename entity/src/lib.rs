//! sea-orm entities: one module per table (see the `migration` crate for the
//! schema itself).

pub mod bids;
pub mod changes;
pub mod crawls;
pub mod games;
pub mod lots;
pub mod messages;
pub mod offers;
pub mod outbox;
pub mod price_points;
pub mod rooms;
pub mod sessions;
pub mod subscriptions;
pub mod tasks;
pub mod users;

pub use sea_orm;
