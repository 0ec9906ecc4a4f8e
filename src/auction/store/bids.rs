//! Bids: placing one (the auction rules applied to the lot as read, then a
//! compare-and-set on its `version` and the bid rows, in one transaction,
//! retried when another writer got there first) and reading a lot's bid
//! history.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{bids, lots, users};
use rand::Rng;
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationTrait, TransactionTrait,
};

use super::row::{rules_and_state, to_i64, write_state, CorruptLot};
use crate::auction::{
    place_bid as apply_bid, BidError, BidOutcome, BidRequest, LotRules, LotState, LotView,
    Standing, UserId,
};
use crate::db::stmt;
use crate::protocol::ErrorCode;

/// How many times a bid re-reads the lot after losing a compare-and-set to
/// another writer before it gives up with `busy`. Each loss means someone
/// else's bid went through, so this only runs out under a storm of bids on
/// one lot from several nodes at once (one node's Room serializes its own).
const BID_ATTEMPTS: u32 = 20;

/// The longest random pause, in milliseconds, between two attempts. Random,
/// so that writers who just collided do not collide again in step.
const MAX_RETRY_PAUSE_MS: u64 = 8;

/// Why a bid was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PlaceBidError {
    /// The auction rules refused it; the bidder is told why.
    #[error(transparent)]
    Refused(#[from] BidError),
    #[error("there is no lot {0}")]
    NotFound(i64),
    #[error("lot {0} is taking too many bids at once; try again")]
    Busy(i64),
    #[error(transparent)]
    Corrupt(#[from] CorruptLot),
    #[error("the bid could not be stored")]
    Db(#[from] DbErr),
}

impl PlaceBidError {
    /// The `code` of the `bid` reply (docs/protocol.md §1).
    pub fn code(&self) -> ErrorCode {
        match self {
            PlaceBidError::Refused(refusal) => refusal.code(),
            PlaceBidError::NotFound(_) => ErrorCode::LotNotFound,
            PlaceBidError::Busy(_) => ErrorCode::Busy,
            PlaceBidError::Corrupt(_) | PlaceBidError::Db(_) => ErrorCode::Internal,
        }
    }
}

/// A bid the database has accepted.
#[derive(Debug, Clone)]
pub struct PlacedBid {
    pub lot_id: i64,
    pub rules: LotRules,
    /// The lot after the bid. Its `version` is the `seq` of the bid's event
    /// and of every row it wrote.
    pub state: LotState,
    /// The rows written, in order (none for a leader's silent raise).
    pub rows: Vec<bids::Model>,
    pub standing: Standing,
    /// The leader before this bid, when it took the lead from them: they get
    /// `outbid`.
    pub displaced: Option<UserId>,
    /// Whether soft close moved `ends_at` later.
    pub extended: bool,
}

impl PlacedBid {
    pub fn view(&self) -> LotView {
        self.state.view(&self.rules)
    }
}

/// A row of a lot's bid history, with the name its bidder shows.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct BidRecord {
    pub id: i64,
    pub seq: i64,
    pub ord: i16,
    pub user_id: i64,
    pub bidder_name: String,
    pub amount_cents: i64,
    pub proxy: bool,
    pub placed_at: DateTime<Utc>,
}

/// A lot's last `limit` bid rows, newest first, with their bidders' display
/// names. Never the maximums behind them.
pub async fn bids_for(
    db: &impl ConnectionTrait,
    lot_id: i64,
    limit: u64,
) -> Result<Vec<BidRecord>, DbErr> {
    bids::Entity::find()
        .select_only()
        .columns([
            bids::Column::Id,
            bids::Column::Seq,
            bids::Column::Ord,
            bids::Column::UserId,
            bids::Column::AmountCents,
            bids::Column::Proxy,
            bids::Column::PlacedAt,
        ])
        .column_as(users::Column::DisplayName, "bidder_name")
        .join(JoinType::InnerJoin, bids::Relation::Bidder.def())
        .filter(bids::Column::LotId.eq(lot_id))
        .order_by_desc(bids::Column::Seq)
        .order_by_desc(bids::Column::Ord)
        .limit(limit)
        .into_model::<BidRecord>()
        .all(db)
        .await
}

/// Places `bidder`'s bid on a lot at `now` and stores it: in one transaction,
/// the lot is read, the auction rules applied, the new state written only if
/// `version` is still the one read, and the rows inserted under the new
/// version. Losing the compare-and-set to another writer rolls back and
/// starts again from the read, so the rules always judge the latest state.
pub async fn place_bid(
    db: &DatabaseConnection,
    lot_id: i64,
    bidder: UserId,
    amount_cents: i64,
    max_cents: Option<i64>,
    now: DateTime<Utc>,
) -> Result<PlacedBid, PlaceBidError> {
    place_bid_from(db, lot_id, None, bidder, amount_cents, max_cents, now).await
}

/// [`place_bid`], first trying `known` (the caller's latest copy of the lot)
/// without reading the row: its compare-and-set holds when nobody else bid
/// since, which for a lot's room on one node is nearly always. If the copy
/// is stale or its rules refuse the bid, the row is read and the bid placed
/// as usual, so a stale copy never refuses a bid on its own.
#[tracing::instrument(level = "debug", skip_all, fields(lot = lot_id, bidder, amount_cents))]
pub async fn place_bid_from(
    db: &DatabaseConnection,
    lot_id: i64,
    known: Option<(&LotRules, &LotState)>,
    bidder: UserId,
    amount_cents: i64,
    max_cents: Option<i64>,
    now: DateTime<Utc>,
) -> Result<PlacedBid, PlaceBidError> {
    let request = BidRequest {
        bidder,
        amount_cents,
        max_cents,
    };
    if let Some((rules, state)) = known {
        if let Ok(outcome) = apply_bid(rules, state, &request, now) {
            let txn = db.begin().await?;
            match write_bid(&txn, lot_id, rules, state.version, outcome, &request, now).await? {
                Some(placed) => {
                    txn.commit().await?;
                    return Ok(placed);
                }
                None => txn.rollback().await?,
            }
        }
    }
    for attempt in 0..BID_ATTEMPTS {
        let txn = crate::db::begin_write(db).await?;
        match try_bid(&txn, lot_id, &request, now).await {
            Ok(Some(placed)) => {
                txn.commit().await?;
                return Ok(placed);
            }
            Ok(None) => txn.rollback().await?,
            Err(refused) => {
                if let Err(err) = txn.rollback().await {
                    tracing::warn!(lot = lot_id, error = %err, "could not roll back a refused bid");
                }
                return Err(refused);
            }
        }
        let pause = rand::rng().random_range(0..=MAX_RETRY_PAUSE_MS.min(1 << attempt));
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Err(PlaceBidError::Busy(lot_id))
}

async fn try_bid(
    txn: &DatabaseTransaction,
    lot_id: i64,
    request: &BidRequest,
    now: DateTime<Utc>,
) -> Result<Option<PlacedBid>, PlaceBidError> {
    let backend = txn.get_database_backend();
    if backend == DatabaseBackend::Sqlite {
        // A SQLite transaction that reads first cannot wait for the write
        // lock later: if another writer committed since its read, the write
        // fails at once with "database is locked". Writing first takes the
        // lock up front (waiting out the busy timeout), and since SQLite
        // serializes writers, the compare-and-set below then always holds.
        txn.execute(stmt(
            backend,
            "UPDATE lots SET version = version WHERE id = $1",
            vec![lot_id.into()],
        ))
        .await?;
    }
    let row = lots::Entity::find_by_id(lot_id)
        .one(txn)
        .await?
        .ok_or(PlaceBidError::NotFound(lot_id))?;
    let (rules, state) = rules_and_state(&row)?;
    let outcome = apply_bid(&rules, &state, request, now)?;
    Ok(write_bid(txn, lot_id, &rules, state.version, outcome, request, now).await?)
}

/// Writes an accepted bid if the lot is still at `version`: the lot row by
/// compare-and-set, then its bid rows in one insert. `None` when another
/// writer got there first.
async fn write_bid(
    txn: &DatabaseTransaction,
    lot_id: i64,
    rules: &LotRules,
    version: u64,
    outcome: BidOutcome,
    request: &BidRequest,
    now: DateTime<Utc>,
) -> Result<Option<PlacedBid>, DbErr> {
    let mut changes = <lots::ActiveModel as Default>::default();
    write_state(&mut changes, &outcome.state);
    changes.updated_at = Set(now);
    // At READ COMMITTED, PostgreSQL re-checks this condition against the row
    // a concurrent writer has just committed, so a stale read matches nothing.
    // Without a read before it (the known-state path), this write is the
    // transaction's first statement, so on SQLite it waits for the write lock.
    let written = lots::Entity::update_many()
        .set(changes)
        .filter(lots::Column::Id.eq(lot_id))
        .filter(lots::Column::Version.eq(to_i64(version)))
        .exec(txn)
        .await?
        .rows_affected;
    if written == 0 {
        return Ok(None);
    }
    let seq = to_i64(outcome.state.version);
    let mut rows: Vec<bids::Model> = (0_i16..)
        .zip(&outcome.rows)
        .map(|(ord, bid)| bids::Model {
            id: 0,
            lot_id,
            seq,
            ord,
            user_id: bid.bidder,
            amount_cents: bid.amount_cents,
            max_cents: request.max_cents.filter(|_| bid.bidder == request.bidder),
            proxy: bid.proxy,
            placed_at: now,
        })
        .collect();
    if !rows.is_empty() {
        let mut insert = Query::insert();
        insert
            .into_table(bids::Entity)
            .columns([
                bids::Column::LotId,
                bids::Column::Seq,
                bids::Column::Ord,
                bids::Column::UserId,
                bids::Column::AmountCents,
                bids::Column::MaxCents,
                bids::Column::Proxy,
                bids::Column::PlacedAt,
            ])
            .returning(Query::returning().column(bids::Column::Id));
        for r in &rows {
            insert
                .values([
                    r.lot_id.into(),
                    r.seq.into(),
                    r.ord.into(),
                    r.user_id.into(),
                    r.amount_cents.into(),
                    r.max_cents.into(),
                    r.proxy.into(),
                    r.placed_at.into(),
                ])
                .map_err(|e| DbErr::Custom(e.to_string()))?;
        }
        let ids = txn
            .query_all(txn.get_database_backend().build(&insert))
            .await?;
        if ids.len() != rows.len() {
            return Err(DbErr::Custom(format!(
                "stored {} bids but got {} ids back",
                rows.len(),
                ids.len()
            )));
        }
        // RETURNING lists a multi-row VALUES insert in order on both backends.
        for (row, id) in rows.iter_mut().zip(ids) {
            row.id = id.try_get("", "id")?;
        }
    }
    Ok(Some(PlacedBid {
        lot_id,
        displaced: outcome.displaced(),
        rules: rules.clone(),
        state: outcome.state,
        rows,
        standing: outcome.standing,
        extended: outcome.extended,
    }))
}
