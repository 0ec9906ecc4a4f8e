//! Outgoing mail (docs/architecture.md §4): parsed addresses and header text,
//! the outbox table's operations, the transports, and the Mailer actor that
//! sends.

pub(crate) mod address;
pub mod compose;
pub(crate) mod header;
pub(crate) mod mailer;
pub mod notifier;
pub(crate) mod outbox;
pub(crate) mod subscription;
pub(crate) mod transport;

pub use address::{AddressError, EmailAddress};
pub use header::{ExtraHeader, HeaderError, HeaderText};
pub use mailer::{start, start_with, Mailer};
pub use outbox::{enqueue, Enqueued, MailStatus, NewMail};
pub use transport::{SendError, StubTransport, Transport};
