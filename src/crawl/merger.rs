//! The Merger actor: applies workers' results to the catalog and the queue.
//! Results that arrive while a write is in progress, or while the Merger
//! waits for its turn to write (`store::turn`), are merged together in the
//! next transaction, so throughput grows with load instead of queueing on
//! commits.

use std::collections::{BTreeMap, BTreeSet};

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::oneshot;

use super::catalog::{merge_items, MergeStats};
use super::lease::LeaseToken;
use super::store::{
    self, complete_if_done, current_leases, insert_tasks, mark_done, NewTask, Turn, Writer,
};
use crate::clock::Clock;
use crate::protocol::worker::Item;
use crate::supervision::{self, Name};

/// A validated result for one lease.
#[derive(Message)]
#[rtype(result = "Result<MergeOutcome, MergeFailed>")]
pub struct MergeResult {
    pub lease: LeaseToken,
    pub crawl_id: i64,
    /// Offers found on a game page.
    pub items: Vec<Item>,
    /// Tasks found on a listing page (already filtered to allowed hosts).
    pub links: Vec<NewTask>,
}

/// What became of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged and committed.
    Merged,
    /// The lease is no longer current: the result was ignored.
    Stale,
}

/// The database refused the write; the lease stays and will expire back to
/// the queue.
#[derive(Debug, thiserror::Error)]
#[error("could not merge the result: {0}")]
pub struct MergeFailed(String);

type Reply = oneshot::Sender<Result<MergeOutcome, MergeFailed>>;

pub struct Merger {
    db: DatabaseConnection,
    clock: Clock,
    pending: Vec<(MergeResult, Reply)>,
    flushing: bool,
}

impl Merger {
    pub fn new(db: DatabaseConnection, clock: Clock) -> Merger {
        Merger {
            db,
            clock,
            pending: Vec::new(),
            flushing: false,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.pending.is_empty() {
            return;
        }
        self.flushing = true;
        let db = self.db.clone();
        // The batch is what has arrived once the turn comes, not when it was
        // asked for.
        async move { store::turn(&db, Writer::Merger).await }
            .into_actor(self)
            .then(|turn, act, _| {
                let batch = std::mem::take(&mut act.pending);
                merge_and_reply(act.db.clone(), act.clock.clone(), batch, turn).into_actor(act)
            })
            .map(|(), actor, ctx| {
                actor.flushing = false;
                actor.flush(ctx);
            })
            .spawn(ctx);
    }
}

/// Merges `batch` in `turn` and answers each result.
async fn merge_and_reply(
    db: DatabaseConnection,
    clock: Clock,
    batch: Vec<(MergeResult, Reply)>,
    turn: Turn,
) {
    let (results, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let outcomes = match merge_batch(&db, &clock, &results, turn).await {
        Ok(outcomes) => outcomes,
        // One bad result must not sink the others: retry one by one.
        Err(err) => {
            tracing::warn!(error = %err, size = results.len(), "batch merge failed; merging one by one");
            let mut outcomes = Vec::with_capacity(results.len());
            for result in &results {
                let turn = store::turn(&db, Writer::Merger).await;
                let one = merge_batch(&db, &clock, std::slice::from_ref(result), turn).await;
                outcomes.push(match one {
                    Ok(mut o) => o.pop().unwrap_or(Err(MergeFailed("empty".into()))),
                    Err(err) => Err(MergeFailed(err.to_string())),
                });
            }
            outcomes
        }
    };
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // The session may have gone; its lease then expires as usual.
        let _ = reply.send(outcome);
    }
}

/// Merges a batch in one transaction, in `turn`. A stale lease is an
/// outcome, not an error.
async fn merge_batch(
    db: &DatabaseConnection,
    clock: &Clock,
    results: &[MergeResult],
    turn: Turn,
) -> Result<Vec<Result<MergeOutcome, MergeFailed>>, DbErr> {
    let now = clock.now();
    // A writer from the start: on SQLite, a transaction that reads first
    // cannot become one if another wrote meanwhile.
    let txn = turn.begin(db).await?;
    let tokens: Vec<&LeaseToken> = results.iter().map(|r| &r.lease).collect();
    // Links go in first, in URL order, one statement per crawl, before the
    // tasks are marked done. Marking a task done writes a new entry in the
    // (crawl, url) index; a node inserting that URL as a link must wait for
    // it. Were the marks first, two nodes could each wait for the other's
    // mark while holding links the other wants, and PostgreSQL would break
    // the deadlock only after a second, failing the batch. In this order,
    // every wait is for a link later in the same order, or for a node
    // that is past its links. Links of a result whose lease is not current
    // are left out; one that turns stale meanwhile adds links its page
    // really has, to its own crawl, which is harmless.
    let leased = current_leases(&txn, &tokens).await?;
    let mut links: BTreeMap<i64, BTreeMap<String, &NewTask>> = BTreeMap::new();
    for result in results.iter().filter(|r| leased.contains(r.lease.as_str())) {
        let crawl = links.entry(result.crawl_id).or_default();
        for link in &result.links {
            crawl.entry(link.url.to_string()).or_insert(link);
        }
    }
    for (&crawl, found) in &links {
        let found: Vec<NewTask> = found.values().map(|&t| t.clone()).collect();
        insert_tasks(&txn, crawl, &found, now).await?;
    }
    let mut current = mark_done(&txn, &tokens, now).await?;
    // A token counts once, should a result come twice in one batch.
    let fresh: Vec<bool> = results
        .iter()
        .map(|r| current.remove(r.lease.as_str()))
        .collect();
    let items: Vec<(i64, &Item)> = results
        .iter()
        .zip(&fresh)
        .filter(|(_, &fresh)| fresh)
        .flat_map(|(r, _)| r.items.iter().map(move |item| (r.crawl_id, item)))
        .collect();
    let mut stats = MergeStats::default();
    merge_items(&txn, &items, now, &mut stats).await?;
    let mut outcomes = Vec::with_capacity(results.len());
    let mut crawls = BTreeSet::new();
    for (result, fresh) in results.iter().zip(fresh) {
        if fresh {
            crawls.insert(result.crawl_id);
            outcomes.push(Ok(MergeOutcome::Merged));
        } else {
            outcomes.push(Ok(MergeOutcome::Stale));
        }
    }
    let mut finished = Vec::new();
    for crawl in crawls {
        if complete_if_done(&txn, crawl, now).await? {
            finished.push(crawl);
        }
    }
    txn.commit().await?;
    for crawl in finished {
        tracing::info!(crawl, "crawl finished");
    }
    Ok(outcomes)
}

impl Actor for Merger {
    type Context = Context<Self>;
}

impl Supervised for Merger {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Everything durable is in the database; replies in flight are lost
        // with the old state, and their leases expire back to the queue.
        self.pending.clear();
        self.flushing = false;
        tracing::warn!("merger restarted");
    }
}

impl Handler<MergeResult> for Merger {
    type Result = ResponseFuture<Result<MergeOutcome, MergeFailed>>;

    fn handle(&mut self, msg: MergeResult, ctx: &mut Context<Self>) -> Self::Result {
        supervision::drill(Name::Merger);
        let (tx, rx) = oneshot::channel();
        self.pending.push((msg, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(MergeFailed("the merger restarted".into())))
        })
    }
}
