//! Requests that are handled even if whoever sent them stops waiting.
//!
//! actix skips a request whose sender dropped its reply future before the
//! receiver got to it. A session that sends `say` and then reads its
//! client's close stops at once and drops that future, and the message
//! would vanish unstored, though the client sent it before closing (a
//! script piping `hello` and `/quit` into `bazaar chat` does exactly
//! that). Sent detached, the message is handled like any other and only
//! its answer goes nowhere.

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use tokio::sync::oneshot;

/// `M`, sent so that the receiver handles it whatever becomes of its sender.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detached<M: Message> {
    msg: M,
    reply: OneshotSender<M::Result>,
}

/// Sends `msg` to `addr` detached; the receiver resolves with its answer,
/// or with an error when the actor is gone.
pub fn send<A, M>(addr: &Addr<A>, msg: M) -> oneshot::Receiver<M::Result>
where
    A: Handler<Detached<M>>,
    A::Context: actix::dev::ToEnvelope<A, Detached<M>>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    let (reply, answer) = oneshot::channel();
    addr.do_send(Detached { msg, reply });
    answer
}

impl<M: Message> Detached<M> {
    /// Handles the message as `actor`'s own handler would, and answers.
    pub fn handle_by<A>(self, actor: &mut A, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>> + Handler<M>,
        M: 'static,
    {
        let response = <A as Handler<M>>::handle(actor, self.msg, ctx);
        response.handle(ctx, Some(self.reply));
    }
}
