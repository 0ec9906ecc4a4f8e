//! Outgoing mail (DESIGN §4): parsed addresses and header text, the outbox
//! table's operations, the transports, and the Mailer actor that sends.

pub mod address;
pub mod header;
pub mod mailer;
pub mod outbox;
pub mod transport;

pub use address::{AddressError, EmailAddress};
pub use header::{ExtraHeader, HeaderError, HeaderText};
pub use mailer::{start, start_with, Mailer};
pub use outbox::{enqueue, Enqueued, MailStatus, NewMail};
pub use transport::{SendError, StubTransport, Transport};
