//! The Room after a panic (`supervision`): it keeps what only memory
//! holds (its members' sockets, the messages they saw that are not stored
//! yet), drops what was in flight, and reads where its topic stands again
//! before it numbers anything more.

use actix::prelude::*;

use super::Room;
use crate::rooms::presence;
use crate::rooms::store;

impl Supervised for Room {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Says not numbered yet lose their reply senders here, and the
        // batch being numbered lost its own with the future that held it:
        // their senders hear that the say failed, and may send it again.
        self.pending.clear();
        self.numbering = false;
        // What the writer was storing is stored again (`unstored` keeps
        // it; writes are by id, so twice is once).
        self.writing = 0;
        self.store_paused = false;
        // The database says whether these writes landed: `reload`.
        self.reserving = false;
        self.settling = false;
        // Its timer went with the old context: it would never finish.
        self.catching_up = false;
        tracing::warn!(topic = %self.key, members = self.members.len(), "room restarting");
    }
}

impl Room {
    /// Where the topic stands, after a restart: numbering carries on from
    /// the highest of what members saw and what the database holds, under
    /// the mark the database has, so no seq is skipped or given twice.
    pub(super) fn reload(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let (key, name) = (self.key.clone(), self.name.clone());
        async move {
            let stored = store::last_seq(&db, &key).await?;
            let reserved = store::seq_reserved(&db, &name).await?;
            Ok::<_, sea_orm::DbErr>((stored, reserved))
        }
        .into_actor(self)
        .map(|loaded, act, ctx| {
            match loaded {
                Ok((stored, reserved)) => {
                    // On a shared bus the seq is learned from the bus: a
                    // message that skips one makes the room catch up.
                    if !act.bus.shared() {
                        act.last_seq = act.last_seq.max(stored);
                    }
                    act.reserved = reserved.max(act.last_seq);
                }
                Err(err) => {
                    // The mark in memory is above every seq given out; the
                    // first number raises it in the database if need be.
                    tracing::error!(topic = %act.key, error = %err, "room could not reload its marks");
                    act.reserved = act.last_seq;
                }
            }
            // Events held for a catch-up that the restart cut short.
            let held: Vec<_> = act.held.drain(..).collect();
            for batch in held {
                act.receive(batch, ctx);
            }
            act.resync(ctx);
            presence::reopen(act, ctx);
            act.store(ctx);
            act.number(ctx);
            act.maybe_vacant(ctx);
        })
        .wait(ctx);
    }
}
