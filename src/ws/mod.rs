//! WebSockets without the HTTP connection behind them.
//!
//! A handler decides whether a socket may open (origin, identity, token) and
//! answers with [`accept`]. The upgrade then leaves actix-http's HTTP/1
//! dispatcher: [`handover`] writes the 101, takes the TCP stream and gives
//! it to the handler's actor, and the dispatcher, with its two 8 KiB
//! buffers and its task, is gone. What stays per socket is the actor, an
//! [`Incoming`](read::Incoming) frame stream the actor polls itself, and one writer task
//! draining the [`Outbound`] queue; none of them holds a buffer while the
//! socket is idle. Tens of thousands of idle sockets depend on that.
//!
//! Both kinds of socket carry JSON objects tagged by `op`; reading them,
//! and refusing what cannot be read, is the protocol's
//! (`protocol::frame`).

mod admit;
mod leaving;
mod read;
mod shared;
mod silence;
mod upgrade;
mod write;

pub use actix_http::ws::CloseCode;
pub use admit::{Caps, Refusal, Sockets};
pub use leaving::Leaving;
pub use read::{Frame, ReadError};
pub use silence::Silence;
pub use upgrade::{accept, handover, Door, Limits};
pub use write::{Outbound, SendError};
