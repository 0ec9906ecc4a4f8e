//! Crawls: starting one (unless one is running), reading them back with
//! their task counts, and finishing one once none of its tasks is left to
//! do. Completion is checked by each transition that may settle a crawl's
//! last task, and by a periodic sweep for the races that slip past.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::crawls::{self, CrawlStatus};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use super::queue::{insert_tasks, NewTask};
use crate::crawl::lease::TaskState;
use crate::crawl::sites::Sites;
use crate::db::stmt;
use crate::protocol::worker::TaskKind;

/// Why a crawl did or did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started(i64),
    AlreadyRunning(i64),
}

/// A crawl with its task counts, for the API and the pages.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrawlReport {
    #[serde(flatten)]
    pub crawl: crawls::Model,
    pub tasks: BTreeMap<String, u64>,
}

impl CrawlReport {
    /// The report of `crawl` from the counts of its tasks still stored,
    /// with those retention removed added back.
    pub fn new(crawl: crawls::Model, mut tasks: BTreeMap<String, u64>) -> CrawlReport {
        for (state, pruned) in [
            (TaskState::Done, crawl.pruned_done),
            (TaskState::Cancelled, crawl.pruned_cancelled),
        ] {
            *tasks.entry(state.as_str().to_owned()).or_default() +=
                u64::try_from(pruned).unwrap_or(0);
        }
        CrawlReport { crawl, tasks }
    }

    pub fn total(&self) -> u64 {
        self.tasks.values().sum()
    }

    pub fn finished_tasks(&self) -> u64 {
        TaskState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| self.tasks.get(s.as_str()).copied().unwrap_or(0))
            .sum()
    }
}

/// Starts a crawl of every site, unless one is running already.
#[tracing::instrument(level = "debug", skip_all, fields(trigger = trigger))]
pub async fn start_crawl(
    db: &impl ConnectionTrait,
    sites: &Sites,
    trigger: &str,
    now: DateTime<Utc>,
) -> Result<StartOutcome, DbErr> {
    if let Some(running) = running_crawl(db).await? {
        return Ok(StartOutcome::AlreadyRunning(running.id));
    }
    let inserted = crawls::Entity::insert(crawls::ActiveModel {
        status: Set(CrawlStatus::Running),
        trigger: Set(trigger.to_owned()),
        started_at: Set(now),
        ..Default::default()
    })
    .exec(db)
    .await;
    let id = match inserted {
        Ok(res) => res.last_insert_id,
        // Another node (or request) won the race for the one running crawl.
        Err(err) => match running_crawl(db).await? {
            Some(running) => return Ok(StartOutcome::AlreadyRunning(running.id)),
            None => return Err(err),
        },
    };
    let seeds: Vec<NewTask> = sites
        .iter()
        .flat_map(|site| {
            site.start.iter().map(|url| NewTask {
                kind: TaskKind::Listing,
                site: site.name.clone(),
                url: url.clone(),
            })
        })
        .collect();
    insert_tasks(db, id, &seeds, now).await?;
    // A crawl of nothing is complete at once.
    finish_if_done(db, id, now).await?;
    Ok(StartOutcome::Started(id))
}

pub async fn running_crawl(db: &impl ConnectionTrait) -> Result<Option<crawls::Model>, DbErr> {
    crawls::Entity::find()
        .filter(crawls::Column::Status.eq(CrawlStatus::Running))
        .one(db)
        .await
}

/// The most recent crawl, running or not.
pub async fn latest_crawl(db: &impl ConnectionTrait) -> Result<Option<crawls::Model>, DbErr> {
    crawls::Entity::find()
        .order_by_desc(crawls::Column::Id)
        .one(db)
        .await
}

/// The most recent finished crawl.
pub async fn last_finished_crawl(
    db: &impl ConnectionTrait,
) -> Result<Option<crawls::Model>, DbErr> {
    crawls::Entity::find()
        .filter(crawls::Column::Status.eq(CrawlStatus::Finished))
        .order_by_desc(crawls::Column::Id)
        .one(db)
        .await
}

/// Tasks per state, every state listed in `TaskState::ALL`'s order: of one
/// crawl, or of the whole queue.
pub async fn task_counts(
    db: &impl ConnectionTrait,
    crawl: Option<i64>,
) -> Result<Vec<(String, u64)>, DbErr> {
    let (sql, values) = match crawl {
        Some(id) => (
            "SELECT state, COUNT(*) AS n FROM tasks WHERE crawl_id = $1 GROUP BY state",
            vec![id.into()],
        ),
        None => (
            "SELECT state, COUNT(*) AS n FROM tasks GROUP BY state",
            vec![],
        ),
    };
    let rows = db
        .query_all(stmt(db.get_database_backend(), sql, values))
        .await?;
    let mut counts: Vec<(String, u64)> = TaskState::ALL
        .into_iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for row in rows {
        let state: String = row.try_get("", "state")?;
        let n: i64 = row.try_get("", "n")?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
            slot.1 = u64::try_from(n).unwrap_or(0);
        }
    }
    Ok(counts)
}

pub async fn crawl_report(
    db: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<CrawlReport>, DbErr> {
    let Some(crawl) = crawls::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let tasks = task_counts(db, Some(id)).await?.into_iter().collect();
    Ok(Some(CrawlReport::new(crawl, tasks)))
}

/// Flips a crawl to `finished` once no task of it is left to do. Returns
/// `true` only for the one call that flipped it.
#[tracing::instrument(level = "debug", skip_all, fields(crawl = crawl_id))]
pub async fn complete_if_done(
    db: &impl ConnectionTrait,
    crawl_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one(stmt(
            backend,
            // EXISTS stops at the first open task; it runs after every
            // merge, so it must not count the whole queue.
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE crawl_id = $1 AND state IN ($2, $3)) AS open",
            vec![
                crawl_id.into(),
                TaskState::Queued.into(),
                TaskState::Leased.into(),
            ],
        ))
        .await?;
    let open: bool = match row {
        Some(row) => row.try_get("", "open")?,
        None => false,
    };
    if open {
        return Ok(false);
    }
    let res = crawls::Entity::update_many()
        .col_expr(crawls::Column::Status, CrawlStatus::Finished.into())
        .col_expr(crawls::Column::FinishedAt, Some(now).into())
        .filter(crawls::Column::Id.eq(crawl_id))
        .filter(crawls::Column::Status.eq(CrawlStatus::Running))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// `complete_if_done` outside a transaction: the flip is committed when this
/// returns, so it is logged here.
pub(super) async fn finish_if_done(
    db: &impl ConnectionTrait,
    crawl_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let finished = complete_if_done(db, crawl_id, now).await?;
    if finished {
        tracing::info!(crawl = crawl_id, "crawl finished");
    }
    Ok(finished)
}

/// Finishes running crawls with nothing left to do. Each transition checks
/// completion itself, but on PostgreSQL two transactions that settle a crawl's
/// last two tasks at once each still see the other's task open; the periodic
/// sweep closes what such a race leaves running.
pub async fn finish_idle_crawls(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, DbErr> {
    let running = crawls::Entity::find()
        .filter(crawls::Column::Status.eq(CrawlStatus::Running))
        .all(db)
        .await?;
    let mut finished = Vec::new();
    for crawl in running {
        if finish_if_done(db, crawl.id, now).await? {
            finished.push(crawl.id);
        }
    }
    Ok(finished)
}

/// A fresh SQLite database in a temporary folder with one running crawl,
/// for tests: the folder, the database and the crawl's id.
#[cfg(test)]
pub(crate) async fn running_crawl_db() -> (tempfile::TempDir, sea_orm::DatabaseConnection, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = crate::db::connect(&url).await.expect("db");
    let id = crawls::Entity::insert(crawls::ActiveModel {
        status: Set(CrawlStatus::Running),
        trigger: Set("test".to_owned()),
        started_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec(&db)
    .await
    .expect("crawl")
    .last_insert_id;
    (dir, db, id)
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;
    use crate::crawl::lease::LeaseToken;
    use std::time::Duration;

    use crate::crawl::store::{
        cancel, lease, mark_done, replan_late_start, starts_in_lead, turn, HostLease, Leased, Pace,
        Share, Writer,
    };

    async fn crawl_with_tasks(
        urls: &[&str],
    ) -> (tempfile::TempDir, sea_orm::DatabaseConnection, i64) {
        let (dir, db, id) = running_crawl_db().await;
        let now = Utc::now();
        let new: Vec<NewTask> = urls
            .iter()
            .map(|u| NewTask {
                kind: TaskKind::Page,
                site: "s".to_owned(),
                url: Url::parse(u).expect("url"),
            })
            .collect();
        insert_tasks(&db, id, &new, now).await.expect("tasks");
        (dir, db, id)
    }

    /// A crawl of `n` tasks on one host, and the pace of a host that
    /// allows them all at once but one start every `delay`.
    async fn host_with_delay(
        n: usize,
        delay: Duration,
    ) -> (tempfile::TempDir, sea_orm::DatabaseConnection, Pace) {
        let urls: Vec<String> = (0..n).map(|i| format!("https://a.test/{i}")).collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let (dir, db, _) = crawl_with_tasks(&urls).await;
        let pace = Pace {
            concurrency: u32::try_from(n).expect("a few tasks"),
            delay,
            lead: Duration::from_millis(20),
            fetched: Vec::new(),
            shared: false,
        };
        (dir, db, pace)
    }

    /// A crawl of six tasks on one host, and the pace of a host fetched two
    /// at a time; `shared` as in a cluster.
    async fn six_tasks_two_at_a_time(
        shared: bool,
    ) -> (tempfile::TempDir, sea_orm::DatabaseConnection, Pace) {
        let (dir, db, pace) = host_with_delay(6, Duration::ZERO).await;
        let pace = Pace {
            concurrency: 2,
            lead: Duration::ZERO,
            shared,
            ..pace
        };
        (dir, db, pace)
    }

    async fn status(db: &sea_orm::DatabaseConnection, id: i64) -> CrawlStatus {
        crawls::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .expect("crawl")
            .status
    }

    async fn lease_now(db: &sea_orm::DatabaseConnection, n: u32) -> Vec<Leased> {
        let pace = Pace {
            concurrency: 100,
            delay: Duration::ZERO,
            lead: Duration::ZERO,
            fetched: Vec::new(),
            shared: false,
        };
        lease_paced(db, n, pace, Utc::now()).await.rows
    }

    async fn lease_paced(
        db: &sea_orm::DatabaseConnection,
        n: u32,
        pace: Pace,
        now: DateTime<Utc>,
    ) -> HostLease {
        let shares = [Share {
            worker: "w".to_owned(),
            count: n,
        }];
        lease_shares(db, &shares, pace, now).await
    }

    async fn lease_shares(
        db: &sea_orm::DatabaseConnection,
        shares: &[Share],
        pace: Pace,
        now: DateTime<Utc>,
    ) -> HostLease {
        let until = now + chrono::Duration::seconds(30);
        let turn = turn(db, Writer::Dispatcher).await;
        lease(db, &turn, "a.test", shares, pace, until, now)
            .await
            .expect("lease")
    }

    #[actix_web::test]
    async fn one_lease_of_a_host_gives_each_worker_its_share_in_its_name() {
        let urls: Vec<String> = (0..6).map(|i| format!("https://a.test/{i}")).collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let (_dir, db, _) = crawl_with_tasks(&urls).await;
        let pace = Pace {
            concurrency: 5,
            delay: Duration::ZERO,
            lead: Duration::ZERO,
            fetched: Vec::new(),
            shared: false,
        };
        let share = |worker: &str, count| Share {
            worker: worker.to_owned(),
            count,
        };
        let shares = [share("one", 2), share("two", 2), share("three", 2)];
        let got = lease_shares(&db, &shares, pace, Utc::now()).await;
        // Five fit the host's concurrency: the last share gets what is left.
        assert_eq!(got.taken, vec![2, 2, 1]);
        let mut holders: Vec<(i64, Option<String>)> = entity::tasks::Entity::find()
            .filter(entity::tasks::Column::State.eq(TaskState::Leased))
            .all(&db)
            .await
            .expect("tasks")
            .into_iter()
            .map(|t| (t.id, t.worker))
            .collect();
        holders.sort();
        let names = ["one", "one", "two", "two", "three"];
        let mut expected: Vec<(i64, Option<String>)> = got
            .rows
            .iter()
            .zip(names)
            .map(|(row, name)| (row.id, Some(name.to_owned())))
            .collect();
        expected.sort();
        assert_eq!(holders, expected);
        let attempts: Vec<(String, String)> = entity::task_attempts::Entity::find()
            .all(&db)
            .await
            .expect("attempts")
            .into_iter()
            .map(|a| (a.lease_token, a.worker))
            .collect();
        for (row, name) in got.rows.iter().zip(names) {
            assert!(
                attempts.contains(&(row.lease_token.clone(), name.to_owned())),
                "{attempts:?}"
            );
        }
    }

    #[actix_web::test]
    async fn a_hosts_concurrency_holds_for_every_caller_together() {
        let (_dir, db, pace) = six_tasks_two_at_a_time(false).await;
        let now = Utc::now();
        // Two nodes asking for three each get two between them.
        let first = lease_paced(&db, 3, pace.clone(), now).await.rows;
        let second = lease_paced(&db, 3, pace.clone(), now).await.rows;
        assert_eq!((first.len(), second.len()), (2, 0));
        // The caller whose result arrived has a slot free, though its task
        // stays leased until merged.
        let fetched = Pace {
            fetched: vec![first[0].lease_token.clone()],
            ..pace.clone()
        };
        let after = lease_paced(&db, 3, fetched.clone(), now).await.rows;
        assert_eq!(after.len(), 1);
        // Merged before the caller heard so: not taken off twice.
        mark_done(&db, &[&token(&first[0])], now)
            .await
            .expect("done");
        assert_eq!(lease_paced(&db, 3, fetched, now).await.rows.len(), 0);
        mark_done(&db, &[&token(&first[1]), &token(&after[0])], now)
            .await
            .expect("done");
        assert_eq!(lease_paced(&db, 3, pace, now).await.rows.len(), 2);
    }

    #[actix_web::test]
    async fn a_fetch_one_node_has_received_frees_its_slot_for_every_node() {
        // Two nodes of a cluster.
        let (_dir, db, pace) = six_tasks_two_at_a_time(true).await;
        let now = Utc::now();
        let first = lease_paced(&db, 2, pace.clone(), now).await.rows;
        assert_eq!(first.len(), 2);
        // Both pages reached the node that leased them, and wait for its
        // Merger; its next pass says so, and takes one more.
        let received = Pace {
            fetched: first.iter().map(|t| t.lease_token.clone()).collect(),
            ..pace.clone()
        };
        let again = lease_paced(&db, 1, received, now).await.rows;
        assert_eq!(again.len(), 1);
        // Another node, which has received nothing, sees one fetch in flight
        // and the other slot free.
        let other = lease_paced(&db, 2, pace.clone(), now).await.rows;
        assert_eq!(other.len(), 1);
        assert_eq!(lease_paced(&db, 2, pace, now).await.rows.len(), 0);
        // The received tasks stay leased until merged.
        let tasks = entity::tasks::Entity::find()
            .filter(entity::tasks::Column::State.eq(TaskState::Leased))
            .all(&db)
            .await
            .expect("tasks");
        let mut fetched: Vec<(i64, bool)> = tasks
            .iter()
            .map(|t| (t.id, t.fetched_at.is_some()))
            .collect();
        fetched.sort_unstable();
        let mut expected: Vec<(i64, bool)> = first
            .iter()
            .map(|t| (t.id, true))
            .chain(again.iter().chain(&other).map(|t| (t.id, false)))
            .collect();
        expected.sort_unstable();
        assert_eq!(fetched, expected);
    }

    #[actix_web::test]
    async fn a_hosts_delay_plans_each_start_after_the_last_one_planned() {
        let (_dir, db, pace) = host_with_delay(4, Duration::from_millis(500)).await;
        let now = Utc::now();
        let first = lease_paced(&db, 4, pace.clone(), now).await;
        assert_eq!(first.rows.len(), 1, "one task a lease with a delay");
        assert_eq!(first.start_at, Some(now));
        // Another node, 100 ms later: the host is due at +500 ms.
        let later = now + chrono::Duration::milliseconds(100);
        let second = lease_paced(&db, 4, pace.clone(), later).await;
        assert!(second.rows.is_empty());
        assert_eq!(second.due, Some(now + chrono::Duration::milliseconds(500)));
        // Within the lead of its turn, a task is leased to start on time.
        let close = now + chrono::Duration::milliseconds(490);
        let third = lease_paced(&db, 4, pace, close).await;
        assert_eq!(third.rows.len(), 1);
        assert_eq!(
            third.start_at,
            Some(now + chrono::Duration::milliseconds(500))
        );
    }

    #[actix_web::test]
    async fn a_start_sent_late_takes_the_next_free_start_and_moves_the_plan_on() {
        let (_dir, db, pace) = host_with_delay(4, Duration::from_millis(500)).await;
        let delay = pace.delay;
        let ms = chrono::Duration::milliseconds;
        let now = Utc::now();
        let first = lease_paced(&db, 4, pace.clone(), now).await;
        assert_eq!(first.start_at, Some(now));
        // Its node stalled 300 ms: the next start is planned at +500, so
        // the late one takes that, and the one after goes a delay later.
        let late = replan_late_start(&db, "a.test", delay, now + ms(300))
            .await
            .expect("replan");
        assert_eq!(late, now + ms(500));
        let early = lease_paced(&db, 4, pace.clone(), now + ms(600)).await;
        assert!(early.rows.is_empty());
        assert_eq!(early.due, Some(now + ms(1000)));
        // A stall longer than the delay: it goes when its node wakes.
        let woke = now + ms(3000);
        let later = replan_late_start(&db, "a.test", delay, woke)
            .await
            .expect("replan");
        assert_eq!(later, woke);
        let next = lease_paced(&db, 4, pace, woke + ms(490)).await;
        assert_eq!(next.start_at, Some(woke + ms(500)));
    }

    #[actix_web::test]
    async fn a_delay_shorter_than_the_lead_has_its_starts_leased_together() {
        let (_dir, db, pace) = host_with_delay(8, Duration::from_millis(5)).await;
        let now = Utc::now();
        let ms = chrono::Duration::milliseconds;
        // Now, +5, +10, +15 and +20 ms: five starts within the lead.
        let first = lease_paced(&db, 8, pace.clone(), now).await;
        assert_eq!(first.rows.len(), 5);
        assert_eq!(first.start_at, Some(now));
        // The next start is +25 ms: not yet within the lead at +1 ms...
        let early = lease_paced(&db, 8, pace.clone(), now + ms(1)).await;
        assert!(early.rows.is_empty());
        assert_eq!(early.due, Some(now + ms(25)));
        // ...and the only one within it at +6 ms.
        let next = lease_paced(&db, 8, pace, now + ms(6)).await;
        assert_eq!(next.rows.len(), 1);
        assert_eq!(next.start_at, Some(now + ms(25)));
    }

    #[test]
    fn the_starts_in_the_lead_are_those_it_spans_and_at_least_one() {
        let ms = Duration::from_millis;
        assert_eq!(starts_in_lead(ms(0), ms(20), ms(5)), 5);
        assert_eq!(starts_in_lead(ms(19), ms(20), ms(5)), 1);
        assert_eq!(starts_in_lead(ms(0), ms(20), ms(500)), 1);
        assert_eq!(starts_in_lead(ms(30), ms(20), ms(5)), 1);
        assert_eq!(starts_in_lead(ms(0), ms(20), Duration::ZERO), u32::MAX);
    }

    fn token(row: &Leased) -> LeaseToken {
        LeaseToken::parse(&row.lease_token).expect("token")
    }

    #[actix_rt::test]
    async fn a_crawl_whose_last_task_is_cancelled_is_finished() {
        let (_dir, db, id) = crawl_with_tasks(&["http://a.test/1", "http://a.test/private"]).await;
        let now = Utc::now();
        let leased = lease_now(&db, 2).await;
        assert_eq!(leased.len(), 2);

        // The page is merged first, while the private one is still leased...
        let first = token(&leased[0]);
        assert!(mark_done(&db, &[&first], now)
            .await
            .expect("done")
            .contains(first.as_str()));
        assert!(!complete_if_done(&db, id, now).await.expect("check"));
        assert_eq!(status(&db, id).await, CrawlStatus::Running);

        // ...then robots.txt cancels the last one: nothing is left to do.
        assert!(cancel(&db, &token(&leased[1]), id, "disallowed", now)
            .await
            .expect("cancel"));
        assert_eq!(status(&db, id).await, CrawlStatus::Finished);
    }

    #[actix_rt::test]
    async fn the_sweep_finishes_a_crawl_that_a_race_left_running() {
        let (_dir, db, id) = crawl_with_tasks(&["http://a.test/1"]).await;
        let now = Utc::now();
        let leased = lease_now(&db, 1).await;
        // Settled without a completion check, as when two transactions each
        // saw the other's task still open.
        let only = token(&leased[0]);
        assert_eq!(mark_done(&db, &[&only], now).await.expect("done").len(), 1);
        assert_eq!(status(&db, id).await, CrawlStatus::Running);

        assert_eq!(finish_idle_crawls(&db, now).await.expect("sweep"), vec![id]);
        assert_eq!(status(&db, id).await, CrawlStatus::Finished);
        assert!(finish_idle_crawls(&db, now)
            .await
            .expect("again")
            .is_empty());
    }
}
