//! Lots as sellers and admins manage them: listing a new lot, editing it
//! while it is scheduled, cancelling it, and reading lots back for the
//! pages. An edit is conditional on the version it read, so it never
//! overwrites a bid or the Scheduler opening the lot in between.

use chrono::{DateTime, Utc};
use entity::lots;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::row::{rules_and_state, write_state, CorruptLot};
use crate::auction::{LotRules, LotRulesError, LotSpec, LotState, LotStatus, LotView, UserId};

/// The longest title, in characters: the width of `lots.title`.
pub const MAX_TITLE_CHARS: usize = 200;

/// How many times an edit re-reads a scheduled lot that changed under it.
const EDIT_ATTEMPTS: u32 = 5;

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
    let written = lots::Entity::update_many()
        .col_expr(lots::Column::Status, Expr::value(LotStatus::Cancelled))
        .col_expr(lots::Column::Outcome, Expr::value(CANCELLED))
        .col_expr(
            lots::Column::Version,
            Expr::col(lots::Column::Version).add(1),
        )
        .col_expr(lots::Column::UpdatedAt, Expr::value(now))
        .filter(lots::Column::Id.eq(id))
        .filter(lots::Column::Status.is_in([LotStatus::Scheduled, LotStatus::Running]))
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
    let with_status = |status: LotStatus| lots::Column::Status.eq(status);
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
    let finished = lots::Entity::find()
        .filter(lots::Column::Status.is_in([LotStatus::Finished, LotStatus::Cancelled]))
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
