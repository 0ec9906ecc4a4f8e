//! Cluster-wide roles: duties that must run once per cluster, whichever
//! nodes are up. The scheduler role (the crawl schedule, the lease sweep,
//! lots opening and closing, digests and alerts) is a lease row in the
//! database: its holder renews it every `RENEW`, and once it has not for
//! `HOLD`, any other node takes it. The database, not Redis, decides, so a
//! Redis outage never leaves the cluster with two schedulers or none.
//!
//! One node alone (SQLite, or the only node on PostgreSQL) takes the role
//! at start and keeps it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use crate::clock::{self, delta};
use crate::db::stmt;
use crate::lifecycle::Lifecycle;

/// The role whose holder runs the cluster's timed duties.
pub const SCHEDULER: &str = "scheduler";

/// How often the holder renews its lease, and others try to take it.
const RENEW: Duration = Duration::from_secs(3);
/// How long a lease holds without renewal: a dead holder's role passes to
/// another node within this plus one `RENEW`, well inside 30 s. Several
/// renewals fit in it, so one slow database round trip loses nothing.
const HOLD: Duration = Duration::from_secs(15);

/// Whether this node holds a role, as its duties check before each run.
#[derive(Clone, Default)]
pub struct Leadership {
    held: Arc<AtomicBool>,
    /// The node is going away: it neither keeps nor takes the role again.
    resigned: Arc<AtomicBool>,
}

impl Leadership {
    pub fn held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes the role if it is free, then keeps it or waits for it in the
    /// background. The first attempt is made before this returns, so that a
    /// single node runs its duties from its first tick.
    pub async fn start(db: DatabaseConnection, node: String, lifecycle: &Lifecycle) -> Leadership {
        let leadership = Leadership::default();
        leadership.claim(&db, &node).await;
        let held = leadership.clone();
        lifecycle.spawn(async move {
            let mut tick = tokio::time::interval(RENEW);
            tick.tick().await;
            loop {
                tick.tick().await;
                held.claim(&db, &node).await;
            }
        });
        leadership
    }

    async fn claim(&self, db: &DatabaseConnection, node: &str) {
        if self.resigned.load(Ordering::Relaxed) {
            return;
        }
        let now = clock::now();
        let held = match claim(db, SCHEDULER, node, now, now + delta(HOLD)).await {
            Ok(held) => held,
            Err(err) => {
                // Unable to renew, the role may pass to another node once the
                // lease runs out: stop acting on it now rather than then.
                tracing::error!(error = %err, "could not renew the scheduler role");
                false
            }
        };
        let was = self.held.swap(held, Ordering::Relaxed);
        if held != was {
            if held {
                tracing::info!(node, "this node holds the scheduler role");
            } else {
                tracing::warn!(node, "this node no longer holds the scheduler role");
            }
        }
    }

    /// Gives the role up for good, for another node to take at its next
    /// attempt rather than after `HOLD`: this node is going away.
    pub async fn resign(&self, db: &DatabaseConnection, node: &str) {
        self.resigned.store(true, Ordering::Relaxed);
        self.held.store(false, Ordering::Relaxed);
        if let Err(err) = release(db, SCHEDULER, node).await {
            tracing::warn!(error = %err, "could not give up the scheduler role");
        }
    }
}

/// Takes or renews `role` for `node` until `until`, unless another node
/// holds it past `now`. Resolves to whether `node` holds it. One statement:
/// two nodes claiming together cannot both win.
pub async fn claim(
    db: &impl ConnectionTrait,
    role: &str,
    node: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = "INSERT INTO roles (name, node, held_until, since) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (name) DO UPDATE SET node = excluded.node, \
                 held_until = excluded.held_until, \
                 since = CASE WHEN roles.node = excluded.node THEN roles.since \
                              ELSE excluded.since END \
               WHERE roles.node = excluded.node OR roles.held_until < excluded.since \
               RETURNING node";
    let row = db
        .query_one(stmt(
            backend,
            sql,
            vec![role.into(), node.into(), until.into(), now.into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// Lets `role` go, if `node` holds it.
pub async fn release(db: &impl ConnectionTrait, role: &str, node: &str) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let past = DateTime::<Utc>::UNIX_EPOCH;
    db.execute(stmt(
        backend,
        "UPDATE roles SET held_until = $1 WHERE name = $2 AND node = $3",
        vec![past.into(), role.into(), node.into()],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node holding `role` now, if any.
    async fn holder(
        db: &impl ConnectionTrait,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, DbErr> {
        let backend = db.get_database_backend();
        let row = db
            .query_one(stmt(
                backend,
                "SELECT node FROM roles WHERE name = $1 AND held_until >= $2",
                vec![role.into(), now.into()],
            ))
            .await?;
        row.map(|r| r.try_get::<String>("", "node")).transpose()
    }

    async fn db(dir: &tempfile::TempDir) -> DatabaseConnection {
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("roles.db").display()
        );
        crate::db::connect(&url).await.unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
    }

    #[actix_web::test]
    async fn one_node_holds_the_role_until_its_lease_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        assert!(claim(&db, SCHEDULER, "a", at(0), at(15)).await.unwrap());
        assert!(!claim(&db, SCHEDULER, "b", at(1), at(16)).await.unwrap());
        assert!(claim(&db, SCHEDULER, "a", at(3), at(18)).await.unwrap());
        assert_eq!(
            holder(&db, SCHEDULER, at(17)).await.unwrap().as_deref(),
            Some("a")
        );
        // a stopped renewing at 3: its lease ran to 18.
        assert!(!claim(&db, SCHEDULER, "b", at(18), at(33)).await.unwrap());
        assert!(claim(&db, SCHEDULER, "b", at(19), at(34)).await.unwrap());
        assert!(!claim(&db, SCHEDULER, "a", at(20), at(35)).await.unwrap());
        assert_eq!(
            holder(&db, SCHEDULER, at(20)).await.unwrap().as_deref(),
            Some("b")
        );
    }

    #[actix_web::test]
    async fn a_released_role_passes_at_the_next_claim() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        assert!(claim(&db, SCHEDULER, "a", at(0), at(15)).await.unwrap());
        release(&db, SCHEDULER, "b").await.unwrap();
        assert!(!claim(&db, SCHEDULER, "b", at(1), at(16)).await.unwrap());
        release(&db, SCHEDULER, "a").await.unwrap();
        assert_eq!(holder(&db, SCHEDULER, at(2)).await.unwrap(), None);
        assert!(claim(&db, SCHEDULER, "b", at(2), at(17)).await.unwrap());
    }
}
