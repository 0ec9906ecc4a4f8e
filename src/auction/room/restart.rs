//! The AuctionRoom after a panic (`supervision`): members keep their
//! sockets, and the lot is read again, since a bid cut off between its
//! commit and its event left every watcher one bid behind.

use actix::prelude::*;

use super::bidding::Cached;
use super::{lot_frame, AuctionRoom, Listed};
use crate::auction::store;
use crate::bus::EventKind;
use crate::rooms::presence;

impl Supervised for AuctionRoom {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Joins in flight went with the futures that held them; their
        // sessions heard that the join failed.
        self.joining = 0;
        tracing::warn!(
            lot = self.lot_id,
            members = self.members.len(),
            "lot room restarting"
        );
    }
}

impl AuctionRoom {
    /// Sends every watcher the lot as stored, and takes it as the room's
    /// copy.
    pub(super) fn reload(&mut self, ctx: &mut Context<Self>) {
        presence::reopen(self, ctx);
        let db = self.db.clone();
        let lot_id = self.lot_id;
        async move {
            let lot = store::get_lot(&db, lot_id).await.map_err(|e| e.to_string());
            let frame = lot_frame(&db, lot_id).await.map_err(|e| e.to_string());
            (lot, frame)
        }
        .into_actor(self)
        .map(|(lot, frame), act, ctx| {
            match (lot, frame) {
                (Ok(Some(lot)), Ok(Some(frame))) => {
                    act.cached = Some(Cached {
                        listed: Listed::from(&lot),
                        rules: lot.rules,
                        state: lot.state,
                    });
                    act.publish(EventKind::Lot, frame);
                }
                (Ok(_), Ok(_)) => {}
                (Err(err), _) | (_, Err(err)) => {
                    // The copy it has stays; the database judges each bid.
                    tracing::error!(lot = act.lot_id, error = %err, "lot room could not reload its lot");
                }
            }
            act.maybe_vacant(ctx);
        })
        .wait(ctx);
    }
}
