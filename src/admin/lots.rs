//! Auction lots as admins see them: every lot newest first, optionally of one
//! status, with what bidders never see (the reserve and whether the price
//! has met it) and, once sold, the winner's name.

use entity::lots;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{offset, Page, PER_PAGE};
use crate::accounts;
use crate::auction::store::{rules_and_state, StoreError, StoredLot};
use crate::auction::LotStatus;

/// Every status, in a lot's order of life.
pub const STATUSES: [LotStatus; 4] = [
    LotStatus::Scheduled,
    LotStatus::Running,
    LotStatus::Finished,
    LotStatus::Cancelled,
];

/// The status `/admin/auctions?status=` names, or why it is not one.
pub fn parse_status(text: &str) -> Result<Option<LotStatus>, String> {
    super::one_of("status", text, &STATUSES, LotStatus::as_str)
}

/// A lot on the admin list.
#[derive(Debug, Clone)]
pub struct ListedLot {
    pub lot: StoredLot,
    /// The winner's display name, once sold.
    pub winner: Option<String>,
}

impl ListedLot {
    /// Whether the price has reached the reserve; `None` without a reserve.
    pub fn reserve_met(&self) -> Option<bool> {
        let rules = &self.lot.rules;
        rules
            .reserve_cents()
            .map(|_| self.lot.state.reserve_met(rules))
    }

    /// Whether soft close has moved the end past the listed one.
    pub fn extended(&self) -> bool {
        self.lot.state.ends_at != self.lot.rules.ends_at()
    }
}

/// Newest first, optionally of one status. A row that no longer reads back
/// as rules and state fails the whole page, as it fails the lot's own page.
pub async fn list(
    db: &impl ConnectionTrait,
    status: Option<LotStatus>,
    page: u64,
) -> Result<Page<ListedLot>, StoreError> {
    let page = page.max(1);
    let mut query = lots::Entity::find();
    if let Some(status) = status {
        query = query.filter(lots::Column::Status.eq(status));
    }
    let total = query.clone().count(db).await?;
    let rows = query
        .order_by_desc(lots::Column::Id)
        .offset(offset(page))
        .limit(PER_PAGE)
        .all(db)
        .await?;
    // One query for the page's winners rather than one per lot.
    let names = accounts::store::display_names(db, rows.iter().filter_map(|r| r.winner_id)).await?;
    let items = rows
        .into_iter()
        .map(|row| {
            let (rules, state) = rules_and_state(&row)?;
            Ok(ListedLot {
                winner: row.winner_id.and_then(|id| names.get(&id).cloned()),
                lot: StoredLot { rules, state, row },
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Page::new(items, page, total))
}
