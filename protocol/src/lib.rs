//! The wire protocol (`docs/protocol.md`) as serde types: what travels over
//! the WebSockets, how a frame is read, and the error codes of every
//! refusal. It is a crate of its own so that what speaks the protocol (the
//! server, the worker, the terminal client, the fuzz targets) shares one
//! definition without linking each other.

pub mod client;
/// The docs' example frames, for the tests (here and in the server) that
/// hold the code to them.
#[cfg(any(test, feature = "doc-examples"))]
pub mod doc_examples;
pub mod error;
pub mod frame;
pub mod worker;

pub use error::{ErrorCode, Refusal};
