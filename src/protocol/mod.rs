//! The wire protocol (`docs/protocol.md`) as serde types: what travels over
//! the WebSockets.

pub mod client;
#[cfg(test)]
pub(crate) mod doc_examples;
pub mod worker;
