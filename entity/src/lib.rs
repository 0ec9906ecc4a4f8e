//! sea-orm entities: one module per table (see the `migration` crate for the
//! schema itself).

pub mod audit_log;
pub mod bids;
pub mod changes;
pub mod crawls;
pub mod flags;
pub mod games;
pub mod lots;
pub mod messages;
pub mod offers;
pub mod outbox;
pub mod price_points;
pub mod rooms;
pub mod sessions;
pub mod subscriptions;
pub mod task_attempts;
pub mod tasks;
pub mod users;

pub use sea_orm;
