//! The MessageWriter actor: every room's messages reach the database through
//! it, the batches of many rooms in one write. Rooms writing on their
//! own would fight over SQLite's single write lock and wait in its busy
//! handler's sleeps.

use std::sync::Arc;

use actix::prelude::*;
use entity::messages;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::oneshot;

use super::ids::MessageIds;
use super::store;
use crate::supervision::{self, Name};

/// How rooms store messages: the ids their rows will have, taken before
/// the message goes out, and the writer that commits them afterwards.
#[derive(Clone)]
pub struct MessageStore {
    pub ids: Arc<MessageIds>,
    pub writer: Addr<MessageWriter>,
}

/// One room's messages, numbered and with their ids, to be committed.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct WriteMessages {
    pub rows: Vec<Arc<messages::Model>>,
}

type Reply = oneshot::Sender<Result<(), String>>;

pub struct MessageWriter {
    db: DatabaseConnection,
    pending: Vec<(WriteMessages, Reply)>,
    writing: bool,
}

impl MessageWriter {
    pub fn new(db: DatabaseConnection) -> MessageWriter {
        MessageWriter {
            db,
            pending: Vec::new(),
            writing: false,
        }
    }

    /// Writes everything that arrived since the last write, together.
    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.pending.is_empty() {
            return;
        }
        self.writing = true;
        let (batches, replies): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().unzip();
        let db = self.db.clone();
        async move {
            let outcomes = match write_all(&db, &batches).await {
                Ok(()) => batches.iter().map(|_| Ok(())).collect(),
                // One bad batch must not sink the other rooms': each alone.
                Err(_) => {
                    let mut outcomes = Vec::with_capacity(batches.len());
                    for batch in &batches {
                        let one = write_all(&db, std::slice::from_ref(batch)).await;
                        outcomes.push(one.map_err(|e| e.to_string()));
                    }
                    outcomes
                }
            };
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        .into_actor(self)
        .map(|(), act, ctx| {
            act.writing = false;
            act.write(ctx);
        })
        .spawn(ctx);
    }
}

async fn write_all(db: &DatabaseConnection, batches: &[WriteMessages]) -> Result<(), DbErr> {
    let rows: Vec<&messages::Model> = batches.iter().flat_map(|b| &b.rows).map(|r| &**r).collect();
    store::insert(db, &rows).await
}

impl Actor for MessageWriter {
    type Context = Context<Self>;
}

impl Supervised for MessageWriter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Replies in flight are lost with the old state; their rooms write
        // those messages again, and nothing was half written.
        self.pending.clear();
        self.writing = false;
        tracing::warn!("message writer restarted");
    }
}

impl Handler<WriteMessages> for MessageWriter {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: WriteMessages, ctx: &mut Context<Self>) -> Self::Result {
        supervision::drill(Name::Writer);
        let (tx, rx) = oneshot::channel();
        self.pending.push((msg, tx));
        self.write(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the message writer restarted".to_owned()))
        })
    }
}
