//! The wire protocol (`docs/protocol.md`) as serde types: what travels over
//! the WebSockets, and the error codes of every refusal.

pub mod client;
#[cfg(test)]
pub(crate) mod doc_examples;
pub mod error;
pub mod worker;

pub use error::{ErrorCode, Refusal};
