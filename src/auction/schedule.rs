//! Opening and closing lots on time. Each transition is a conditional
//! update, so with several nodes exactly one performs it and publishes its
//! `started` or `finished` event to every node's watchers.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use super::room::{finished_frame, lot_topic, started_frame};
use super::store::{close_due, open_due};
use crate::bus::{Bus, EventKind, TopicEvent, TopicEvents};

/// Opens the lots due to open and closes those due to close, as of `now`.
pub async fn run_due(db: &DatabaseConnection, bus: &dyn Bus, now: DateTime<Utc>) {
    let publish = |lot_id: i64, frame| {
        bus.publish(TopicEvents {
            topic: lot_topic(lot_id),
            events: vec![TopicEvent {
                kind: EventKind::Lot,
                frame,
            }],
        })
    };
    match open_due(db, now).await {
        Ok(opened) => {
            for lot in opened {
                tracing::info!(lot = lot.lot_id, "lot opened");
                match started_frame(db, &lot).await {
                    Ok(frame) => publish(lot.lot_id, frame),
                    Err(err) => tracing::warn!(lot = lot.lot_id, error = %err, "no started event"),
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not open due lots"),
    }
    match close_due(db, now).await {
        Ok(closed) => {
            for lot in closed {
                tracing::info!(lot = lot.lot_id, verdict = ?lot.closing.verdict, "lot closed");
                match finished_frame(db, &lot).await {
                    Ok(frame) => publish(lot.lot_id, frame),
                    Err(err) => tracing::warn!(lot = lot.lot_id, error = %err, "no finished event"),
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not close due lots"),
    }
}
