//! Domain newtypes and rules parsed once at the edge.

pub mod money;
pub mod title;
pub mod topic;
pub mod trusted_proxies;
pub mod user_name;
