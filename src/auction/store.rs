//! Auction persistence: lots and their bids. The database is the truth (DESIGN
//! §3): a bid is one compare-and-set on the lot's `version` plus its rows in
//! `bids`, in one transaction, and every scheduled transition is a
//! conditional update, so nodes sharing one database never lose or repeat a
//! change.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use entity::{bids, lots, users};
use rand::Rng;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend,
    DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, TransactionTrait,
};

use super::{
    close, open, place_bid as apply_bid, BidError, BidOutcome, BidRequest, Closing, Increments,
    Leader, LotRules, LotRulesError, LotSpec, LotState, LotStatus, LotView, Standing, UserId,
    Verdict,
};
use crate::crawl::store::stmt;

/// The longest title, in characters: the width of `lots.title`.
pub const MAX_TITLE_CHARS: usize = 200;

/// How many times a bid re-reads the lot after losing a compare-and-set to
/// another writer before it gives up with `busy`. Each loss means someone
/// else's bid went through, so this only runs out under a storm of bids on
/// one lot from several nodes at once (one node's Room serializes its own).
const BID_ATTEMPTS: u32 = 20;

/// The longest random pause, in milliseconds, between two attempts. Random,
/// so that writers who just collided do not collide again in step.
const MAX_RETRY_PAUSE_MS: u64 = 8;

/// How many times an edit re-reads a scheduled lot that changed under it.
const EDIT_ATTEMPTS: u32 = 5;

/// How many lots one `open_due` or `close_due` call moves; the next tick of
/// the Scheduler takes the rest.
const DUE_PER_CALL: u64 = 100;

/// How many ended lots `list_lots` shows, the latest first.
const FINISHED_LISTED: u64 = 50;

/// `lots.outcome` of a lot withdrawn before it ended.
const CANCELLED: &str = "cancelled";

/// A lot as a seller or an admin lists it: what bidders read, and the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub title: String,
    pub description: String,
    pub spec: LotSpec,
}

/// A stored lot: its row, and the rules and state the auction rules work on.
#[derive(Debug, Clone)]
pub struct StoredLot {
    pub rules: LotRules,
    pub state: LotState,
    pub row: lots::Model,
}

impl StoredLot {
    pub fn view(&self) -> LotView {
        self.state.view(&self.rules)
    }
}

/// A lot row that no longer reads back as valid rules and state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lot {id} is stored with {problem}")]
pub struct CorruptLot {
    pub id: i64,
    pub problem: String,
}

/// Why listing, changing, cancelling or reading lots failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the title must be 1 to {MAX_TITLE_CHARS} characters")]
    Title,
    #[error(transparent)]
    Rules(#[from] LotRulesError),
    #[error("the soft-close window must be a whole number of seconds")]
    SoftCloseNotWholeSeconds,
    #[error("there is no lot {0}")]
    NotFound(i64),
    #[error("lot {id} is {}: only a scheduled lot can be changed", .status.as_str())]
    NotScheduled { id: i64, status: LotStatus },
    #[error("lot {id} is {}: only a scheduled or running lot can be cancelled", .status.as_str())]
    NotCancellable { id: i64, status: LotStatus },
    #[error("lot {0} kept changing while it was being edited; try again")]
    Busy(i64),
    #[error(transparent)]
    Corrupt(#[from] CorruptLot),
    #[error("the auction tables could not be read or written")]
    Db(#[from] DbErr),
}

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
    /// The `code` of the `bid` reply (PROTOCOL §1).
    pub fn code(&self) -> &'static str {
        match self {
            PlaceBidError::Refused(refusal) => refusal.code(),
            PlaceBidError::NotFound(_) => "lot_not_found",
            PlaceBidError::Busy(_) => "busy",
            PlaceBidError::Corrupt(_) | PlaceBidError::Db(_) => "internal",
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

/// Lots for the auction index.
#[derive(Debug, Clone, Default)]
pub struct LotLists {
    /// Open for bids, ending soonest first.
    pub running: Vec<lots::Model>,
    /// Scheduled, starting soonest first.
    pub upcoming: Vec<lots::Model>,
    /// Finished or cancelled, the latest end first (at most 50).
    pub finished: Vec<lots::Model>,
}

/// A lot the Scheduler has just opened.
#[derive(Debug, Clone)]
pub struct Opened {
    pub lot_id: i64,
    pub rules: LotRules,
    pub state: LotState,
}

/// A lot the Scheduler has just finished, with its verdict.
#[derive(Debug, Clone)]
pub struct Closed {
    pub lot_id: i64,
    pub rules: LotRules,
    pub closing: Closing,
}

/// Lists a new lot, scheduled to open at its start.
pub async fn create_lot(
    db: &impl ConnectionTrait,
    listing: &Listing,
    created_by: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<lots::Model, StoreError> {
    let rules = parse_listing(listing)?;
    let mut row = listing_columns(listing, &rules)?;
    write_state(&mut row, &LotState::new(&rules));
    row.created_by = Set(created_by);
    row.created_at = Set(now);
    row.updated_at = Set(now);
    Ok(row.insert(db).await?)
}

/// Replaces a scheduled lot's listing. Once it has opened, its rules are
/// what bidders relied on, so they no longer change.
pub async fn update_lot(
    db: &impl ConnectionTrait,
    id: i64,
    listing: &Listing,
    now: DateTime<Utc>,
) -> Result<lots::Model, StoreError> {
    let rules = parse_listing(listing)?;
    for _ in 0..EDIT_ATTEMPTS {
        let lot = find(db, id).await?;
        if lot.state.status != LotStatus::Scheduled {
            return Err(StoreError::NotScheduled {
                id,
                status: lot.state.status,
            });
        }
        let mut row = listing_columns(listing, &rules)?;
        write_state(
            &mut row,
            &LotState {
                version: lot.state.version + 1,
                ..LotState::new(&rules)
            },
        );
        row.updated_at = Set(now);
        // Conditional on the version read, so the Scheduler opening the lot
        // (or another edit) in between is never overwritten.
        let written = lots::Entity::update_many()
            .set(row)
            .filter(lots::Column::Id.eq(id))
            .filter(lots::Column::Version.eq(lot.row.version))
            .exec(db)
            .await?
            .rows_affected;
        if written == 1 {
            return Ok(find(db, id).await?.row);
        }
    }
    Err(StoreError::Busy(id))
}

/// Withdraws a scheduled or running lot: it takes no more bids and has no
/// winner. Any bid in flight loses its compare-and-set and is then refused.
pub async fn cancel_lot(
    db: &impl ConnectionTrait,
    id: i64,
    now: DateTime<Utc>,
) -> Result<lots::Model, StoreError> {
    let cancellable = [LotStatus::Scheduled, LotStatus::Running].map(LotStatus::as_str);
    let written = lots::Entity::update_many()
        .col_expr(
            lots::Column::Status,
            Expr::value(LotStatus::Cancelled.as_str()),
        )
        .col_expr(lots::Column::Outcome, Expr::value(CANCELLED))
        .col_expr(
            lots::Column::Version,
            Expr::col(lots::Column::Version).add(1),
        )
        .col_expr(lots::Column::UpdatedAt, Expr::value(now))
        .filter(lots::Column::Id.eq(id))
        .filter(lots::Column::Status.is_in(cancellable))
        .exec(db)
        .await?
        .rows_affected;
    let lot = find(db, id).await?;
    if written == 0 {
        return Err(StoreError::NotCancellable {
            id,
            status: lot.state.status,
        });
    }
    Ok(lot.row)
}

/// A lot with its rules and state, or `None` when there is no such lot.
pub async fn get_lot(db: &impl ConnectionTrait, id: i64) -> Result<Option<StoredLot>, StoreError> {
    match lots::Entity::find_by_id(id).one(db).await? {
        Some(row) => Ok(Some(stored(row)?)),
        None => Ok(None),
    }
}

/// Running, upcoming and recently ended lots.
pub async fn list_lots(db: &impl ConnectionTrait) -> Result<LotLists, StoreError> {
    let with_status = |status: LotStatus| lots::Column::Status.eq(status.as_str());
    let running = lots::Entity::find()
        .filter(with_status(LotStatus::Running))
        .order_by_asc(lots::Column::EndsAt)
        .order_by_asc(lots::Column::Id)
        .all(db)
        .await?;
    let upcoming = lots::Entity::find()
        .filter(with_status(LotStatus::Scheduled))
        .order_by_asc(lots::Column::StartsAt)
        .order_by_asc(lots::Column::Id)
        .all(db)
        .await?;
    let ended = [LotStatus::Finished, LotStatus::Cancelled].map(LotStatus::as_str);
    let finished = lots::Entity::find()
        .filter(lots::Column::Status.is_in(ended))
        .order_by_desc(lots::Column::EndsAt)
        .order_by_desc(lots::Column::Id)
        .limit(FINISHED_LISTED)
        .all(db)
        .await?;
    Ok(LotLists {
        running,
        upcoming,
        finished,
    })
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

/// Opens every scheduled lot whose start has come. Each opening is
/// conditional on the status and version read, so when several nodes run
/// this at once, each lot opens on exactly one of them.
pub async fn open_due(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<Opened>, DbErr> {
    let due = lots::Entity::find()
        .filter(lots::Column::Status.eq(LotStatus::Scheduled.as_str()))
        .filter(lots::Column::StartsAt.lte(now))
        .order_by_asc(lots::Column::StartsAt)
        .limit(DUE_PER_CALL)
        .all(db)
        .await?;
    let mut opened = Vec::new();
    for row in due {
        let Some((rules, state)) = readable(&row) else {
            continue;
        };
        let Some(next) = open(&rules, &state, now) else {
            continue;
        };
        if transition(db, &row, &next, None, now).await? {
            opened.push(Opened {
                lot_id: row.id,
                rules,
                state: next,
            });
        }
    }
    Ok(opened)
}

/// Finishes every running lot whose (possibly extended) end has come, and
/// records its winner, final price and outcome; exactly once across nodes,
/// like `open_due`. A lot a bid changed in between is left for the next call,
/// which judges its new end.
pub async fn close_due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<Closed>, DbErr> {
    let due = lots::Entity::find()
        .filter(lots::Column::Status.eq(LotStatus::Running.as_str()))
        .filter(lots::Column::EndsAt.lte(now))
        .order_by_asc(lots::Column::EndsAt)
        .limit(DUE_PER_CALL)
        .all(db)
        .await?;
    let mut closed = Vec::new();
    for row in due {
        let Some((rules, state)) = readable(&row) else {
            continue;
        };
        let Some(closing) = close(&rules, &state, now) else {
            continue;
        };
        if transition(db, &row, &closing.state, Some(closing.verdict), now).await? {
            closed.push(Closed {
                lot_id: row.id,
                rules,
                closing,
            });
        }
    }
    Ok(closed)
}

/// Moves a lot to `next`'s status if nobody changed it since `row` was read;
/// whether this call did it.
async fn transition(
    db: &impl ConnectionTrait,
    row: &lots::Model,
    next: &LotState,
    verdict: Option<Verdict>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut changes = lots::ActiveModel {
        status: Set(next.status.as_str().to_owned()),
        version: Set(to_i64(next.version)),
        updated_at: Set(now),
        ..Default::default()
    };
    if let Some(verdict) = verdict {
        let (winner, final_cents, outcome) = match verdict {
            Verdict::Sold {
                winner,
                final_cents,
            } => (Some(winner), Some(final_cents), "sold"),
            Verdict::ReserveNotMet { final_cents, .. } => {
                (None, Some(final_cents), "reserve_not_met")
            }
            Verdict::NoBids => (None, None, "no_bids"),
        };
        changes.winner_id = Set(winner);
        changes.final_cents = Set(final_cents);
        changes.outcome = Set(Some(outcome.to_owned()));
    }
    let written = lots::Entity::update_many()
        .set(changes)
        .filter(lots::Column::Id.eq(row.id))
        .filter(lots::Column::Status.eq(row.status.as_str()))
        .filter(lots::Column::Version.eq(row.version))
        .exec(db)
        .await?
        .rows_affected;
    Ok(written == 1)
}

/// The rules and state of a lot row, or why they do not hold.
pub fn rules_and_state(row: &lots::Model) -> Result<(LotRules, LotState), CorruptLot> {
    let corrupt = |problem: String| CorruptLot {
        id: row.id,
        problem,
    };
    let increments: Increments = serde_json::from_str(&row.increments)
        .map_err(|e| corrupt(format!("increments that do not parse: {e}")))?;
    let soft_close = TimeDelta::try_seconds(row.soft_close_secs)
        .ok_or_else(|| corrupt(format!("a soft close of {} s", row.soft_close_secs)))?;
    let rules = LotRules::parse(LotSpec {
        currency: row.currency.clone(),
        starting_cents: row.starting_cents,
        reserve_cents: row.reserve_cents,
        increments,
        starts_at: row.starts_at,
        ends_at: row.listed_ends_at,
        hard_end: row.hard_end,
        soft_close,
    })
    .map_err(|e| corrupt(format!("rules that do not hold: {e}")))?;
    let status = [
        LotStatus::Scheduled,
        LotStatus::Running,
        LotStatus::Finished,
        LotStatus::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str() == row.status)
    .ok_or_else(|| corrupt(format!("the unknown status {:?}", row.status)))?;
    let leader = match (
        row.leader_id,
        row.leader_max_cents,
        row.leader_max_placed_at,
    ) {
        (Some(user_id), Some(max_cents), Some(max_placed_at)) => Some(Leader {
            user_id,
            max_cents,
            max_placed_at,
        }),
        (None, None, None) => None,
        _ => return Err(corrupt("a leader with missing fields".into())),
    };
    let count = |n: i64, what: &str| {
        u64::try_from(n).map_err(|_| corrupt(format!("a negative {what} ({n})")))
    };
    let state = LotState {
        status,
        ends_at: row.ends_at,
        current_cents: row.current_cents,
        leader,
        bid_count: count(row.bid_count, "bid count")?,
        version: count(row.version, "version")?,
    };
    Ok((rules, state))
}

/// The listing's rules, once its title and soft close fit the table.
fn parse_listing(listing: &Listing) -> Result<LotRules, StoreError> {
    let title_chars = listing.title.trim().chars().count();
    if !(1..=MAX_TITLE_CHARS).contains(&title_chars) {
        return Err(StoreError::Title);
    }
    if listing.spec.soft_close.subsec_nanos() != 0 {
        return Err(StoreError::SoftCloseNotWholeSeconds);
    }
    Ok(LotRules::parse(listing.spec.clone())?)
}

/// The columns a listing fills: its text and its rules.
fn listing_columns(listing: &Listing, rules: &LotRules) -> Result<lots::ActiveModel, DbErr> {
    let increments = serde_json::to_string(rules.increments())
        .map_err(|e| DbErr::Custom(format!("could not encode the increments: {e}")))?;
    Ok(lots::ActiveModel {
        title: Set(listing.title.trim().to_owned()),
        description: Set(listing.description.clone()),
        currency: Set(rules.currency().to_owned()),
        starting_cents: Set(rules.starting_cents()),
        reserve_cents: Set(rules.reserve_cents()),
        increments: Set(increments),
        starts_at: Set(rules.starts_at()),
        listed_ends_at: Set(rules.ends_at()),
        hard_end: Set(rules.hard_end()),
        soft_close_secs: Set(rules.soft_close().num_seconds()),
        ..Default::default()
    })
}

/// Sets the columns that hold a lot's state.
fn write_state(row: &mut lots::ActiveModel, state: &LotState) {
    row.status = Set(state.status.as_str().to_owned());
    row.ends_at = Set(state.ends_at);
    row.current_cents = Set(state.current_cents);
    row.leader_id = Set(state.leader.map(|l| l.user_id));
    row.leader_max_cents = Set(state.leader.map(|l| l.max_cents));
    row.leader_max_placed_at = Set(state.leader.map(|l| l.max_placed_at));
    row.bid_count = Set(to_i64(state.bid_count));
    row.version = Set(to_i64(state.version));
}

/// The lot with id `id`, read back as rules and state.
async fn find(db: &impl ConnectionTrait, id: i64) -> Result<StoredLot, StoreError> {
    let row = lots::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(StoreError::NotFound(id))?;
    Ok(stored(row)?)
}

fn stored(row: lots::Model) -> Result<StoredLot, CorruptLot> {
    let (rules, state) = rules_and_state(&row)?;
    Ok(StoredLot { rules, state, row })
}

/// A due lot's rules and state; a corrupt row is logged and skipped, so it
/// does not hold up every other lot's transition.
fn readable(row: &lots::Model) -> Option<(LotRules, LotState)> {
    rules_and_state(row)
        .inspect_err(|err| tracing::error!(error = %err, "skipping a lot that cannot be read"))
        .ok()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
