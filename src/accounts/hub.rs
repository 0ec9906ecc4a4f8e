//! The SessionHub: which sockets belong to which account on this node, so
//! that a logout or an account change reaches all of them at once. In
//! cluster mode it also tells the other nodes' hubs, over the bus, and
//! passes on what they tell it.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::Account;
use crate::bus::{AccountChange, AccountNotice, Bus};
use crate::supervision::{self, Name};

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

pub struct SessionHub {
    sockets: HashMap<i64, HashMap<String, Recipient<AccountEvent>>>,
    bus: Arc<dyn Bus>,
}

impl SessionHub {
    pub fn new(bus: Arc<dyn Bus>) -> SessionHub {
        SessionHub {
            sockets: HashMap::new(),
            bus,
        }
    }

    /// Tells this node's sockets of `user_id`; returns how many.
    fn tell(&self, user_id: i64, event: &AccountEvent) -> usize {
        let Some(sockets) = self.sockets.get(&user_id) else {
            return 0;
        };
        for socket in sockets.values() {
            socket.do_send(event.clone());
        }
        sockets.len()
    }
}

impl Actor for SessionHub {
    type Context = Context<Self>;
}

impl Supervised for SessionHub {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The sockets are only known here, and each handler changes the map
        // in one step: it is kept, less the sockets that closed meanwhile.
        for sockets in self.sockets.values_mut() {
            sockets.retain(|_, socket| socket.connected());
        }
        self.sockets.retain(|_, sockets| !sockets.is_empty());
        tracing::warn!(accounts = self.sockets.len(), "session hub restarting");
    }
}

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

/// Tells every socket of `user_id`, on every node. Resolves to how many
/// were on this one.
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

/// Tells every socket of `user_id`, on every node, whatever becomes of the
/// caller: a logout that does not reach a socket leaves it signed in. A
/// hub that panicked on it has restarted by the time the error comes back,
/// so it is asked once more.
pub fn notify(hub: &Addr<SessionHub>, user_id: i64, event: AccountEvent) {
    let hub = hub.clone();
    actix::spawn(async move {
        for _ in 0..2 {
            let notify = Notify {
                user_id,
                event: event.clone(),
            };
            if hub.send(notify).await.is_ok() {
                return;
            }
        }
        tracing::error!(user_id, ?event, "an account's sockets could not be told");
    });
}

impl Handler<Notify> for SessionHub {
    type Result = usize;

    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) -> usize {
        supervision::drill(Name::Hub);
        self.bus.notify_accounts(&AccountNotice {
            user_id: msg.user_id,
            event: change_of(&msg.event),
        });
        self.tell(msg.user_id, &msg.event)
    }
}

/// Another node's hub tells the sockets here.
impl Handler<AccountNotice> for SessionHub {
    type Result = ();

    fn handle(&mut self, notice: AccountNotice, _: &mut Context<Self>) {
        let event = match notice.event {
            AccountChange::Changed {
                name,
                display_name,
                is_admin,
            } => AccountEvent::Changed(Account {
                id: notice.user_id,
                name,
                display_name,
                is_admin,
            }),
            AccountChange::LoggedOut => AccountEvent::LoggedOut,
            AccountChange::Frame { frame } => AccountEvent::Frame(frame.into()),
        };
        self.tell(notice.user_id, &event);
    }
}

/// An account event as it travels between nodes.
fn change_of(event: &AccountEvent) -> AccountChange {
    match event {
        AccountEvent::Changed(account) => AccountChange::Changed {
            name: account.name.clone(),
            display_name: account.display_name.clone(),
            is_admin: account.is_admin,
        },
        AccountEvent::LoggedOut => AccountChange::LoggedOut,
        AccountEvent::Frame(frame) => AccountChange::Frame {
            frame: frame.to_string(),
        },
    }
}
