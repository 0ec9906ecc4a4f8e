//! The auction store on real databases (docs/architecture.md §3): lots read
//! back as they were listed, a bid is a compare-and-set on the lot's `version`
//! that concurrent writers on two connection pools (two server processes) never
//! break, and the Scheduler's transitions happen exactly once.

use bazaar::auction::store::{self, Listing, PlaceBidError, PlacedBid};
use bazaar::auction::{
    BidError, Increments, LotRules, LotSpec, LotState, LotStatus, Standing, Tier, Verdict,
};
use bazaar::protocol::ErrorCode;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use entity::{bids, lots, users};
use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};

use crate::helpers::{postgres, Backend};
use crate::on_both_backends;

/// A fresh, migrated database, and a second connection pool on it, as a
/// second server process would have.
struct TestDb {
    db: DatabaseConnection,
    other: DatabaseConnection,
    /// Holds the SQLite file until the test ends.
    _dir: tempfile::TempDir,
}

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bazaar.db").display()
            ),
            Backend::Postgres => postgres().create_database().await,
        };
        let db = bazaar::db::connect(&url).await.expect("first pool");
        let other = bazaar::db::connect(&url).await.expect("second pool");
        TestDb {
            db,
            other,
            _dir: dir,
        }
    }

    /// Accounts that can bid, by id.
    async fn users(&self, names: &[&str]) -> Vec<i64> {
        let mut ids = Vec::new();
        for name in names {
            let user = users::ActiveModel {
                name: Set((*name).to_owned()),
                display_name: Set(format!("{name} (display)")),
                password_hash: Set("not a hash".into()),
                is_admin: Set(false),
                created_at: Set(at(-3_600)),
                updated_at: Set(at(-3_600)),
                ..Default::default()
            }
            .insert(&self.db)
            .await
            .expect("insert user");
            ids.push(user.id);
        }
        ids
    }

    async fn lot(&self, id: i64) -> store::StoredLot {
        store::get_lot(&self.db, id)
            .await
            .expect("read lot")
            .expect("the lot exists")
    }

    /// Every bid row of a lot, in the order the bids happened.
    async fn bid_rows(&self, lot_id: i64) -> Vec<bids::Model> {
        bids::Entity::find()
            .filter(bids::Column::LotId.eq(lot_id))
            .order_by_asc(bids::Column::Seq)
            .order_by_asc(bids::Column::Ord)
            .all(&self.db)
            .await
            .expect("read bids")
    }
}

/// `seconds` after the lots open (2026-11-23 19:00:00 UTC).
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 19, 0, 0)
        .single()
        .expect("a valid time")
        + TimeDelta::seconds(seconds)
}

/// A lot in EUR from 10.00 with the default increments, open for five
/// minutes, a one-minute soft close and a hard end at fifteen minutes.
fn listing() -> Listing {
    Listing {
        title: "Boxed SNES, PAL".into(),
        description: "Two controllers, no scratches.".into(),
        spec: LotSpec {
            currency: "EUR".into(),
            starting_cents: 1_000,
            reserve_cents: None,
            increments: Increments::default(),
            starts_at: at(0),
            ends_at: at(300),
            hard_end: at(900),
            soft_close: TimeDelta::seconds(60),
        },
    }
}

/// Lists a lot and opens it: running at version 1.
async fn running_lot(t: &TestDb, listing: &Listing) -> i64 {
    let lot = store::create_lot(&t.db, listing, None, at(-60))
        .await
        .expect("list the lot");
    let opened = store::open_due(&t.db, listing.spec.starts_at)
        .await
        .expect("open");
    assert!(opened.iter().any(|o| o.lot_id == lot.id), "{opened:?}");
    lot.id
}

async fn accept(
    t: &TestDb,
    lot: i64,
    bidder: i64,
    amount: i64,
    max: Option<i64>,
    now: DateTime<Utc>,
) -> PlacedBid {
    store::place_bid(&t.db, lot, bidder, amount, max, now)
        .await
        .unwrap_or_else(|e| panic!("{amount} (max {max:?}) by {bidder} was refused: {e}"))
}

/// (bidder, amount, proxy) of stored rows.
fn moves(rows: &[bids::Model]) -> Vec<(i64, i64, bool)> {
    rows.iter()
        .map(|r| (r.user_id, r.amount_cents, r.proxy))
        .collect()
}

on_both_backends!(a_listed_lot_reads_back_with_its_hidden_reserve_and_increments);
async fn a_listed_lot_reads_back_with_its_hidden_reserve_and_increments(backend: Backend) {
    // Arrange
    let t = TestDb::new(backend).await;
    let seller = t.users(&["sam"]).await[0];
    let increments = Increments::new(vec![
        Tier {
            from_cents: 0,
            step_cents: 10,
        },
        Tier {
            from_cents: 2_000,
            step_cents: 100,
        },
    ])
    .expect("valid increments");
    let mut listed = listing();
    listed.spec.reserve_cents = Some(5_000);
    listed.spec.increments = increments.clone();

    // Act
    let created = store::create_lot(&t.db, &listed, Some(seller), at(-60))
        .await
        .expect("list the lot");
    let read = t.lot(created.id).await;

    // Assert: the rules and a fresh state come back; the reserve is stored
    // but never shown.
    let rules = LotRules::parse(listed.spec.clone()).expect("valid spec");
    assert_eq!(read.rules, rules);
    assert_eq!(read.state, LotState::new(&rules));
    assert_eq!(read.row.reserve_cents, Some(5_000));
    assert_eq!(read.row.title, "Boxed SNES, PAL");
    assert_eq!(read.row.description, "Two controllers, no scratches.");
    assert_eq!(read.row.created_by, Some(seller));
    assert_eq!(read.row.status, LotStatus::Scheduled);
    let stored_increments: Increments =
        serde_json::from_str(&read.row.increments).expect("increments are JSON");
    assert_eq!(stored_increments, increments);
    let view = serde_json::to_string(&read.view()).expect("view serializes");
    assert!(!view.contains("5000"), "{view}");
    let lists = store::list_lots(&t.db).await.expect("list lots");
    assert_eq!(
        lists.upcoming.iter().map(|l| l.id).collect::<Vec<_>>(),
        [created.id]
    );
    assert!(lists.running.is_empty() && lists.finished.is_empty());
}

on_both_backends!(a_proxy_war_writes_each_price_move_under_its_bids_version);
async fn a_proxy_war_writes_each_price_move_under_its_bids_version(backend: Backend) {
    // Arrange: a running lot (version 1) and two bidders.
    let t = TestDb::new(backend).await;
    let ids = t.users(&["ana", "bob"]).await;
    let (ana, bob) = (ids[0], ids[1]);
    let lot = running_lot(&t, &listing()).await;

    // Act: ana leads with a proxy up to 50.00; bob bids into it, then over
    // it with his own proxy; ana answers above bob's maximum.
    let first = accept(&t, lot, ana, 1_000, Some(5_000), at(10)).await;
    let into_proxy = accept(&t, lot, bob, 2_000, None, at(20)).await;
    let over_proxy = accept(&t, lot, bob, 6_000, Some(8_000), at(30)).await;
    let answer = accept(&t, lot, ana, 9_000, None, at(40)).await;

    // Assert: each bid wrote its price moves under the version it made.
    assert_eq!(moves(&first.rows), [(ana, 1_000, false)]);
    assert_eq!(first.standing, Standing::Leading { displaced: None });
    assert_eq!(
        moves(&into_proxy.rows),
        [(bob, 2_000, false), (ana, 2_050, true)]
    );
    assert_eq!(into_proxy.standing, Standing::Outbid { leader: ana });
    assert_eq!(into_proxy.displaced, None);
    assert_eq!(
        moves(&over_proxy.rows),
        [(ana, 5_000, true), (bob, 6_000, false)]
    );
    assert_eq!(over_proxy.displaced, Some(ana));
    assert_eq!(
        moves(&answer.rows),
        [(bob, 8_000, true), (ana, 9_000, false)]
    );
    assert_eq!(answer.displaced, Some(bob));
    for (placed, version) in [
        (&first, 2),
        (&into_proxy, 3),
        (&over_proxy, 4),
        (&answer, 5),
    ] {
        assert_eq!(placed.state.version, version);
        let seqs: Vec<(i64, i16)> = placed.rows.iter().map(|r| (r.seq, r.ord)).collect();
        let expected: Vec<(i64, i16)> = (0..placed.rows.len() as i16)
            .map(|ord| (version as i64, ord))
            .collect();
        assert_eq!(seqs, expected, "one seq per bid, rows in order");
    }
    // Only the bidder's own rows keep the maximum they set.
    assert_eq!(over_proxy.rows[0].max_cents, None);
    assert_eq!(over_proxy.rows[1].max_cents, Some(8_000));

    let read = t.lot(lot).await;
    assert_eq!(read.state, answer.state);
    assert_eq!(read.state.current_cents, 9_000);
    assert_eq!(read.state.leader.map(|l| l.user_id), Some(ana));
    assert_eq!(read.state.bid_count, 7);
    assert_eq!(read.state.version, 5);
    let history = store::bids_for(&t.db, lot, 3).await.expect("history");
    let newest: Vec<(i64, &str, i64)> = history
        .iter()
        .map(|b| (b.seq, b.bidder_name.as_str(), b.amount_cents))
        .collect();
    assert_eq!(
        newest,
        [
            (5, "ana (display)", 9_000),
            (5, "bob (display)", 8_000),
            (4, "bob (display)", 6_000)
        ]
    );
    assert_eq!(t.bid_rows(lot).await.len(), 7);
}

on_both_backends!(concurrent_bidders_on_two_connections_never_break_the_price_or_the_sequence);
async fn concurrent_bidders_on_two_connections_never_break_the_price_or_the_sequence(
    backend: Backend,
) {
    // Arrange: eight bidders, half on each pool, each bidding twenty times
    // around the minimum they last saw, sometimes with a maximum.
    const BIDDERS: usize = 8;
    const BIDS_EACH: i64 = 20;
    let t = TestDb::new(backend).await;
    let names: Vec<String> = (0..BIDDERS).map(|i| format!("bidder{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let bidders = t.users(&names).await;
    let mut listed = listing();
    listed.spec.ends_at = at(3_600);
    listed.spec.hard_end = at(3_600);
    let lot = running_lot(&t, &listed).await;

    // Act
    let tasks = bidders.iter().enumerate().map(|(i, &bidder)| {
        let db = if i % 2 == 0 { &t.db } else { &t.other };
        async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let mut results = Vec::new();
            for n in 0..BIDS_EACH {
                let seen = store::get_lot(db, lot).await.expect("read").expect("lot");
                let min_next = seen.state.min_next_cents(&seen.rules);
                let step = seen.rules.increments().step_at(seen.state.current_cents);
                let amount = min_next + step * rng.random_range(-1..=2);
                let max = rng
                    .random_bool(0.3)
                    .then(|| amount + step * rng.random_range(0..=6));
                let now = at(100 + n);
                let result = store::place_bid(db, lot, bidder, amount, max, now).await;
                results.push((max.unwrap_or(amount), result));
            }
            results
        }
    });
    let results: Vec<(i64, Result<PlacedBid, PlaceBidError>)> =
        join_all(tasks).await.into_iter().flatten().collect();

    // Assert: only the rules refused bids, never a lost race.
    let mut accepted: Vec<(i64, PlacedBid)> = Vec::new();
    for (max, result) in results {
        match result {
            Ok(placed) => accepted.push((max, placed)),
            Err(PlaceBidError::Refused(
                BidError::BidTooLow { .. } | BidError::OwnBidIsHighest { .. },
            )) => {}
            Err(other) => panic!("a bid failed for another reason: {other} ({other:?})"),
        }
    }
    assert!(
        accepted.len() >= 10,
        "only {} bids went through",
        accepted.len()
    );
    accepted.sort_by_key(|(_, p)| p.state.version);
    // Every accepted bid made exactly one new version: gap-free from 2.
    let versions: Vec<u64> = accepted.iter().map(|(_, p)| p.state.version).collect();
    let expected: Vec<u64> = (2..2 + accepted.len() as u64).collect();
    assert_eq!(versions, expected);
    // The visible price never falls from one version to the next.
    for pair in accepted.windows(2) {
        assert!(
            pair[1].1.state.current_cents >= pair[0].1.state.current_cents,
            "the price fell from {} to {}",
            pair[0].1.state.current_cents,
            pair[1].1.state.current_cents
        );
    }
    // The stored rows are exactly the returned rows, under their versions,
    // and their amounts never fall.
    let returned: Vec<bids::Model> = accepted
        .iter()
        .flat_map(|(_, p)| p.rows.iter().cloned())
        .collect();
    for (_, placed) in &accepted {
        let seq = placed.state.version as i64;
        assert!(placed.rows.iter().all(|r| r.seq == seq), "{placed:?}");
    }
    let stored = t.bid_rows(lot).await;
    assert_eq!(stored, returned);
    assert!(stored
        .windows(2)
        .all(|w| w[0].amount_cents <= w[1].amount_cents));
    // One leader: the last accepted state is the stored one, led by the
    // highest maximum anyone placed.
    let last = &accepted.last().expect("some bids").1.state;
    let read = t.lot(lot).await;
    assert_eq!(&read.state, last);
    assert_eq!(read.state.bid_count, stored.len() as u64);
    let highest = accepted.iter().map(|(max, _)| *max).max();
    assert_eq!(read.state.leader.map(|l| l.max_cents), highest);
}

on_both_backends!(opening_and_closing_happen_exactly_once_when_schedulers_race);
async fn opening_and_closing_happen_exactly_once_when_schedulers_race(backend: Backend) {
    // Arrange: five lots due to open, one with a reserve.
    let t = TestDb::new(backend).await;
    let ids = t.users(&["ana", "bob"]).await;
    let (ana, bob) = (ids[0], ids[1]);
    let mut lots_listed = Vec::new();
    for i in 0..5 {
        let mut listed = listing();
        if i == 1 {
            listed.spec.reserve_cents = Some(5_000);
        }
        let lot = store::create_lot(&t.db, &listed, None, at(-60))
            .await
            .expect("list");
        lots_listed.push(lot.id);
    }
    let pools = [&t.db, &t.other];

    // Act: six schedulers open at once, then bids come, then six close.
    let opened = join_all((0..6).map(|i| store::open_due(pools[i % 2], at(0)))).await;
    accept(&t, lots_listed[0], ana, 1_500, None, at(10)).await;
    accept(&t, lots_listed[1], bob, 2_000, None, at(10)).await;
    let closed = join_all((0..6).map(|i| store::close_due(pools[i % 2], at(300)))).await;
    let closed_again = store::close_due(&t.db, at(400)).await.expect("close");

    // Assert: each lot opened once and closed once, with its verdict stored.
    let mut opened_ids: Vec<i64> = opened
        .into_iter()
        .flat_map(|r| r.expect("open_due"))
        .map(|o| {
            assert_eq!((o.state.status, o.state.version), (LotStatus::Running, 1));
            o.lot_id
        })
        .collect();
    opened_ids.sort_unstable();
    assert_eq!(opened_ids, lots_listed);
    let mut closed: Vec<store::Closed> = closed
        .into_iter()
        .flat_map(|r| r.expect("close_due"))
        .collect();
    closed.sort_by_key(|c| c.lot_id);
    assert_eq!(
        closed.iter().map(|c| c.lot_id).collect::<Vec<_>>(),
        lots_listed
    );
    assert_eq!(
        closed[0].closing.verdict,
        Verdict::Sold {
            winner: ana,
            final_cents: 1_500
        }
    );
    assert_eq!(
        closed[1].closing.verdict,
        Verdict::ReserveNotMet {
            leader: bob,
            final_cents: 2_000
        }
    );
    assert_eq!(closed[2].closing.verdict, Verdict::NoBids);
    assert!(closed_again.is_empty());

    let rows = lots::Entity::find()
        .order_by_asc(lots::Column::Id)
        .all(&t.db)
        .await
        .expect("lots");
    let record: Vec<_> = rows
        .iter()
        .map(|l| {
            (
                l.status.as_str(),
                l.version,
                l.winner_id,
                l.final_cents,
                l.outcome.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        record[..3],
        [
            ("finished", 3, Some(ana), Some(1_500), Some("sold")),
            ("finished", 3, None, Some(2_000), Some("reserve_not_met")),
            ("finished", 2, None, None, Some("no_bids")),
        ]
    );
    let lists = store::list_lots(&t.db).await.expect("list");
    assert_eq!(lists.finished.len(), 5);
}

on_both_backends!(a_bid_at_exactly_the_end_is_refused_and_changes_nothing);
async fn a_bid_at_exactly_the_end_is_refused_and_changes_nothing(backend: Backend) {
    // Arrange
    let t = TestDb::new(backend).await;
    let ana = t.users(&["ana"]).await[0];
    let lot = running_lot(&t, &listing()).await;
    let before = t.lot(lot).await.row;

    // Act
    let refused = store::place_bid(&t.db, lot, ana, 1_000, None, at(300)).await;

    // Assert
    let error = refused.expect_err("the lot has ended");
    assert_eq!(error.code(), ErrorCode::LotNotOpen);
    assert_eq!(t.lot(lot).await.row, before);
    assert!(t.bid_rows(lot).await.is_empty());
}

on_both_backends!(only_a_scheduled_lot_can_be_edited_and_a_cancelled_lot_takes_no_bids);
async fn only_a_scheduled_lot_can_be_edited_and_a_cancelled_lot_takes_no_bids(backend: Backend) {
    // Arrange: one lot still scheduled, one running with a bid.
    let t = TestDb::new(backend).await;
    let ana = t.users(&["ana"]).await[0];
    let mut later = listing();
    later.spec.starts_at = at(600);
    later.spec.ends_at = at(900);
    later.spec.hard_end = at(900);
    let scheduled = store::create_lot(&t.db, &later, None, at(-60))
        .await
        .expect("list")
        .id;
    let running = running_lot(&t, &listing()).await;
    accept(&t, running, ana, 1_000, None, at(10)).await;

    // Act
    let mut edit = later.clone();
    edit.title = "Boxed SNES, PAL, with Zelda".into();
    edit.spec.starting_cents = 2_000;
    let edited = store::update_lot(&t.db, scheduled, &edit, at(20)).await;
    let too_late = store::update_lot(&t.db, running, &edit, at(20)).await;
    let cancelled = store::cancel_lot(&t.db, running, at(30)).await;
    let bid_after = store::place_bid(&t.db, running, ana, 5_000, None, at(40)).await;
    let cancelled_twice = store::cancel_lot(&t.db, running, at(50)).await;
    let missing = store::cancel_lot(&t.db, running + scheduled + 1, at(50)).await;

    // Assert
    let edited = edited.expect("a scheduled lot can be edited");
    assert_eq!(edited.title, "Boxed SNES, PAL, with Zelda");
    assert_eq!(
        (edited.starting_cents, edited.current_cents),
        (2_000, 2_000)
    );
    assert_eq!(edited.version, 1);
    assert!(matches!(
        too_late,
        Err(store::StoreError::NotScheduled {
            status: LotStatus::Running,
            ..
        })
    ));
    let cancelled = cancelled.expect("a running lot can be cancelled");
    assert_eq!(
        (cancelled.status.as_str(), cancelled.outcome.as_deref()),
        ("cancelled", Some("cancelled"))
    );
    assert_eq!(cancelled.winner_id, None);
    assert_eq!(
        bid_after.expect_err("cancelled").code(),
        ErrorCode::LotNotOpen
    );
    assert!(matches!(
        cancelled_twice,
        Err(store::StoreError::NotCancellable {
            status: LotStatus::Cancelled,
            ..
        })
    ));
    assert!(matches!(missing, Err(store::StoreError::NotFound(_))));
    assert_eq!(t.lot(running).await.state.status, LotStatus::Cancelled);
    assert_eq!(
        bids::Entity::find()
            .filter(bids::Column::LotId.eq(running))
            .count(&t.db)
            .await
            .expect("count"),
        1
    );
    assert!(store::close_due(&t.db, at(999))
        .await
        .expect("close")
        .is_empty());
}
