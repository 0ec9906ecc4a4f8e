//! Outgoing mail (docs/architecture.md §4): parsed addresses and header text,
//! the outbox table's operations, the transports, and the Mailer actor that
//! sends.

pub mod address;
pub mod compose;
pub mod header;
pub mod mailer;
pub mod notifier;
pub mod outbox;
pub mod subscription;
pub mod transport;

pub use address::{AddressError, EmailAddress};
pub use header::{ExtraHeader, HeaderError, HeaderText};
pub use mailer::{start, start_with, Mailer};
pub use outbox::{enqueue, Enqueued, MailStatus, NewMail};
pub use transport::{SendError, StubTransport, Transport};
