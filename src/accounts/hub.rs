//! The SessionHub: which sockets belong to which account on this node, so
//! that a logout or an account change reaches all of them at once. (In
//! cluster mode the same notices travel between nodes on the bus.)

use std::collections::HashMap;

use actix::prelude::*;

use super::Account;

/// What an account's sockets are told.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum AccountEvent {
    /// The account changed; sockets carry the new data from now on.
    Changed(Account),
    /// The account logged out: its sockets leave every topic.
    LoggedOut,
    /// A frame for the account alone, wherever it is (`outbid`).
    Frame(bytestring::ByteString),
}

#[derive(Default)]
pub struct SessionHub {
    sockets: HashMap<i64, HashMap<String, Recipient<AccountEvent>>>,
}

impl Actor for SessionHub {
    type Context = Context<Self>;
}

impl Supervised for SessionHub {}

/// A socket of `user_id` opened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub user_id: i64,
    pub conn: String,
    pub socket: Recipient<AccountEvent>,
}

/// A socket closed, or stopped belonging to the account.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub user_id: i64,
    pub conn: String,
}

/// Tells every socket of `user_id`.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Notify {
    pub user_id: i64,
    pub event: AccountEvent,
}

impl Handler<Attach> for SessionHub {
    type Result = ();

    fn handle(&mut self, msg: Attach, _: &mut Context<Self>) {
        self.sockets
            .entry(msg.user_id)
            .or_default()
            .insert(msg.conn, msg.socket);
    }
}

impl Handler<Detach> for SessionHub {
    type Result = ();

    fn handle(&mut self, msg: Detach, _: &mut Context<Self>) {
        if let Some(sockets) = self.sockets.get_mut(&msg.user_id) {
            sockets.remove(&msg.conn);
            if sockets.is_empty() {
                self.sockets.remove(&msg.user_id);
            }
        }
    }
}

impl Handler<Notify> for SessionHub {
    type Result = usize;

    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) -> usize {
        let Some(sockets) = self.sockets.get(&msg.user_id) else {
            return 0;
        };
        for socket in sockets.values() {
            socket.do_send(msg.event.clone());
        }
        sockets.len()
    }
}
