//! The AuctionRoom actor: the live room of one lot (`auction:<id>`). It keeps
//! the members on this node, places bids one at a time (so that bids from
//! this node rarely race each other's compare-and-set), and publishes every
//! change after its commit: `bid`, `lot`, `started` and `finished`, each with
//! the full lot state and `seq` = the lot's version. `outbid` goes to every
//! socket of the previous leader.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde_json::{json, Value};

use super::lifecycle::Verdict;
use super::store::{self, BidRecord, Closed, Opened, StoredLot};
use super::LotView;
use crate::accounts::hub::SessionHub;
use crate::accounts::store::display_names;
use crate::bus::{Bus, Delivery, EventKind, TopicEvent, TopicEvents};
use crate::clock;
use crate::domain::topic::Topic;
use crate::domain::user_name::UserName;
use crate::protocol::client::{self, BidView, MemberView};
use crate::protocol::{ErrorCode, Refusal};
use crate::rooms::members::{CountMembers, Leave, Member, Members, TryClose};
use crate::rooms::presence::{self, Announces, Presence};
use crate::rooms::registry::{RoomRegistry, Vacant};
use crate::rooms::room::Rename;
use crate::ws::Outbound;

mod bidding;
mod restart;

pub use bidding::{Cached, PlaceBid};

/// Bids a join reply lists, newest first.
const HISTORY: u64 = 50;

/// The topic of a lot (ids are positive).
pub fn lot_topic(lot_id: i64) -> Topic {
    Topic::Auction(u64::try_from(lot_id).unwrap_or(0))
}

pub struct AuctionRoom {
    lot_id: i64,
    topic: Topic,
    key: String,
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    hub: Addr<SessionHub>,
    registry: Addr<RoomRegistry>,
    members: Members,
    /// Comings and goings not told yet.
    presence: Presence,
    cached: Option<Cached>,
    /// Display names of bidders seen, by account id.
    names: HashMap<i64, String>,
    /// Joins still loading the lot: the room is not empty while one may
    /// yet add a member, so it does not close under them.
    joining: usize,
    /// Subscribed to its topic: a restart does not subscribe again.
    subscribed: bool,
}

impl AuctionRoom {
    pub fn new(
        lot_id: i64,
        db: DatabaseConnection,
        bus: Arc<dyn Bus>,
        hub: Addr<SessionHub>,
        registry: Addr<RoomRegistry>,
    ) -> AuctionRoom {
        let topic = lot_topic(lot_id);
        AuctionRoom {
            lot_id,
            key: topic.to_string(),
            topic,
            db,
            bus,
            hub,
            registry,
            members: Members::default(),
            presence: Presence::default(),
            cached: None,
            names: HashMap::new(),
            joining: 0,
            subscribed: false,
        }
    }

    /// Who came and went goes first, as in chat rooms.
    fn publish(&mut self, kind: EventKind, frame: ByteString) {
        presence::flush(self);
        self.bus.publish(TopicEvents {
            topic: self.topic.clone(),
            events: vec![TopicEvent { kind, frame }],
        });
    }

    fn remove(&mut self, conn: &str, ctx: &mut Context<Self>) {
        let Some(member) = self.members.remove(conn) else {
            return;
        };
        self.presence.left(conn, &member.user);
        presence::changed(self, ctx);
        self.maybe_vacant(ctx);
    }

    /// Asks the registry to close the room once nobody is in it or on the
    /// way in: after the last member left, and after a join that failed (a
    /// lot that does not exist), so that no room outlives its use.
    fn maybe_vacant(&mut self, ctx: &mut Context<Self>) {
        if !self.vacant() {
            return;
        }
        // Watchers on other nodes still need the last leaves.
        presence::flush(self);
        self.registry.do_send(Vacant {
            key: self.lot_id,
            room: ctx.address(),
        });
    }

    fn vacant(&self) -> bool {
        self.members.is_empty() && self.joining == 0
    }
}

impl Announces for AuctionRoom {
    fn presence(&mut self) -> &mut Presence {
        &mut self.presence
    }

    fn announce(&mut self, joins: Vec<MemberView>, leaves: Vec<MemberView>) {
        self.bus
            .publish(presence::event(&self.topic, joins, leaves));
    }
}

impl Actor for AuctionRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Started again after a panic: subscribed already.
        if self.subscribed {
            return self.reload(ctx);
        }
        self.subscribed = true;
        // Lot events carry the whole lot: one missed while subscribing is
        // made good by the next, or by the join reply's state.
        drop(self.bus.subscribe(&self.topic, ctx.address().recipient()));
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.bus
            .unsubscribe(&self.topic, &ctx.address().recipient());
    }
}

/// What of a lot's row its events show besides the rules' state.
#[derive(Debug, Clone)]
struct Listed {
    id: i64,
    title: String,
    starts_at: chrono::DateTime<chrono::Utc>,
    outcome: Option<String>,
}

impl From<&StoredLot> for Listed {
    fn from(lot: &StoredLot) -> Listed {
        Listed {
            id: lot.row.id,
            title: lot.row.title.clone(),
            starts_at: lot.row.starts_at,
            outcome: lot.row.outcome.clone(),
        }
    }
}

/// A lot as events and the join reply carry it: its public state, plus what
/// a page shows (title, the leader's name) and how it ended.
fn lot_value(listed: &Listed, view: &LotView, leader_name: Option<&str>) -> Value {
    let mut value = serde_json::to_value(view).unwrap_or_default();
    value["id"] = json!(listed.id);
    value["title"] = json!(listed.title);
    value["starts_at"] = json!(client::time(listed.starts_at));
    value["ends_at"] = json!(client::time(view.ends_at));
    value["leader_name"] = json!(leader_name);
    value["outcome"] = json!(listed.outcome);
    value
}

pub async fn lot_json(db: &impl ConnectionTrait, lot: &StoredLot) -> Result<Value, DbErr> {
    let view = lot.view();
    let leader_name = match view.leader {
        Some(id) => display_name(db, id).await?,
        None => None,
    };
    Ok(lot_value(&Listed::from(lot), &view, leader_name.as_deref()))
}

/// One account's display name.
async fn display_name(db: &impl ConnectionTrait, id: i64) -> Result<Option<String>, DbErr> {
    Ok(display_names(db, [id]).await?.remove(&id))
}

impl From<&BidRecord> for BidView {
    fn from(r: &BidRecord) -> BidView {
        BidView {
            seq: r.seq,
            bidder: r.bidder_name.clone(),
            amount_cents: r.amount_cents,
            proxy: r.proxy,
            at: client::time(r.placed_at),
        }
    }
}

/// A connection joins the lot's room.
#[derive(Clone, Message)]
#[rtype(result = "Result<Value, Refusal>")]
pub struct JoinLot {
    pub conn: String,
    pub user: UserName,
    pub account: Option<i64>,
    pub out: Outbound,
}

impl Handler<JoinLot> for AuctionRoom {
    type Result = ResponseActFuture<Self, Result<Value, Refusal>>;

    fn handle(&mut self, msg: JoinLot, _: &mut Context<Self>) -> Self::Result {
        self.joining += 1;
        let db = self.db.clone();
        let lot_id = self.lot_id;
        let now = clock::now();
        let elsewhere = self.bus.members_elsewhere(&self.topic);
        Box::pin(
            async move {
                // With the bus away, the join reply lists this node's own.
                let elsewhere = elsewhere.await.unwrap_or_default();
                let lot = store::get_lot(&db, lot_id)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(lot) = lot else {
                    return Ok(None);
                };
                let value = lot_json(&db, &lot).await.map_err(|e| e.to_string())?;
                let bids = store::bids_for(&db, lot_id, HISTORY)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(Some((lot, value, bids, elsewhere)))
            }
            .into_actor(self)
            .map(move |loaded, act, ctx| {
                act.joining -= 1;
                let found = match loaded {
                    Ok(Some(found)) => Ok(found),
                    Ok(None) => Err(Refusal::new(
                        ErrorCode::NoSuchTopic,
                        format!("there is no lot behind auction:{lot_id}"),
                    )),
                    Err(err) => {
                        tracing::error!(lot = lot_id, error = %err, "could not load a lot");
                        Err(Refusal::new(
                            ErrorCode::Internal,
                            "the lot could not be loaded; try again",
                        ))
                    }
                };
                let (stored, lot, bids, elsewhere) = match found {
                    Ok(found) => found,
                    Err(refusal) => {
                        // A failed join leaves nothing behind: a room nobody
                        // else is in or joining closes at once.
                        act.maybe_vacant(ctx);
                        return Err(refusal);
                    }
                };
                let seq = stored.state.version;
                // The freshest copy wins: a join may read an older state
                // than the last bid this room placed.
                let newer = act
                    .cached
                    .as_ref()
                    .is_none_or(|c| c.state.version <= stored.state.version);
                if newer {
                    act.cached = Some(Cached {
                        listed: Listed::from(&stored),
                        rules: stored.rules,
                        state: stored.state,
                    });
                }
                let user = msg.user.clone();
                let fresh = act
                    .members
                    .insert(
                        msg.conn.clone(),
                        Member {
                            user: msg.user,
                            out: msg.out,
                        },
                    )
                    .is_none();
                if fresh {
                    act.presence.joined(&msg.conn, &user);
                    presence::changed(act, ctx);
                }
                let bids: Vec<BidView> = bids.iter().map(BidView::from).collect();
                let mut members = act.members.views();
                members.extend(elsewhere);
                members.sort_by(|a, b| a.user.cmp(&b.user).then_with(|| a.conn.cmp(&b.conn)));
                Ok(json!({
                    "conn": msg.conn,
                    "members": members,
                    "lot": lot,
                    "bids": bids,
                    "server_time": client::time(now),
                    "seq": seq,
                    "you": msg.account,
                }))
            }),
        )
    }
}

impl Handler<Leave> for AuctionRoom {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        self.remove(&msg.conn, ctx);
    }
}

impl Handler<Rename> for AuctionRoom {
    type Result = ();

    fn handle(&mut self, msg: Rename, ctx: &mut Context<Self>) {
        if let Some(old) = self.members.rename(&msg.conn, msg.user.clone()) {
            self.presence.renamed(&msg.conn, &old, &msg.user);
            presence::changed(self, ctx);
        }
    }
}

impl Handler<Delivery> for AuctionRoom {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        let batch = match delivery {
            Delivery::Events(batch) => batch,
            Delivery::Resync => return self.resync(ctx),
        };
        for conn in self.members.deliver(&batch.events) {
            tracing::warn!(topic = %self.key, conn, "slow consumer closed");
            self.remove(&conn, ctx);
        }
    }
}

impl AuctionRoom {
    /// The bus was away and is back: the others hear again who is here,
    /// and the members here get the lot as it stands, since events from
    /// other nodes may have been missed. Lot events carry the whole lot, so
    /// one is enough.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        self.bus.sync_members(&self.topic, self.members.views());
        let db = self.db.clone();
        let lot_id = self.lot_id;
        async move { lot_frame(&db, lot_id).await }
            .into_actor(self)
            .map(|frame, act, ctx| match frame {
                Ok(Some(frame)) => {
                    let events = [TopicEvent {
                        kind: EventKind::Lot,
                        frame,
                    }];
                    for conn in act.members.deliver(&events) {
                        act.remove(&conn, ctx);
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(lot = act.lot_id, error = %err, "could not reload the lot")
                }
            })
            .spawn(ctx);
    }
}

impl Handler<TryClose> for AuctionRoom {
    type Result = bool;

    fn handle(&mut self, _: TryClose, ctx: &mut Context<Self>) -> bool {
        let vacant = self.vacant();
        if vacant {
            ctx.stop();
        }
        vacant
    }
}

impl Handler<CountMembers> for AuctionRoom {
    type Result = usize;

    fn handle(&mut self, _: CountMembers, _: &mut Context<Self>) -> usize {
        self.members.len()
    }
}

/// A `lot` event with the lot's current state, if it exists.
pub async fn lot_frame(
    db: &impl ConnectionTrait,
    lot_id: i64,
) -> Result<Option<ByteString>, DbErr> {
    let lot = store::get_lot(db, lot_id)
        .await
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let Some(lot) = lot else {
        return Ok(None);
    };
    let value = lot_json(db, &lot).await?;
    let topic = lot_topic(lot_id).to_string();
    Ok(Some(client::lot(&topic, lot.state.version, &value)))
}

/// `started` for a lot the Scheduler opened.
pub async fn started_frame(
    db: &impl ConnectionTrait,
    opened: &Opened,
) -> Result<ByteString, DbErr> {
    let lot = store::get_lot(db, opened.lot_id)
        .await
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let Some(lot) = lot else {
        return Err(DbErr::RecordNotFound(format!("lot {}", opened.lot_id)));
    };
    let value = lot_json(db, &lot).await?;
    let topic = lot_topic(opened.lot_id).to_string();
    let ends_at = client::time(lot.state.ends_at);
    Ok(client::started(&topic, lot.state.version, &ends_at, &value))
}

/// `finished` for a lot the Scheduler closed: the winner, or why none.
pub async fn finished_frame(
    db: &impl ConnectionTrait,
    closed: &Closed,
) -> Result<ByteString, DbErr> {
    let lot = store::get_lot(db, closed.lot_id)
        .await
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let Some(lot) = lot else {
        return Err(DbErr::RecordNotFound(format!("lot {}", closed.lot_id)));
    };
    let value = lot_json(db, &lot).await?;
    let (winner, final_cents, outcome) = match &closed.closing.verdict {
        Verdict::Sold {
            winner,
            final_cents,
        } => (display_name(db, *winner).await?, Some(*final_cents), "sold"),
        Verdict::ReserveNotMet { final_cents, .. } => (None, Some(*final_cents), "reserve_not_met"),
        Verdict::NoBids => (None, None, "no_bids"),
    };
    let topic = lot_topic(closed.lot_id).to_string();
    Ok(client::finished(
        &topic,
        lot.state.version,
        outcome,
        winner.as_deref(),
        final_cents,
        &value,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auction::fixtures::{at, rules_from, running, spec};
    use crate::protocol::doc_examples;

    /// Every lot object in the server frames of docs/protocol.md §1 (events
    /// and replies) has the fields `lot_value` writes, and no other.
    #[test]
    fn the_lot_in_the_protocol_examples_has_the_fields_the_server_writes() {
        let rules = rules_from(spec());
        let listed = Listed {
            id: 42,
            title: "Hollow Knight, boxed".into(),
            starts_at: at(0),
            outcome: None,
        };
        let written = lot_value(&listed, &running(&rules).view(&rules), None);
        let fields = |lot: &Value| -> Vec<String> {
            lot.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let doc = doc_examples::protocol();
        let frames = doc_examples::block_after(
            doc_examples::section(&doc, 1),
            "### Events (server to client)",
        );

        let lots: Vec<Value> = frames
            .iter()
            .map(|line| doc_examples::json(line))
            .flat_map(|frame| [frame["lot"].clone(), frame["body"]["lot"].clone()])
            .filter(|lot| !lot.is_null())
            .collect();

        assert!(lots.len() >= 7, "only {} lots shown", lots.len());
        for lot in &lots {
            assert_eq!(fields(lot), fields(&written), "{lot}");
        }
    }
}
