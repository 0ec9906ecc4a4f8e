//! The batch-and-commit writer, one actor shape behind the Merger (workers'
//! results) and the MessageWriter (rooms' messages). Whatever arrives while
//! a write is in progress, or while the writer waits for its turn to write,
//! goes into the next transaction together, so throughput grows with load
//! instead of queueing on commits. One bad item must not sink the others:
//! when a batch fails, its items are written again one by one.

use std::future::Future;

use actix::prelude::*;
use sea_orm::DbErr;
use tokio::sync::oneshot;

use crate::supervision::{self, Name};

/// What one batch writer writes, and how.
pub trait Batch: Clone + Unpin + 'static {
    /// What a sender hands over: the message the writer handles.
    type Item: Message<Result = Result<Self::Done, WriteFailed>> + Send + Unpin + 'static;
    /// What a sender hears once its item is committed.
    type Done: Send + Unpin + 'static;
    /// What `turn` yields: the right to write now.
    type Turn: 'static;
    /// Names the writer in fault drills and in the log.
    const NAME: Name;

    /// Waits until this writer may write; the batch is what has arrived by
    /// then, not when the wait began.
    fn turn(&self) -> impl Future<Output = Self::Turn>;

    /// Writes `items` in one transaction, with one answer per item, in
    /// their order; an error sinks the whole transaction.
    fn write(
        &self,
        turn: Self::Turn,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Done>, DbErr>>;
}

/// The database refused an item, or the writer restarted before it was
/// written. Nothing of it was committed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct WriteFailed(String);

type Reply<B> = oneshot::Sender<Result<<B as Batch>::Done, WriteFailed>>;

/// The actor: a queue of items and their senders, written in batches.
pub struct Batcher<B: Batch> {
    batch: B,
    pending: Vec<(B::Item, Reply<B>)>,
    writing: bool,
}

impl<B: Batch> Batcher<B> {
    pub fn new(batch: B) -> Batcher<B> {
        Batcher {
            batch,
            pending: Vec::new(),
            writing: false,
        }
    }

    /// Writes everything pending once the turn comes, then looks again.
    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.pending.is_empty() {
            return;
        }
        self.writing = true;
        let batch = self.batch.clone();
        async move { batch.turn().await }
            .into_actor(self)
            .then(|turn, act, _| {
                let pending = std::mem::take(&mut act.pending);
                write_and_reply(act.batch.clone(), turn, pending).into_actor(act)
            })
            .map(|(), act, ctx| {
                act.writing = false;
                act.write(ctx);
            })
            .spawn(ctx);
    }
}

/// Writes `pending` in `turn` and answers each sender.
async fn write_and_reply<B: Batch>(batch: B, turn: B::Turn, pending: Vec<(B::Item, Reply<B>)>) {
    let (items, replies): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
    let answers: Vec<Result<B::Done, WriteFailed>> = match batch.write(turn, &items).await {
        Ok(done) => done.into_iter().map(Ok).collect(),
        Err(err) => {
            tracing::warn!(writer = B::NAME.as_str(), error = %err, size = items.len(), "batch write failed; writing one by one");
            let mut answers = Vec::with_capacity(items.len());
            for item in &items {
                let turn = batch.turn().await;
                let one = batch.write(turn, std::slice::from_ref(item)).await;
                answers.push(match one {
                    Ok(mut done) => done
                        .pop()
                        .ok_or_else(|| WriteFailed("nothing was written".to_owned())),
                    Err(err) => Err(WriteFailed(err.to_string())),
                });
            }
            answers
        }
    };
    for (reply, answer) in replies.into_iter().zip(answers) {
        // The sender may have gone; what it sent is committed all the same.
        let _ = reply.send(answer);
    }
}

impl<B: Batch> Actor for Batcher<B> {
    type Context = Context<Self>;
}

impl<B: Batch> Supervised for Batcher<B> {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Everything durable is in the database. Senders whose items were
        // pending hear that the writer restarted, and write them again (a
        // room) or let their leases expire back to the queue (a worker).
        self.pending.clear();
        self.writing = false;
        tracing::warn!(writer = B::NAME.as_str(), "batch writer restarted");
    }
}

impl<B: Batch> Handler<B::Item> for Batcher<B> {
    type Result = ResponseFuture<Result<B::Done, WriteFailed>>;

    fn handle(&mut self, item: B::Item, ctx: &mut Context<Self>) -> Self::Result {
        supervision::drill(B::NAME);
        let (tx, rx) = oneshot::channel();
        self.pending.push((item, tx));
        self.write(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(WriteFailed(format!("the {} restarted", B::NAME.as_str()))))
        })
    }
}
