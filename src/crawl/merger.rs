//! The Merger: applies workers' results to the catalog and the queue, in
//! batches (see `batch`). Its turn to write comes from `store::turn`, so
//! that results arriving while it waits join the same transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use actix::prelude::*;
use sea_orm::{DatabaseConnection, DbErr};

use super::catalog::{merge_items, MergeStats};
use super::lease::LeaseToken;
use super::store::{
    self, complete_if_done, current_leases, insert_tasks, mark_done, NewTask, Turn, Writer,
};
use crate::batch::{Batch, Batcher, WriteFailed};
use crate::clock;
use crate::protocol::worker::Item;
use crate::supervision::Name;

/// The Merger actor.
pub type Merger = Batcher<Merging>;

/// A validated result for one lease.
#[derive(Message)]
#[rtype(result = "Result<MergeOutcome, WriteFailed>")]
pub struct MergeResult {
    pub lease: LeaseToken,
    pub crawl_id: i64,
    /// Offers found on a game page.
    pub items: Vec<Item>,
    /// Tasks found on a listing page (already filtered to allowed hosts).
    pub links: Vec<NewTask>,
}

/// What became of a result. When the database refuses it instead, the lease
/// stays and expires back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged and committed.
    Merged,
    /// The lease is no longer current: the result was ignored.
    Stale,
}

/// How the Merger writes.
#[derive(Clone)]
pub struct Merging {
    pub db: DatabaseConnection,
}

impl Batch for Merging {
    type Item = MergeResult;
    type Done = MergeOutcome;
    type Turn = Turn;
    const NAME: Name = Name::Merger;

    fn turn(&self) -> impl Future<Output = Turn> {
        store::turn(&self.db, Writer::Merger)
    }

    fn write(
        &self,
        turn: Turn,
        results: &[MergeResult],
    ) -> impl Future<Output = Result<Vec<MergeOutcome>, DbErr>> {
        merge_batch(&self.db, results, turn)
    }
}

/// Merges a batch in one transaction, in `turn`. A stale lease is an
/// outcome, not an error.
async fn merge_batch(
    db: &DatabaseConnection,
    results: &[MergeResult],
    turn: Turn,
) -> Result<Vec<MergeOutcome>, DbErr> {
    let now = clock::now();
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
            outcomes.push(MergeOutcome::Merged);
        } else {
            outcomes.push(MergeOutcome::Stale);
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
