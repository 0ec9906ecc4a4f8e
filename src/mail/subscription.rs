//! Subscriptions with double opt-in (docs/architecture.md §4): subscribing
//! stores a `pending` row and queues a confirmation mail in the same
//! transaction; following the link confirms; the signed link in every mail
//! unsubscribes.
//!
//! One row per address and topic, so asking again updates that row: a
//! confirmation is re-sent at most once per `resend_after`, a confirmed
//! subscription is left as it is, and a confirmed alert asked for at another
//! target gets a link that confirms the change.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::subscriptions::SubscriptionStatus;
use entity::{games, subscriptions};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityTrait, QueryFilter, SqlErr, TransactionTrait,
};

use super::address::EmailAddress;
use super::compose::{self, About, AlertGame, Links};
use super::outbox::{self, MailKind, MailStatus};
use crate::accounts::token;
use crate::clock::delta;
use crate::domain::money::Money;

/// What a subscription is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// The digest after each crawl that changed something.
    Digest,
    /// A mail each time `game`'s best price drops to `target_cents` or less.
    Alert { game: i64, target_cents: i64 },
}

impl Topic {
    /// The `topic` column: one subscription per address and topic.
    pub fn key(&self) -> String {
        match self {
            Topic::Digest => "digest".to_owned(),
            Topic::Alert { game, .. } => format!("game:{game}"),
        }
    }

    /// What `row` is to, or will be once its pending change of target is
    /// confirmed: the pages and links about a change speak of the new one.
    fn of(row: &subscriptions::Model) -> Topic {
        match (row.game_id, row.pending_target_cents.or(row.target_cents)) {
            (Some(game), Some(target_cents)) => Topic::Alert { game, target_cents },
            _ => Topic::Digest,
        }
    }
}

/// How long links live and how often a confirmation may be re-sent.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub confirm_ttl: Duration,
    pub resend_after: Duration,
}

/// What asking to subscribe did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribed {
    /// A confirmation mail is queued.
    ConfirmationSent(About),
    /// One was queued less than `resend_after` ago, so none now; another
    /// may be asked for after `wait`.
    RecentlySent { about: About, wait: Duration },
    /// The subscription is confirmed already; nothing changed.
    AlreadyConfirmed(About),
    /// A confirmed alert was asked for at another target: a link to confirm
    /// the change is queued, and the alert keeps its target until then.
    ChangeSent(About),
}

#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("there is no game {0}")]
    UnknownGame(i64),
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("could not write the confirmation mail: {0}")]
    Template(#[from] askama::Error),
}

/// Where a confirmation link stands.
#[derive(Debug, Clone)]
pub enum LinkState {
    Pending(subscriptions::Model),
    Confirmed(subscriptions::Model),
    Expired(subscriptions::Model),
    /// No subscription has this token: mistyped, forged, or replaced by a
    /// newer link (or the subscription ended).
    Invalid,
}

/// What a subscription is to, as pages and mails describe it.
pub async fn about(db: &impl ConnectionTrait, topic: Topic) -> Result<About, SubscribeError> {
    match topic {
        Topic::Digest => Ok(About::Digest),
        Topic::Alert { game, target_cents } => {
            let found = games::Entity::find_by_id(game)
                .one(db)
                .await?
                .ok_or(SubscribeError::UnknownGame(game))?;
            let currency = found.currency.as_deref().unwrap_or("EUR");
            Ok(About::Alert(AlertGame {
                id: found.id,
                title: found.title,
                target: Money::new(target_cents, currency).to_string(),
            }))
        }
    }
}

/// Subscribes `email` to `topic`, or re-sends its confirmation.
pub async fn subscribe(
    db: &(impl ConnectionTrait + TransactionTrait),
    links: &Links,
    policy: Policy,
    email: &EmailAddress,
    topic: Topic,
    now: DateTime<Utc>,
) -> Result<Subscribed, SubscribeError> {
    let about = about(db, topic).await?;
    let txn = crate::db::begin_write(db).await?;
    let existing = subscriptions::Entity::find()
        .filter(subscriptions::Column::Email.eq(email.as_str()))
        .filter(subscriptions::Column::Topic.eq(topic.key()))
        .one(&txn)
        .await?;
    let token = token::random();
    let (target_cents, game_id) = match topic {
        Topic::Digest => (None, None),
        Topic::Alert { game, target_cents } => (Some(target_cents), Some(game)),
    };
    let (row, sent) = match existing {
        Some(row)
            if row.status == SubscriptionStatus::Confirmed && row.target_cents == target_cents =>
        {
            // Asking for what it is withdraws any change still unconfirmed.
            if row.pending_target_cents.is_some() {
                subscriptions::Entity::update_many()
                    .col_expr(
                        subscriptions::Column::PendingTargetCents,
                        None::<i64>.into(),
                    )
                    .col_expr(subscriptions::Column::TokenHash, None::<String>.into())
                    .filter(subscriptions::Column::Id.eq(row.id))
                    .exec(&txn)
                    .await?;
                txn.commit().await?;
            }
            return Ok(Subscribed::AlreadyConfirmed(about));
        }
        Some(row) => {
            let change = row.status == SubscriptionStatus::Confirmed;
            // A change is throttled only while another change is waiting:
            // the confirmation that made the alert may be minutes old.
            if !change || row.pending_target_cents.is_some() {
                if let Some(wait) = too_soon(&row, policy, now) {
                    return Ok(Subscribed::RecentlySent { about, wait });
                }
            }
            let mut update = subscriptions::Entity::update_many()
                .col_expr(
                    subscriptions::Column::TokenHash,
                    Some(links.token_hash(&token)).into(),
                )
                .col_expr(
                    subscriptions::Column::TokenExpiresAt,
                    Some(now + delta(policy.confirm_ttl)).into(),
                )
                .col_expr(subscriptions::Column::ConfirmSentAt, Some(now).into())
                .col_expr(
                    subscriptions::Column::ConfirmsSent,
                    (row.confirms_sent + 1).into(),
                );
            update = if change {
                update.col_expr(
                    subscriptions::Column::PendingTargetCents,
                    target_cents.into(),
                )
            } else {
                update
                    .col_expr(
                        subscriptions::Column::Status,
                        SubscriptionStatus::Pending.into(),
                    )
                    .col_expr(subscriptions::Column::TargetCents, target_cents.into())
                    .col_expr(
                        subscriptions::Column::PendingTargetCents,
                        None::<i64>.into(),
                    )
                    .col_expr(
                        subscriptions::Column::UnsubscribedAt,
                        None::<DateTime<Utc>>.into(),
                    )
            };
            // Guarded by the count, so two requests at once queue one mail.
            let res = update
                .filter(subscriptions::Column::Id.eq(row.id))
                .filter(subscriptions::Column::ConfirmsSent.eq(row.confirms_sent))
                .exec(&txn)
                .await?;
            if res.rows_affected != 1 {
                return Ok(Subscribed::RecentlySent {
                    about,
                    wait: policy.resend_after,
                });
            }
            let row = subscriptions::Model {
                confirms_sent: row.confirms_sent + 1,
                ..row
            };
            let sent = if change {
                Subscribed::ChangeSent(about.clone())
            } else {
                Subscribed::ConfirmationSent(about.clone())
            };
            (row, sent)
        }
        None => {
            let inserted = subscriptions::ActiveModel {
                email: Set(email.to_string()),
                topic: Set(topic.key()),
                game_id: Set(game_id),
                target_cents: Set(target_cents),
                status: Set(SubscriptionStatus::Pending),
                token_hash: Set(Some(links.token_hash(&token))),
                token_expires_at: Set(Some(now + delta(policy.confirm_ttl))),
                confirm_sent_at: Set(Some(now)),
                confirms_sent: Set(1),
                armed: Set(true),
                fired: Set(0),
                created_at: Set(now),
                confirmed_at: Set(None),
                unsubscribed_at: Set(None),
                ..Default::default()
            }
            .insert(&txn)
            .await;
            match inserted {
                Ok(row) => (row, Subscribed::ConfirmationSent(about.clone())),
                // Another request made the row a moment ago, with its mail.
                Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    return Ok(Subscribed::RecentlySent {
                        about,
                        wait: policy.resend_after,
                    });
                }
                Err(err) => return Err(err.into()),
            }
        }
    };
    let mail = compose::confirmation(links, &row, email, &about, &token, policy.confirm_ttl)?;
    outbox::enqueue(&txn, mail, now).await?;
    txn.commit().await?;
    Ok(sent)
}

/// How long until `row` may get another confirmation, if it may not yet.
fn too_soon(row: &subscriptions::Model, policy: Policy, now: DateTime<Utc>) -> Option<Duration> {
    let sent = row.confirm_sent_at?;
    let next = sent + delta(policy.resend_after);
    (next > now).then(|| (next - now).to_std().unwrap_or_default())
}

/// Where the confirmation link with `token` stands.
pub async fn link_state(
    db: &impl ConnectionTrait,
    links: &Links,
    token: &str,
    now: DateTime<Utc>,
) -> Result<LinkState, DbErr> {
    if token.is_empty() || token.len() > 128 {
        return Ok(LinkState::Invalid);
    }
    let found = subscriptions::Entity::find()
        .filter(subscriptions::Column::TokenHash.eq(links.token_hash(token)))
        .one(db)
        .await?;
    Ok(match found {
        None => LinkState::Invalid,
        // A confirmed alert's link confirms a change of target, if one waits.
        Some(row)
            if row.status == SubscriptionStatus::Confirmed
                && row.pending_target_cents.is_none() =>
        {
            LinkState::Confirmed(row)
        }
        Some(row)
            if row.status != SubscriptionStatus::Pending
                && row.status != SubscriptionStatus::Confirmed =>
        {
            LinkState::Invalid
        }
        Some(row) if row.token_expires_at.is_none_or(|at| at <= now) => LinkState::Expired(row),
        Some(row) => LinkState::Pending(row),
    })
}

/// Confirms the subscription whose link carries `token`; returns where the
/// link stands afterwards (`Confirmed` when it worked, or why not).
pub async fn confirm(
    db: &impl ConnectionTrait,
    links: &Links,
    token: &str,
    now: DateTime<Utc>,
) -> Result<LinkState, DbErr> {
    let state = link_state(db, links, token, now).await?;
    let LinkState::Pending(row) = state else {
        return Ok(state);
    };
    let confirming = subscriptions::Entity::update_many()
        .col_expr(subscriptions::Column::Armed, true.into())
        .filter(subscriptions::Column::Id.eq(row.id));
    match row.pending_target_cents {
        // A new target: the alert watches for the price crossing it now.
        Some(target) if row.status == SubscriptionStatus::Confirmed => {
            confirming
                .col_expr(subscriptions::Column::TargetCents, Some(target).into())
                .col_expr(
                    subscriptions::Column::PendingTargetCents,
                    None::<i64>.into(),
                )
                .filter(subscriptions::Column::PendingTargetCents.eq(target))
                .exec(db)
                .await?;
        }
        _ => {
            confirming
                .col_expr(
                    subscriptions::Column::Status,
                    SubscriptionStatus::Confirmed.into(),
                )
                .col_expr(subscriptions::Column::ConfirmedAt, Some(now).into())
                .filter(subscriptions::Column::Status.eq(SubscriptionStatus::Pending))
                .exec(db)
                .await?;
        }
    }
    link_state(db, links, token, now).await
}

/// Queues a new confirmation for the subscription behind an (expired) link.
pub async fn resend(
    db: &(impl ConnectionTrait + TransactionTrait),
    links: &Links,
    policy: Policy,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Subscribed>, SubscribeError> {
    let row = match link_state(db, links, token, now).await? {
        LinkState::Pending(row) | LinkState::Expired(row) | LinkState::Confirmed(row) => row,
        LinkState::Invalid => return Ok(None),
    };
    let Ok(email) = EmailAddress::parse(&row.email) else {
        return Ok(None);
    };
    subscribe(db, links, policy, &email, Topic::of(&row), now)
        .await
        .map(Some)
}

/// Ends subscription `id` (idempotent). `None` if there is no such row.
pub async fn unsubscribe(
    db: &impl ConnectionTrait,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Option<subscriptions::Model>, DbErr> {
    subscriptions::Entity::update_many()
        .col_expr(
            subscriptions::Column::Status,
            SubscriptionStatus::Unsubscribed.into(),
        )
        .col_expr(subscriptions::Column::UnsubscribedAt, Some(now).into())
        // The confirmation link dies with the subscription.
        .col_expr(subscriptions::Column::TokenHash, None::<String>.into())
        .filter(subscriptions::Column::Id.eq(id))
        .filter(subscriptions::Column::Status.ne(SubscriptionStatus::Unsubscribed))
        .exec(db)
        .await?;
    let Some(row) = subscriptions::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    // Mail for this subscription that has not gone out yet must not go
    // out after the subscriber said stop: a digest queued a moment ago, say.
    let own = match Topic::of(&row) {
        Topic::Digest => Condition::all()
            .add(entity::outbox::Column::Kind.eq(MailKind::Digest))
            .add(entity::outbox::Column::Recipient.eq(row.email.as_str())),
        Topic::Alert { .. } => Condition::all()
            .add(entity::outbox::Column::Key.starts_with(format!("alert:sub-{id}-"))),
    };
    entity::outbox::Entity::update_many()
        .col_expr(entity::outbox::Column::Status, MailStatus::Cancelled.into())
        .col_expr(
            entity::outbox::Column::LastError,
            Some("not sent: the subscriber unsubscribed".to_owned()).into(),
        )
        .filter(entity::outbox::Column::Status.eq(MailStatus::Pending))
        .filter(
            Condition::any()
                .add(own)
                .add(entity::outbox::Column::Key.starts_with(format!("confirm:sub-{id}-"))),
        )
        .exec(db)
        .await?;
    Ok(Some(row))
}

/// What `row` is to, for pages.
pub async fn about_row(
    db: &impl ConnectionTrait,
    row: &subscriptions::Model,
) -> Result<About, SubscribeError> {
    about(db, Topic::of(row)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::compose::Digest;
    use entity::outbox as outbox_rows;

    async fn db() -> (sea_orm::DatabaseConnection, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("subs.db").display());
        (crate::db::connect(&url).await.unwrap(), dir)
    }

    /// Links under a test key; links live an hour, confirmations may be
    /// re-sent after `resend_after`.
    fn links_and_policy(resend_after: Duration) -> (Links, Policy) {
        let policy = Policy {
            confirm_ttl: Duration::from_secs(3600),
            resend_after,
        };
        (Links::new("http://bazaar.test", b"key"), policy)
    }

    async fn statuses(db: &sea_orm::DatabaseConnection) -> Vec<(MailKind, MailStatus)> {
        outbox_rows::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.kind, row.status))
            .collect()
    }

    #[actix_web::test]
    async fn unsubscribing_cancels_that_subscriptions_unsent_mail_only() {
        // Arrange: Ana is confirmed with a digest queued; Bob's is queued too.
        let (db, _dir) = db().await;
        let (links, policy) = links_and_policy(Duration::from_secs(600));
        let now = Utc::now();
        let mut rows = Vec::new();
        for email in ["ana@example.com", "bob@example.com"] {
            let email = EmailAddress::parse(email).unwrap();
            let outcome = subscribe(&db, &links, policy, &email, Topic::Digest, now)
                .await
                .unwrap();
            assert_eq!(outcome, Subscribed::ConfirmationSent(About::Digest));
            let row = subscriptions::Entity::find()
                .filter(subscriptions::Column::Email.eq(email.as_str()))
                .one(&db)
                .await
                .unwrap()
                .unwrap();
            let digest = Digest {
                crawl: 1,
                new_games: Vec::new(),
                more_new: 3,
                drops: Vec::new(),
                more_drops: 0,
            };
            let mail = compose::digest(&links, &row, &email, &digest).unwrap();
            outbox::enqueue(&db, mail, now).await.unwrap();
            rows.push(row);
        }

        // Act
        let gone = unsubscribe(&db, rows[0].id, now).await.unwrap().unwrap();

        // Assert
        assert_eq!(gone.status, SubscriptionStatus::Unsubscribed);
        assert_eq!(
            statuses(&db).await,
            [
                (MailKind::Confirm, MailStatus::Cancelled),
                (MailKind::Digest, MailStatus::Cancelled),
                (MailKind::Confirm, MailStatus::Pending),
                (MailKind::Digest, MailStatus::Pending),
            ]
        );
    }

    #[actix_web::test]
    async fn a_confirmed_subscription_is_left_alone_by_subscribing_again() {
        let (db, _dir) = db().await;
        let (links, policy) = links_and_policy(Duration::ZERO);
        let now = Utc::now();
        let email = EmailAddress::parse("ana@example.com").unwrap();
        subscribe(&db, &links, policy, &email, Topic::Digest, now)
            .await
            .unwrap();
        let row = subscriptions::Entity::find()
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        subscriptions::Entity::update_many()
            .col_expr(
                subscriptions::Column::Status,
                SubscriptionStatus::Confirmed.into(),
            )
            .filter(subscriptions::Column::Id.eq(row.id))
            .exec(&db)
            .await
            .unwrap();

        let again = subscribe(&db, &links, policy, &email, Topic::Digest, now)
            .await
            .unwrap();

        assert_eq!(again, Subscribed::AlreadyConfirmed(About::Digest));
        assert_eq!(statuses(&db).await.len(), 1, "no second confirmation");
    }

    #[actix_web::test]
    async fn a_confirmed_alert_asked_for_at_another_target_keeps_it_until_the_change_is_confirmed()
    {
        // Arrange: Ana's alert on a game at 10.00 is confirmed.
        let (db, _dir) = db().await;
        let (links, policy) = links_and_policy(Duration::ZERO);
        let now = Utc::now();
        let game = games::ActiveModel {
            title: Set("Hollow Knight".to_owned()),
            norm_title: Set("hollow knight".to_owned()),
            best_cents: Set(Some(1_499)),
            currency: Set(Some("EUR".to_owned())),
            discount_pct: Set(0),
            store_count: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        let email = EmailAddress::parse("ana@example.com").unwrap();
        let alert = |target_cents| Topic::Alert {
            game: game.id,
            target_cents,
        };
        subscribe(&db, &links, policy, &email, alert(1_000), now)
            .await
            .unwrap();
        subscriptions::Entity::update_many()
            .col_expr(
                subscriptions::Column::Status,
                SubscriptionStatus::Confirmed.into(),
            )
            .exec(&db)
            .await
            .unwrap();

        // Act: the same target, then another.
        let same = subscribe(&db, &links, policy, &email, alert(1_000), now)
            .await
            .unwrap();
        let other = subscribe(&db, &links, policy, &email, alert(500), now)
            .await
            .unwrap();

        // Assert: nothing to do, then a change to confirm; the alert keeps
        // its target meanwhile.
        assert!(matches!(same, Subscribed::AlreadyConfirmed(_)), "{same:?}");
        let Subscribed::ChangeSent(About::Alert(asked)) = other else {
            panic!("{other:?}");
        };
        assert_eq!(asked.target, "5.00 €");
        let row = subscriptions::Entity::find()
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.status, row.target_cents, row.pending_target_cents),
            (SubscriptionStatus::Confirmed, Some(1_000), Some(500))
        );
        assert_eq!(statuses(&db).await.len(), 2, "a second confirmation mail");
    }
}
