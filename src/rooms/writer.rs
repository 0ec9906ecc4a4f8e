//! The MessageWriter: every room's messages reach the database through it,
//! the batches of many rooms in one write (see `batch`). Rooms writing on
//! their own would fight over SQLite's single write lock and wait in its
//! busy handler's sleeps.

use std::future::{self, Future};
use std::sync::Arc;

use actix::prelude::*;
use entity::messages;
use sea_orm::{DatabaseConnection, DbErr};

use super::ids::MessageIds;
use super::store;
use crate::batch::{Batch, Batcher, WriteFailed};
use crate::supervision::Name;

/// The MessageWriter actor.
pub type MessageWriter = Batcher<Messages>;

/// How rooms store messages: the ids their rows will have, taken before
/// the message goes out, and the writer that commits them afterwards.
#[derive(Clone)]
pub struct MessageStore {
    pub ids: Arc<MessageIds>,
    pub writer: Addr<MessageWriter>,
}

/// One room's messages, numbered and with their ids, to be committed.
#[derive(Message)]
#[rtype(result = "Result<(), WriteFailed>")]
pub struct WriteMessages {
    pub rows: Vec<Arc<messages::Model>>,
}

/// How the MessageWriter writes: on a connection of its own, so it waits
/// for no turn.
#[derive(Clone)]
pub struct Messages {
    pub db: DatabaseConnection,
}

impl Batch for Messages {
    type Item = WriteMessages;
    type Done = ();
    type Turn = ();
    const NAME: Name = Name::Writer;

    fn turn(&self) -> impl Future<Output = ()> {
        future::ready(())
    }

    async fn write(&self, (): (), batches: &[WriteMessages]) -> Result<Vec<()>, DbErr> {
        let rows: Vec<&messages::Model> =
            batches.iter().flat_map(|b| &b.rows).map(|r| &**r).collect();
        store::insert(&self.db, &rows).await?;
        Ok(vec![(); batches.len()])
    }
}
