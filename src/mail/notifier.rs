//! The Notifier: turns data changes into queued mail (docs/architecture.md §4).
//!
//! Every `mail.notify_every` it queues the digest of each finished crawl that
//! has not had one, and fires price alerts whose game has dropped to the
//! target. It works from durable state only (crawls, changes, games,
//! subscriptions) and queues through the outbox's unique keys, so a crash
//! or a second node at any point neither loses nor doubles a mail: the mail
//! is queued first, and the mark that it was queued is written after.

use std::collections::HashSet;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::changes::ChangeKind;
use entity::crawls::CrawlStatus;
use entity::subscriptions::SubscriptionStatus;
use entity::{changes, crawls, games, subscriptions};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::address::EmailAddress;
use super::compose::{self, Alert, Digest, Drop, Links, NewGame};
use super::outbox;
use crate::clock;
use crate::db::stmt;
use crate::domain::money::Money;
use crate::lifecycle::Lifecycle;
use crate::roles::Leadership;
use crate::supervision::{self, Name, Restart};

/// Entries of each list a digest shows; the rest is a link to the site.
const DIGEST_ITEMS: usize = 50;
/// Subscribers read and queued per statement.
const PAGE: u64 = 500;

pub struct Notifier {
    db: DatabaseConnection,
    links: Links,
    every: Duration,
    busy: bool,
    leadership: Leadership,
}

pub fn start(
    db: DatabaseConnection,
    links: Links,
    every: Duration,
    leadership: Leadership,
    lifecycle: &Lifecycle,
) -> Addr<Notifier> {
    let notifier = Notifier {
        db,
        links,
        every,
        busy: false,
        leadership,
    };
    supervision::start(Name::Notifier, Restart::Always, lifecycle, move |_| {
        notifier
    })
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.every, |notifier, ctx| notifier.pass(ctx));
    }
}

impl Supervised for Notifier {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.busy = false;
        tracing::warn!("notifier restarted");
    }
}

impl Notifier {
    fn pass(&mut self, ctx: &mut Context<Self>) {
        // In a cluster, the scheduler's node alone mails: one digest a crawl.
        if self.busy || !self.leadership.held() {
            return;
        }
        self.busy = true;
        let (db, links, now) = (self.db.clone(), self.links.clone(), clock::now());
        let work = async move {
            if let Err(err) = queue_digests(&db, &links, now).await {
                tracing::warn!(error = %err, "could not queue crawl digests");
            }
            if let Err(err) = check_alerts(&db, &links, now).await {
                tracing::warn!(error = %err, "could not check price alerts");
            }
        };
        ctx.spawn(
            work.into_actor(self)
                .map(|(), notifier, _| notifier.busy = false),
        );
    }
}

/// Queues the digest of every finished crawl that has not had one; returns
/// how many mails were queued.
pub async fn queue_digests(
    db: &DatabaseConnection,
    links: &Links,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let owed = crawls::Entity::find()
        .filter(crawls::Column::Status.eq(CrawlStatus::Finished))
        .filter(crawls::Column::DigestedAt.is_null())
        .order_by_asc(crawls::Column::Id)
        .all(db)
        .await?;
    let mut queued = 0;
    for crawl in owed {
        let mails = match digest_of(db, links, crawl.id).await? {
            Some(digest) => queue_digest(db, links, &digest, now).await?,
            None => 0,
        };
        queued += mails;
        crawls::Entity::update_many()
            .col_expr(crawls::Column::DigestedAt, Some(now).into())
            .filter(crawls::Column::Id.eq(crawl.id))
            .filter(crawls::Column::DigestedAt.is_null())
            .exec(db)
            .await?;
        tracing::info!(crawl = crawl.id, mails, "crawl digested");
    }
    Ok(queued)
}

/// What crawl `crawl` changed, or `None` if nothing a digest shows.
pub async fn digest_of(
    db: &impl ConnectionTrait,
    links: &Links,
    crawl: i64,
) -> anyhow::Result<Option<Digest>> {
    let rows = changes::Entity::find()
        .filter(changes::Column::CrawlId.eq(crawl))
        .filter(changes::Column::Kind.is_in([ChangeKind::NewGame, ChangeKind::PriceDrop]))
        .find_also_related(games::Entity)
        .order_by_asc(changes::Column::Id)
        .all(db)
        .await?;
    let mut digest = Digest {
        crawl,
        new_games: Vec::new(),
        more_new: 0,
        drops: Vec::new(),
        more_drops: 0,
    };
    // A game new in several stores at once is one new game.
    let mut seen_new = HashSet::new();
    let mut drops = Vec::new();
    for (change, game) in rows {
        let Some(game) = game else { continue };
        match change.kind {
            ChangeKind::NewGame if seen_new.insert(game.id) => {
                if digest.new_games.len() < DIGEST_ITEMS {
                    digest.new_games.push(NewGame {
                        url: links.game(game.id),
                        title: game.title.clone(),
                        price: price(&game, game.best_cents.or(change.new_cents)),
                    });
                } else {
                    digest.more_new += 1;
                }
            }
            ChangeKind::PriceDrop => drops.push((change, game)),
            ChangeKind::NewGame | ChangeKind::BackInStock => {}
        }
    }
    // The deepest cuts first, so a long list that is cut short keeps them.
    drops.sort_by(|(a, _), (b, _)| drop_share(b).total_cmp(&drop_share(a)));
    digest.more_drops = drops.len().saturating_sub(DIGEST_ITEMS);
    for (change, game) in drops.into_iter().take(DIGEST_ITEMS) {
        digest.drops.push(Drop {
            url: links.game(game.id),
            title: game.title.clone(),
            store: change.store.clone().unwrap_or_default(),
            old: price(&game, change.old_cents),
            new: price(&game, change.new_cents),
        });
    }
    let empty = digest.new_games.is_empty() && digest.drops.is_empty();
    Ok((!empty).then_some(digest))
}

/// `cents` in `game`'s currency, or nothing.
fn price(game: &games::Model, cents: Option<i64>) -> String {
    let currency = game.currency.as_deref().unwrap_or("EUR");
    cents
        .map(|c| Money::new(c, currency).to_string())
        .unwrap_or_default()
}

/// How much of the old price a drop took off, from 0 to 1.
fn drop_share(change: &changes::Model) -> f64 {
    match (change.old_cents, change.new_cents) {
        // Cents are far below 2^52, so the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        (Some(old), Some(new)) if old > 0 => (old - new) as f64 / old as f64,
        _ => 0.0,
    }
}

/// Queues `digest` for every confirmed digest subscriber, a page at a time.
async fn queue_digest(
    db: &DatabaseConnection,
    links: &Links,
    digest: &Digest,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut queued = 0;
    let mut after = 0;
    loop {
        let page = subscriptions::Entity::find()
            .filter(subscriptions::Column::Status.eq(SubscriptionStatus::Confirmed))
            .filter(subscriptions::Column::Topic.eq("digest"))
            .filter(subscriptions::Column::Id.gt(after))
            .order_by_asc(subscriptions::Column::Id)
            .limit(PAGE)
            .all(db)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let mut mails = Vec::with_capacity(page.len());
        for subscription in &page {
            let Some(to) = recipient(subscription) else {
                continue;
            };
            mails.push(compose::digest(links, subscription, &to, digest)?);
        }
        queued += outbox::enqueue_many(db, mails, now).await?;
    }
    Ok(queued)
}

/// Re-arms alerts whose game is above the target again, then fires the
/// armed ones whose game is at or below it; returns how many fired.
pub async fn check_alerts(
    db: &DatabaseConnection,
    links: &Links,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let backend = db.get_database_backend();
    db.execute(stmt(
        backend,
        "UPDATE subscriptions SET armed = TRUE \
         WHERE armed = FALSE AND status = $1 AND game_id IS NOT NULL \
           AND EXISTS (SELECT 1 FROM games g WHERE g.id = subscriptions.game_id \
                       AND g.best_cents > subscriptions.target_cents)",
        vec![SubscriptionStatus::Confirmed.into()],
    ))
    .await?;
    let due = subscriptions::Entity::find()
        .filter(subscriptions::Column::Status.eq(SubscriptionStatus::Confirmed))
        .filter(subscriptions::Column::Armed.eq(true))
        .find_also_related(games::Entity)
        .filter(
            Expr::col((games::Entity, games::Column::BestCents)).lte(Expr::col((
                subscriptions::Entity,
                subscriptions::Column::TargetCents,
            ))),
        )
        .all(db)
        .await?;
    let mut fired = 0;
    for (subscription, game) in due {
        let (Some(game), Some(to)) = (game, recipient(&subscription)) else {
            continue;
        };
        let (Some(best), Some(target)) = (game.best_cents, subscription.target_cents) else {
            continue;
        };
        let currency = game.currency.as_deref().unwrap_or("EUR");
        let alert = Alert {
            game_id: game.id,
            title: game.title.clone(),
            price: Money::new(best, currency).to_string(),
            target: Money::new(target, currency).to_string(),
        };
        outbox::enqueue(db, compose::alert(links, &subscription, &to, &alert)?, now).await?;
        // Disarmed only if nobody else fired this crossing meanwhile; the
        // outbox key has already made sure the mail exists once.
        let res = subscriptions::Entity::update_many()
            .col_expr(subscriptions::Column::Armed, false.into())
            .col_expr(
                subscriptions::Column::Fired,
                (subscription.fired + 1).into(),
            )
            .filter(subscriptions::Column::Id.eq(subscription.id))
            .filter(subscriptions::Column::Armed.eq(true))
            .filter(subscriptions::Column::Fired.eq(subscription.fired))
            .exec(db)
            .await?;
        if res.rows_affected == 1 {
            fired += 1;
            tracing::info!(
                subscription = subscription.id,
                game = game.id,
                "price alert fired"
            );
        }
    }
    Ok(fired)
}

/// The subscriber's address; rows hold only parsed addresses, so a bad one
/// was edited by hand and is skipped with a warning rather than retried.
fn recipient(subscription: &subscriptions::Model) -> Option<EmailAddress> {
    match EmailAddress::parse(&subscription.email) {
        Ok(to) => Some(to),
        Err(err) => {
            tracing::warn!(subscription = subscription.id, error = %err, "skipping a subscriber");
            None
        }
    }
}
