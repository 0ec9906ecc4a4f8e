//! Domain newtypes and rules parsed once at the edge.

pub mod money;
// Titles are read at the source, so their rules live with the worker.
pub use bazaar_worker::title;
pub mod topic;
pub(crate) mod trusted_proxies;
pub mod user_name;
