//! PROTOCOL.md as serde types: what travels over the WebSockets.

pub mod client;
pub mod worker;
