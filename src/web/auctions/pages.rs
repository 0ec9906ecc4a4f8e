//! The pages everyone sees: the list of lots and a lot's room.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{DateTime, TimeDelta, Utc};
use entity::lots;
use sea_orm::DatabaseConnection;

use crate::accounts;
use crate::auction::store::{self, BidRecord, StoredLot};
use crate::auction::LotStatus;
use crate::clock;
use crate::domain::money::{units, Money};
use crate::domain::topic::Topic;
use crate::web::accounts::login_url;
use crate::web::error::PageError;
use crate::web::session::MaybeViewer;
use crate::web::{html, Nav};

/// Bid rows the lot page shows; the room's join reply sends as many, so
/// the page looks the same before and after the script takes over.
const HISTORY_SHOWN: u64 = 50;

/// An amount as the auction pages write it: `13.50 EUR`, the same text as
/// the room's messages ("the minimum next bid is 13.50 EUR") and auction.js.
pub(crate) fn amount(cents: i64, currency: &str) -> String {
    Money::new(cents, currency).with_code()
}

/// A time for people (UTC, to the second) and for machines (RFC 3339).
pub struct Stamp {
    pub iso: String,
    pub text: String,
}

impl Stamp {
    fn of(at: DateTime<Utc>) -> Stamp {
        Stamp {
            iso: crate::protocol::client::time(at),
            text: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }
}

/// A span of time as a countdown shows it: `2d 3h`, `3h 12m`, `4m 10s`, `12s`.
pub(crate) fn span(d: TimeDelta) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// How an ended lot ended, in words; `winner` is the buyer's display name.
pub(crate) fn outcome_text(row: &lots::Model, winner: Option<&str>) -> String {
    let price = |cents: Option<i64>| amount(cents.unwrap_or(row.current_cents), &row.currency);
    match row.outcome.as_deref() {
        Some("sold") => match winner {
            Some(name) => format!("Sold to {name} for {}", price(row.final_cents)),
            None => format!("Sold for {}", price(row.final_cents)),
        },
        Some("reserve_not_met") => format!(
            "Not sold: the reserve was not met (highest bid {})",
            price(row.final_cents)
        ),
        Some("no_bids") => "Not sold: there were no bids".to_owned(),
        Some("cancelled") => "Cancelled: this lot was withdrawn".to_owned(),
        _ => "Ended".to_owned(),
    }
}

fn store_failed(err: store::StoreError) -> PageError {
    PageError::Internal(anyhow::Error::new(err).context("reading the auction lots"))
}

/// A lot in one of the list's sections.
pub struct LotRow {
    pub id: i64,
    pub title: String,
    /// The current bid, the starting price, or the final price.
    pub price: String,
    pub bids: i64,
    /// When it ends (running) or starts (upcoming) or ended.
    pub at: Stamp,
    /// How long until then, for running and upcoming lots.
    pub until: String,
    /// How an ended lot ended.
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "auctions.html")]
struct AuctionsPage {
    nav: Nav,
    admin: bool,
    running: Vec<LotRow>,
    upcoming: Vec<LotRow>,
    finished: Vec<LotRow>,
}

/// `GET /auctions`
pub async fn index(
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let lists = store::list_lots(db.get_ref()).await.map_err(store_failed)?;
    let now = clock::now();
    let winners = accounts::store::display_names(
        db.get_ref(),
        lists.finished.iter().filter_map(|r| r.winner_id),
    )
    .await?;
    let row = |lot: &lots::Model, at: DateTime<Utc>| LotRow {
        id: lot.id,
        title: lot.title.clone(),
        price: amount(lot.current_cents, &lot.currency),
        bids: lot.bid_count,
        at: Stamp::of(at),
        until: span(at - now),
        outcome: String::new(),
    };
    let page = AuctionsPage {
        admin: viewer.account().is_some_and(|a| a.is_admin),
        nav: Nav::from(&viewer),
        running: lists.running.iter().map(|l| row(l, l.ends_at)).collect(),
        upcoming: lists.upcoming.iter().map(|l| row(l, l.starts_at)).collect(),
        finished: lists
            .finished
            .iter()
            .map(|l| {
                let winner = l.winner_id.and_then(|id| winners.get(&id));
                LotRow {
                    price: match l.final_cents {
                        Some(cents) => amount(cents, &l.currency),
                        None => String::new(),
                    },
                    outcome: outcome_text(l, winner.map(String::as_str)),
                    // A cancelled lot ended when it was withdrawn, not when
                    // it was listed to end.
                    ..row(
                        l,
                        if l.status == LotStatus::Cancelled {
                            l.updated_at
                        } else {
                            l.ends_at
                        },
                    )
                }
            })
            .collect(),
    };
    Ok(html(page.render()?))
}

/// One row of a lot's bid history.
pub struct BidRow {
    pub seq: i64,
    pub bidder: String,
    pub amount: String,
    pub proxy: bool,
    pub at: Stamp,
}

impl BidRow {
    fn of(record: &BidRecord, currency: &str) -> BidRow {
        BidRow {
            seq: record.seq,
            bidder: record.bidder_name.clone(),
            amount: amount(record.amount_cents, currency),
            proxy: record.proxy,
            at: Stamp::of(record.placed_at),
        }
    }
}

/// What an admin may do with the lot on its page.
pub struct AdminTools {
    pub csrf: String,
    pub editable: bool,
    pub cancellable: bool,
}

#[derive(Template)]
#[template(path = "auction.html")]
struct LotPage {
    nav: Nav,
    id: i64,
    topic: String,
    title: String,
    description: String,
    /// `scheduled`, `running`, `finished` or `cancelled`, as on the wire.
    status: &'static str,
    status_label: &'static str,
    currency: String,
    price: String,
    /// Whether the price is a bid yet, or still the starting price.
    has_bids: bool,
    leader: Option<String>,
    you_lead: bool,
    min_next: String,
    min_next_units: String,
    bid_count: u64,
    /// `Some(met)` when the lot has a (hidden) reserve.
    reserve_met: Option<bool>,
    starts_at: Stamp,
    ends_at: Stamp,
    hard_end: Stamp,
    soft_close_secs: i64,
    /// Before it ends: how long until it starts (scheduled) or ends (running).
    until: String,
    version: u64,
    outcome: Option<String>,
    bids: Vec<BidRow>,
    /// The viewer's display name, when logged in: then it may bid.
    user: Option<String>,
    login: String,
    admin: Option<AdminTools>,
}

fn status_label(status: LotStatus) -> &'static str {
    match status {
        LotStatus::Scheduled => "Not open yet",
        LotStatus::Running => "Open for bids",
        LotStatus::Finished => "Ended",
        LotStatus::Cancelled => "Cancelled",
    }
}

/// The lot behind a path segment, or 404.
pub(super) async fn find_lot(db: &DatabaseConnection, raw: &str) -> Result<StoredLot, PageError> {
    let id: i64 = raw.parse().map_err(|_| PageError::NotFound)?;
    store::get_lot(db, id)
        .await
        .map_err(store_failed)?
        .ok_or(PageError::NotFound)
}

/// `GET /auctions/{id}`
pub async fn show(
    path: web::Path<String>,
    viewer: MaybeViewer,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, PageError> {
    let lot = find_lot(&db, &path).await?;
    let view = lot.view();
    let row = &lot.row;
    let names =
        accounts::store::display_names(db.get_ref(), view.leader.into_iter().chain(row.winner_id))
            .await?;
    let bids = store::bids_for(db.get_ref(), row.id, HISTORY_SHOWN).await?;
    let now = clock::now();
    let ended = matches!(view.status, LotStatus::Finished | LotStatus::Cancelled);
    let until = match view.status {
        LotStatus::Scheduled => span(lot.rules.starts_at() - now),
        LotStatus::Running => span(view.ends_at - now),
        _ => String::new(),
    };
    let you = viewer.account().map(|a| a.id);
    let page = LotPage {
        id: row.id,
        // Lot ids are positive: the database hands them out from 1.
        topic: Topic::Auction(row.id.unsigned_abs()).to_string(),
        title: row.title.clone(),
        description: row.description.clone(),
        status: view.status.as_str(),
        status_label: status_label(view.status),
        price: amount(view.current_cents, &view.currency),
        has_bids: view.leader.is_some(),
        leader: view.leader.and_then(|id| names.get(&id).cloned()),
        you_lead: you.is_some() && you == view.leader,
        min_next: amount(view.min_next_cents, &view.currency),
        min_next_units: units(view.min_next_cents),
        bid_count: view.bid_count,
        reserve_met: lot.rules.reserve_cents().map(|_| view.reserve_met),
        starts_at: Stamp::of(lot.rules.starts_at()),
        ends_at: Stamp::of(view.ends_at),
        hard_end: Stamp::of(lot.rules.hard_end()),
        soft_close_secs: lot.rules.soft_close().num_seconds(),
        until,
        version: view.version,
        outcome: ended.then(|| {
            let winner = row.winner_id.and_then(|id| names.get(&id));
            outcome_text(row, winner.map(String::as_str))
        }),
        bids: bids.iter().map(|b| BidRow::of(b, &view.currency)).collect(),
        user: viewer.account().map(|a| a.display_name.clone()),
        login: login_url(&format!("/auctions/{}", row.id)),
        admin: viewer
            .0
            .as_ref()
            .filter(|v| v.account.is_admin)
            .map(|v| AdminTools {
                csrf: v.csrf.clone(),
                editable: view.status == LotStatus::Scheduled,
                cancellable: matches!(view.status, LotStatus::Scheduled | LotStatus::Running),
            }),
        currency: view.currency,
        nav: Nav::from(&viewer),
    };
    Ok(html(page.render()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_show_the_two_largest_units() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (61, "1m 1s"),
            (3_600 + 120, "1h 2m"),
            (2 * 86_400 + 3 * 3_600 + 59, "2d 3h"),
            (-5, "0s"),
        ];
        for (secs, text) in cases {
            assert_eq!(span(TimeDelta::seconds(secs)), text, "{secs}");
        }
    }

    #[test]
    fn amounts_carry_the_currency_code() {
        assert_eq!(amount(1_350, "EUR"), "13.50 EUR");
        assert_eq!(amount(5, "USD"), "0.05 USD");
    }
}
