//! Write turns: on SQLite, the crawl's writers in this process (the
//! Dispatcher's leases and releases, the Merger's batches) wait for the
//! database's one write lock in a line of their own.
//!
//! SQLite lets one transaction write at a time. One that asks meanwhile
//! waits in SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between
//! tries, and so starts up to milliseconds after the lock was free. A crawl
//! goes on only as fast as each listing's links are merged and its next
//! listing leased, and with the Merger and the Dispatcher waiting on each
//! other that way, a crawl spent most of its time asleep. In line, the next
//! writer starts the moment the one before it is done.
//!
//! The Dispatcher's writes go before the Merger's: a lease sets a worker to
//! work at once, while a result that waits is merged with those that arrive
//! meanwhile, in a batch that costs less per result. Leases cannot crowd
//! merges out: a Dispatcher leases no more than its workers have free slots
//! for, and results are what free them.
//!
//! PostgreSQL locks rows, not the database, and wakes a waiter when its row
//! is free: its writers begin at once.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::sync::oneshot;

use crate::db::begin_write;

/// Who waits for a turn. Each kind waits in order of arrival, and the
/// Dispatcher's before the Merger's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Leases taken and ended: what the workers wait for.
    Dispatcher,
    /// Results merged into the catalog and the queue.
    Merger,
}

/// A turn at writing; the next writer's turn begins when it is dropped.
#[must_use = "the turn passes on when dropped"]
pub struct Turn(Option<Arc<Line>>);

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(line) = self.0.take() {
            line.pass_on();
        }
    }
}

/// Waits for a turn at writing to `db`: at once on PostgreSQL, or when the
/// line is empty.
pub async fn turn(db: &DatabaseConnection, writer: Writer) -> Turn {
    let Some(line) = line_of(db) else {
        return Turn(None);
    };
    let waiting = {
        let mut state = line.state();
        if !state.busy {
            state.busy = true;
            drop(state);
            return Turn(Some(line));
        }
        let (tx, rx) = oneshot::channel();
        match writer {
            Writer::Dispatcher => state.dispatcher.push_back(tx),
            Writer::Merger => state.merger.push_back(tx),
        }
        rx
    };
    Waiting {
        rx: waiting,
        line: Some(line),
    }
    .await
}

impl Turn {
    /// Begins a write transaction in this turn. Commit it, or drop it, while
    /// the turn is held: the next writer would otherwise wait for it in
    /// SQLite's busy handler after all.
    pub async fn begin(&self, db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
        begin_write(db).await
    }
}

/// The line of one SQLite database.
#[derive(Default)]
struct Line {
    // A std Mutex: held for a few instructions, never across an await.
    state: Mutex<LineState>,
}

#[derive(Default)]
struct LineState {
    /// A writer has the turn.
    busy: bool,
    dispatcher: VecDeque<oneshot::Sender<()>>,
    merger: VecDeque<oneshot::Sender<()>>,
}

impl Line {
    fn state(&self) -> MutexGuard<'_, LineState> {
        // Every change to the state is complete before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the turn to the next writer still waiting, or frees the line.
    fn pass_on(&self) {
        let mut state = self.state();
        while let Some(next) = state
            .dispatcher
            .pop_front()
            .or_else(|| state.merger.pop_front())
        {
            if next.send(()).is_ok() {
                return;
            }
        }
        state.busy = false;
    }
}

/// The line of `db`'s file, or `None` on PostgreSQL. Lines are kept for the
/// life of the process: one per database it writes to.
fn line_of(db: &DatabaseConnection) -> Option<Arc<Line>> {
    static LINES: LazyLock<Mutex<HashMap<PathBuf, Arc<Line>>>> = LazyLock::new(Default::default);
    if !matches!(db, DatabaseConnection::SqlxSqlitePoolConnection(_)) {
        return None;
    }
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_owned();
    let mut lines = LINES.lock().unwrap_or_else(PoisonError::into_inner);
    Some(lines.entry(file).or_default().clone())
}

/// A writer waiting in line. Given up before its turn came (its task was
/// dropped), it leaves the line; if the turn came meanwhile, it passes it on.
struct Waiting {
    rx: oneshot::Receiver<()>,
    /// Taken when the turn comes.
    line: Option<Arc<Line>>,
}

impl Future for Waiting {
    type Output = Turn;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn> {
        let this = self.get_mut();
        // The sender is only dropped unsent once this receiver is gone, so
        // the only outcome is the turn.
        match Pin::new(&mut this.rx).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Turn(this.line.take())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            self.rx.close();
            if self.rx.try_recv().is_ok() {
                line.pass_on();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn sqlite() -> (tempfile::TempDir, DatabaseConnection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::db::connect(&url).await.expect("db");
        (dir, db)
    }

    /// Whether `turn` is still waiting after the runtime has run everything
    /// else that was ready.
    async fn waits<F: Future + Unpin>(turn: &mut F) -> bool {
        tokio::select! {
            biased;
            _ = turn => false,
            _ = tokio::time::sleep(Duration::from_millis(20)) => true,
        }
    }

    #[actix_rt::test]
    async fn the_dispatcher_writes_before_the_merger_and_each_in_order() {
        let (_dir, db) = sqlite().await;
        let first = turn(&db, Writer::Merger).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (name, writer) in [
            ("merger 1", Writer::Merger),
            ("dispatcher 1", Writer::Dispatcher),
            ("merger 2", Writer::Merger),
            ("dispatcher 2", Writer::Dispatcher),
        ] {
            let (db, order) = (db.clone(), order.clone());
            waiting.push(actix_rt::spawn(async move {
                let turn = turn(&db, writer).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(turn);
            }));
            // In line in this order.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(order.lock().unwrap().is_empty(), "all wait for the first");
        drop(first);
        for task in waiting {
            task.await.expect("writer");
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["dispatcher 1", "dispatcher 2", "merger 1", "merger 2"]
        );
    }

    #[actix_rt::test]
    async fn a_writer_that_gives_up_waiting_leaves_the_turn_to_the_next() {
        let (_dir, db) = sqlite().await;
        let first = turn(&db, Writer::Merger).await;
        let mut quitter = Box::pin(turn(&db, Writer::Dispatcher));
        assert!(waits(&mut quitter).await);
        let mut next = Box::pin(turn(&db, Writer::Merger));
        assert!(waits(&mut next).await);
        drop(first);
        // The turn went to the quitter, which leaves without using it.
        drop(quitter);
        let second = next.await;
        let mut third = Box::pin(turn(&db, Writer::Dispatcher));
        assert!(waits(&mut third).await, "one turn at a time");
        drop(second);
        let _third = third.await;
    }

    #[actix_rt::test]
    async fn each_database_has_a_line_of_its_own() {
        let (_a_dir, a) = sqlite().await;
        let (_b_dir, b) = sqlite().await;
        let _held = turn(&a, Writer::Merger).await;
        let mut other = Box::pin(turn(&b, Writer::Merger));
        assert!(!waits(&mut other).await);
    }
}
