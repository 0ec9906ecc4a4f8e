//! The Room's storing half: numbering what was said and publishing it at
//! once, storing it in batches behind, and keeping the mark that no seq
//! is given out above (so that none seen before a crash is reused).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use entity::messages;
use tokio::sync::oneshot;

use super::{Room, RoomError, Said};
use crate::protocol::client;
use crate::rooms::bus::{EventKind, TopicEvent};
use crate::rooms::store::{self, NewMessage};
use crate::rooms::writer::WriteMessages;

/// Messages delivered but not yet stored that a room holds at most; past
/// it (the database has been failing for a while) new ones are refused.
pub(super) const UNSTORED_MAX: usize = 5_000;
/// Seqs a room may number ahead of the last one, without a database write.
/// A crash loses at most this many seqs; they are never given out again.
const SEQ_BLOCK: u64 = 1_000;
/// Attempts at storing a batch before its senders are told it failed.
const STORE_ATTEMPTS: u32 = 8;
/// The first pause between attempts; each next one doubles, up to
/// `STORE_RETRY_MAX`.
const STORE_RETRY: Duration = Duration::from_millis(100);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

pub(super) type SayReply = oneshot::Sender<Result<Said, RoomError>>;

/// A message members have, on its way to the database.
pub(super) struct Unstored {
    /// Shared with the writer, which may be asked for it more than once.
    row: Arc<messages::Model>,
    reply: SayReply,
}

impl Room {
    /// Numbers what was said since the last batch and publishes it at once;
    /// storing follows. Members see a message without waiting for the database,
    /// and its sender's reply waits for the commit (docs/protocol.md §1). Seqs
    /// are taken here, one batch at a time, so they stay gap-free.
    pub(super) fn number(&mut self, ctx: &mut Context<Self>) {
        if self.numbering || self.settling || self.pending.is_empty() {
            return;
        }
        self.numbering = true;
        let (batch, replies): (Vec<NewMessage>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().unzip();
        let bus = self.bus.clone();
        let ids = self.store.ids.clone();
        let topic = self.topic.clone();
        let after = self.last_seq;
        let count = batch.len();
        let (db, name) = (self.db.clone(), self.name.clone());
        // Past the mark, the mark goes up first (rarely: `reserve_ahead`
        // keeps it ahead).
        let raise =
            (after + count as u64 > self.reserved).then_some(after + count as u64 + SEQ_BLOCK);
        async move {
            if let Some(upto) = raise {
                store::raise_seq_reserved(&db, &name, upto)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let first = bus
                .sequence(&topic, after, count as u64)
                .await
                .map_err(|e| e.to_string())?;
            let ids = ids.take(count).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((first, ids))
        }
        .into_actor(self)
        .map(move |numbered, act, ctx| {
            act.numbering = false;
            match numbered {
                Ok((first, ids)) => {
                    if let Some(upto) = raise {
                        act.reserved = act.reserved.max(upto);
                    }
                    act.publish_said(first, ids, batch, replies, ctx);
                    act.reserve_ahead(ctx);
                }
                Err(err) => {
                    tracing::error!(topic = %act.key, error = %err, "could not number messages");
                    for reply in replies {
                        let _ = reply.send(Err(RoomError::Store));
                    }
                }
            }
            act.number(ctx);
            act.maybe_vacant(ctx);
        })
        .spawn(ctx);
    }

    pub(super) fn publish_said(
        &mut self,
        first: u64,
        ids: Vec<i64>,
        batch: Vec<NewMessage>,
        replies: Vec<SayReply>,
        ctx: &mut Context<Self>,
    ) {
        let mut events = Vec::with_capacity(batch.len());
        for (((message, reply), id), seq) in batch.into_iter().zip(replies).zip(ids).zip(first..) {
            let row = Arc::new(messages::Model {
                id,
                topic: self.key.clone(),
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
                user_name: message.user,
                text: message.text,
                at: message.at,
            });
            let view = store::view(&row);
            self.last_seq = self.last_seq.max(seq);
            events.push(TopicEvent {
                frame: client::message(&self.key, &view),
                kind: EventKind::Message(view),
            });
            self.unstored.push_back(Unstored { row, reply });
        }
        self.publish_all(events);
        self.store(ctx);
    }

    /// Hands every published message not yet stored to the writer, one
    /// batch at a time so that what is stored is always a prefix of what
    /// was published. A failed batch is tried again after a pause; its
    /// senders hear of the failure only once the attempts run out.
    pub(super) fn store(&mut self, ctx: &mut Context<Self>) {
        if self.writing > 0 || self.store_paused || self.unstored.is_empty() {
            return;
        }
        self.writing = self.unstored.len();
        let rows = self.unstored.iter().map(|u| u.row.clone()).collect();
        self.store
            .writer
            .send(WriteMessages { rows })
            .into_actor(self)
            .map(|written, act, ctx| {
                let batch = std::mem::take(&mut act.writing);
                match written.map_err(|e| e.to_string()).and_then(|w| w) {
                    Ok(()) => {
                        act.store_failures = 0;
                        for stored in act.unstored.drain(..batch) {
                            let _ = stored.reply.send(Ok(Said {
                                id: stored.row.id,
                                seq: stored.row.seq as u64,
                            }));
                        }
                        act.store(ctx);
                    }
                    Err(err) if act.store_failures + 1 < STORE_ATTEMPTS => {
                        let pause = STORE_RETRY
                            .saturating_mul(1 << act.store_failures.min(16))
                            .min(STORE_RETRY_MAX);
                        act.store_failures += 1;
                        tracing::warn!(topic = %act.key, error = %err, ?pause, "could not store messages; trying again");
                        act.store_paused = true;
                        ctx.run_later(pause, |act, ctx| {
                            act.store_paused = false;
                            act.store(ctx);
                        });
                    }
                    Err(err) => {
                        act.store_failures = 0;
                        let lost: Vec<Unstored> = act.unstored.drain(..batch).collect();
                        tracing::error!(
                            topic = %act.key,
                            error = %err,
                            first_seq = lost.first().map(|u| u.row.seq),
                            last_seq = lost.last().map(|u| u.row.seq),
                            "gave up storing messages members already have"
                        );
                        for unstored in lost {
                            let _ = unstored.reply.send(Err(RoomError::Store));
                        }
                        act.store(ctx);
                    }
                }
                act.maybe_vacant(ctx);
            })
            .spawn(ctx);
    }

    /// The seq up to which every message is in the database.
    pub(super) fn stored_seq(&self) -> u64 {
        self.unstored
            .front()
            .map_or(self.last_seq, |u| (u.row.seq as u64).saturating_sub(1))
    }

    /// Brings the mark down to `last_seq`, every message being stored.
    pub(super) fn settle(&mut self, ctx: &mut Context<Self>) {
        self.settling = true;
        self.reserved = self.last_seq;
        let db = self.db.clone();
        let name = self.name.clone();
        let last = self.last_seq;
        async move { store::settle_seq_reserved(&db, &name, last).await }
            .into_actor(self)
            .map(|settled, act, ctx| {
                act.settling = false;
                if let Err(err) = settled {
                    // The mark stays high: the next start leaves a gap.
                    tracing::warn!(topic = %act.key, error = %err, "could not settle the room's seq mark");
                }
                act.number(ctx);
                act.maybe_vacant(ctx);
            })
            .spawn(ctx);
    }

    /// Raises the mark half a block ahead of need, so that numbering never
    /// waits for it while the database keeps up. Not while the mark comes
    /// down: the two writes could land in either order.
    pub(super) fn reserve_ahead(&mut self, ctx: &mut Context<Self>) {
        if self.reserving || self.settling || self.last_seq + SEQ_BLOCK / 2 <= self.reserved {
            return;
        }
        self.reserving = true;
        let db = self.db.clone();
        let name = self.name.clone();
        let upto = self.last_seq + SEQ_BLOCK;
        async move { store::raise_seq_reserved(&db, &name, upto).await }
            .into_actor(self)
            .map(move |raised, act, ctx| {
                act.reserving = false;
                match raised {
                    Ok(()) => act.reserved = act.reserved.max(upto),
                    Err(err) => {
                        tracing::warn!(topic = %act.key, error = %err, "could not raise the room's seq mark")
                    }
                }
                act.maybe_vacant(ctx);
            })
            .spawn(ctx);
    }
}
