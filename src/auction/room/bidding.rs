//! The AuctionRoom's bidding half: a bid checked against the room's copy of
//! its lot, placed in one transaction, and published after the commit.

use std::collections::HashMap;

use actix::prelude::*;
use bytestring::ByteString;
use sea_orm::DatabaseConnection;
use serde_json::{json, Value};

use super::{lot_value, AuctionRoom, Listed};
use crate::accounts::hub::{self, AccountEvent};
use crate::accounts::store::display_names;
use crate::auction::bid::Standing;
use crate::auction::store::{self, PlaceBidError};
use crate::auction::{BidError, BidRequest, LotRules, LotState};
use crate::bus::EventKind;
use crate::clock;
use crate::protocol::client::{self, BidView};
use crate::protocol::{ErrorCode, Refusal};
use crate::rooms::detached::Detached;
use crate::supervision::{self, Name};

/// An account bids (a proxy bid when `max_cents` is given).
#[derive(Message)]
#[rtype(result = "Result<Value, Refusal>")]
pub struct PlaceBid {
    pub conn: String,
    pub account: i64,
    pub amount_cents: i64,
    pub max_cents: Option<i64>,
}

/// What a committed bid publishes.
struct Published {
    reply: Value,
    event: ByteString,
    outbid: Option<(i64, ByteString)>,
    lot: Cached,
}

/// The room's copy of its lot, as of the last bid it placed or its last
/// join. Another node may have moved on since; prices only rise, so a bid
/// below this copy's minimum is too low in any case and is refused without
/// a transaction. Everything else asks the database.
#[derive(Debug, Clone)]
pub struct Cached {
    pub(super) listed: Listed,
    pub(super) rules: LotRules,
    pub(super) state: LotState,
}

async fn place(
    db: &DatabaseConnection,
    key: &str,
    bid: &PlaceBid,
    known: Cached,
    mut names: HashMap<i64, String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Published, HashMap<i64, String>), (Refusal, HashMap<i64, String>)> {
    let listed = known.listed;
    let lot_id = listed.id;
    let placed = store::place_bid_from(
        db,
        lot_id,
        Some((&known.rules, &known.state)),
        bid.account,
        bid.amount_cents,
        bid.max_cents,
        now,
    )
    .await;
    // A refused bid hands the names back too: the room keeps them.
    let placed = match placed {
        Ok(placed) => placed,
        Err(err) => {
            if matches!(err, PlaceBidError::Db(_) | PlaceBidError::Corrupt(_)) {
                tracing::error!(lot = lot_id, error = %err, "bid failed");
            }
            return Err((Refusal::new(err.code(), err.to_string()), names));
        }
    };
    // Names of the bidders involved, each read once per room.
    let unknown: Vec<i64> = placed
        .rows
        .iter()
        .map(|r| r.user_id)
        .chain(placed.state.leader.as_ref().map(|l| l.user_id))
        .filter(|id| !names.contains_key(id))
        .collect();
    if !unknown.is_empty() {
        match display_names(db, unknown).await {
            Ok(found) => names.extend(found),
            Err(err) => tracing::warn!(lot = lot_id, error = %err, "bidder names unknown"),
        }
    }
    let name = |id: i64| names.get(&id).cloned().unwrap_or_default();
    let seq = placed.state.version;
    let view = placed.view();
    let leader_name = view.leader.map(name);
    let lot = lot_value(&listed, &view, leader_name.as_deref());
    let rows: Vec<BidView> = placed
        .rows
        .iter()
        .map(|r| BidView {
            seq: r.seq,
            bidder: name(r.user_id),
            amount_cents: r.amount_cents,
            proxy: r.proxy,
            at: client::time(r.placed_at),
        })
        .collect();
    // A leader's silent raise wrote no rows: that goes out as a `lot` event.
    let event = client::bid(key, seq, &client::time(placed.state.ends_at), &rows, &lot);
    let outbid = placed.displaced.map(|user| {
        (
            user,
            client::outbid(key, seq, placed.state.current_cents, &lot),
        )
    });
    let standing = match placed.standing {
        Standing::Leading { .. } => "leading",
        Standing::Outbid { .. } => "outbid",
        Standing::RaisedMax => "raised_max",
    };
    let published = Published {
        reply: json!({"seq": seq, "lot": lot, "standing": standing}),
        event,
        outbid,
        lot: Cached {
            listed,
            rules: placed.rules,
            state: placed.state,
        },
    };
    Ok((published, names))
}

impl Handler<Detached<PlaceBid>> for AuctionRoom {
    type Result = ();

    fn handle(&mut self, msg: Detached<PlaceBid>, ctx: &mut Context<Self>) {
        msg.handle_by(self, ctx);
    }
}

impl Handler<PlaceBid> for AuctionRoom {
    // Atomic: the room takes its next message only once this bid is stored
    // and published, so its bids never race each other.
    type Result = AtomicResponse<Self, Result<Value, Refusal>>;

    fn handle(&mut self, msg: PlaceBid, _: &mut Context<Self>) -> Self::Result {
        supervision::drill(Name::Lot);
        let now = clock::now();
        let Some(cached) = &self.cached else {
            // Joined members always leave a copy; without one, nobody could
            // have joined.
            let refusal = Refusal::new(ErrorCode::NotJoined, format!("join {} first", self.key));
            return AtomicResponse::new(Box::pin(fut::ready(Err(refusal))));
        };
        let request = BidRequest {
            bidder: msg.account,
            amount_cents: msg.amount_cents,
            max_cents: msg.max_cents,
        };
        if let Err(refused) = crate::auction::place_bid(&cached.rules, &cached.state, &request, now)
        {
            if matches!(
                refused,
                BidError::BidTooLow { .. }
                    | BidError::InvalidAmount { .. }
                    | BidError::BidAboveMax { .. }
            ) {
                let refusal = Refusal::new(refused.code(), refused.to_string());
                return AtomicResponse::new(Box::pin(fut::ready(Err(refusal))));
            }
        }
        let db = self.db.clone();
        let key = self.key.clone();
        let known = cached.clone();
        let names = std::mem::take(&mut self.names);
        AtomicResponse::new(Box::pin(
            async move { place(&db, &key, &msg, known, names, now).await }
                .into_actor(self)
                .map(|placed, act, _| {
                    let (published, names) = match placed {
                        Ok(placed) => placed,
                        Err((refusal, names)) => {
                            act.names = names;
                            return Err(refusal);
                        }
                    };
                    act.names = names;
                    act.cached = Some(published.lot);
                    act.publish(EventKind::Lot, published.event);
                    if let Some((user_id, frame)) = published.outbid {
                        hub::notify(&act.hub, user_id, AccountEvent::Frame(frame));
                    }
                    Ok(published.reply)
                }),
        ))
    }
}
