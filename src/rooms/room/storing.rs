//! The Room's storing half: numbering what was said and publishing it at
//! once, storing it in batches behind, and keeping the mark that no seq
//! is given out above (so that none seen before a crash is reused).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use entity::messages;
use tokio::sync::oneshot;

use super::{Room, RoomError, Said};
use crate::backoff::Backoff;
use crate::bus::{BusError, Draft};
use crate::protocol::client;
use crate::rooms::presence;
use crate::rooms::store::{self, NewMessage};
use crate::rooms::writer::WriteMessages;

/// Messages delivered but not yet stored that a room holds at most; past
/// it (the database has been failing for a while) new ones are refused.
pub(super) const UNSTORED_MAX: usize = 5_000;
/// Seqs a room may number ahead of the last one, without a database write.
/// A crash loses at most this many seqs; they are never given out again.
const SEQ_BLOCK: u64 = 1_000;
/// Attempts at numbering a batch: the mark may have to go up, or the bus's
/// counter be set, before it succeeds.
const NUMBER_ATTEMPTS: u32 = 4;
/// Attempts at storing a batch before its senders are told it failed.
const STORE_ATTEMPTS: u32 = 8;
/// The pauses between attempts: 100 ms, doubling up to 5 s.
const STORE_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

pub(super) type SayReply = oneshot::Sender<Result<Said, RoomError>>;

/// Why a batch was not numbered.
#[derive(Debug, thiserror::Error)]
enum NumberError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Bus(#[from] BusError),
}

fn batch_len(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

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
    /// are taken by the bus as it publishes, one batch at a time, so they stay
    /// gap-free and in one order on every node.
    pub(super) fn number(&mut self, ctx: &mut Context<Self>) {
        if self.numbering || self.settling || self.pending.is_empty() {
            return;
        }
        // Who came and went goes first: nobody hears someone speak before
        // hearing they came.
        presence::flush(self);
        self.numbering = true;
        let (batch, replies): (Vec<NewMessage>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().unzip();
        let bus = self.bus.clone();
        let ids = self.store.ids.clone();
        let topic = self.topic.clone();
        let after = self.last_seq;
        let count = batch.len() as u64;
        let (db, name, key) = (self.db.clone(), self.name.clone(), self.key.clone());
        // Past the mark, the mark goes up first (rarely: `reserve_ahead`
        // keeps it ahead).
        let raise = (after + count > self.reserved).then_some(after + count + SEQ_BLOCK);
        let mut ceiling = raise.unwrap_or(self.reserved);
        let texts: Vec<(String, String, String)> = batch
            .iter()
            .map(|m| (m.user.clone(), m.text.clone(), client::time(m.at)))
            .collect();
        async move {
            if let Some(upto) = raise {
                store::raise_seq_reserved(&db, &name, upto).await?;
            }
            let ids = ids.take(batch_len(count)).await?;
            let drafts: Vec<Draft> = ids
                .iter()
                .zip(texts)
                .map(|(&id, (user, text, at))| Draft { id, user, text, at })
                .collect();
            let mut attempts = 0;
            loop {
                attempts += 1;
                match bus.publish_messages(&topic, after, ceiling, &drafts).await {
                    Ok(first) => return Ok((first, ids, ceiling)),
                    // Another node numbered up to the mark: it goes up.
                    Err(BusError::PastMark(last)) if attempts < NUMBER_ATTEMPTS => {
                        ceiling = last + count + SEQ_BLOCK;
                        store::raise_seq_reserved(&db, &name, ceiling).await?;
                    }
                    // Redis has no counter for the topic: it starts above
                    // anything the database says may have been seen.
                    Err(BusError::Unnumbered) if attempts < NUMBER_ATTEMPTS => {
                        let stored = store::last_seq(&db, &key).await?;
                        let reserved = store::seq_reserved(&db, &name).await?;
                        bus.start_numbering(&topic, stored.max(reserved)).await?;
                    }
                    Err(err) => return Err(NumberError::Bus(err)),
                }
            }
        }
        .into_actor(self)
        .map(move |numbered, act, ctx| {
            act.numbering = false;
            match numbered {
                Ok((first, ids, ceiling)) => {
                    act.reserved = act.reserved.max(ceiling);
                    act.publish_said(first, ids, batch, replies, ctx);
                    act.reserve_ahead(ctx);
                }
                Err(err) => {
                    let refusal = match err {
                        NumberError::Bus(BusError::Down(_)) => RoomError::Cut,
                        _ => RoomError::Store,
                    };
                    tracing::error!(topic = %act.key, error = %err, "could not number messages");
                    for reply in replies {
                        let _ = reply.send(Err(refusal.clone()));
                    }
                }
            }
            act.number(ctx);
            act.maybe_vacant(ctx);
        })
        .spawn(ctx);
    }

    /// Keeps what was just published, to store it and to answer its
    /// senders. On one node the room numbers, so it knows its last seq now;
    /// on a shared bus it learns it as the messages come back, in order
    /// with everyone else's.
    pub(super) fn publish_said(
        &mut self,
        first: u64,
        ids: Vec<i64>,
        batch: Vec<NewMessage>,
        replies: Vec<SayReply>,
        ctx: &mut Context<Self>,
    ) {
        let shared = self.bus.shared();
        for (((message, reply), id), seq) in batch.into_iter().zip(replies).zip(ids).zip(first..) {
            let row = Arc::new(messages::Model {
                id,
                topic: self.key.clone(),
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
                user_name: message.user,
                text: message.text,
                at: message.at,
            });
            if !shared {
                self.last_seq = self.last_seq.max(seq);
            }
            self.unstored.push_back(Unstored { row, reply });
        }
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
                match written
                    .map_err(|e| e.to_string())
                    .and_then(|w| w.map_err(|e| e.to_string())) {
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
                        act.store_failures += 1;
                        let pause = STORE_RETRY.after(act.store_failures);
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
