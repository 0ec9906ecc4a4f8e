//! The Link actor: the worker's WebSocket to the server (docs/protocol.md §2).
//! It says hello, grants credits for free slots, sends heartbeats, hands
//! assignments to scrapers and reports their outcomes. It reconnects with
//! exponential backoff plus jitter, and drains on request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::io::SinkWrite;
use actix::prelude::*;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::stream::{SplitSink, StreamExt};
use tokio::sync::oneshot;

use super::WorkerOptions;
use crate::backoff::Backoff;
use crate::protocol::worker::{ServerFrame, WorkerFrame};
use crate::scrape::fetch::Fetcher;
use crate::scrapers::{Scrape, ScrapeDone, ScrapeOutput, Scraper};

/// The waits before reconnecting: 200 ms, doubling up to 10 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
/// How long a drained worker waits for the server to answer its close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The largest frame the worker accepts from the server.
const MAX_FRAME: usize = 4 << 20;

type WsSink = SplitSink<actix_codec::Framed<BoxedSocket, Codec>, Message>;

pub struct Link {
    options: WorkerOptions,
    scrapers: Vec<Addr<Scraper>>,
    /// Which slots are scraping, and for which lease.
    busy: HashMap<usize, String>,
    /// Leases held on the current connection: lease → task.
    held: HashMap<String, u64>,
    sink: Option<SinkWrite<Message, WsSink>>,
    heartbeat: Option<SpawnHandle>,
    /// Reconnects since the last connection that worked.
    failures: u32,
    draining: bool,
    /// The server acknowledged the drain: no assignment can follow.
    drain_acked: bool,
    /// The server is going away: finish, deliver, and connect again.
    moving: bool,
    restarts: Arc<AtomicU64>,
    done: Option<oneshot::Sender<i32>>,
}

impl Link {
    pub fn new(options: WorkerOptions, done: oneshot::Sender<i32>) -> Link {
        Link {
            options,
            scrapers: Vec::new(),
            busy: HashMap::new(),
            held: HashMap::new(),
            sink: None,
            heartbeat: None,
            failures: 0,
            draining: false,
            drain_acked: false,
            moving: false,
            restarts: Arc::new(AtomicU64::new(0)),
            done: Some(done),
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let url = self.options.endpoint();
        let token = self.options.token.clone();
        tracing::info!(server = %url, "connecting");
        async move {
            awc::Client::builder()
                .connector(crate::net::connector())
                .finish()
                .ws(url.as_str())
                .bearer_auth(token)
                .max_frame_size(MAX_FRAME)
                .connect()
                .await
        }
        .into_actor(self)
        .map(|res, act, ctx| match res {
            Ok((_, framed)) => {
                let (sink, stream) = framed.split();
                ctx.add_stream(stream);
                act.sink = Some(SinkWrite::new(sink, ctx));
                let hello = WorkerFrame::Hello {
                    name: act.options.name.clone(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    slots: act.options.slots,
                    sites: vec!["*".to_owned()],
                };
                act.send(&hello);
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(status))
                if status.as_u16() == 401 =>
            {
                tracing::error!("the server refused the worker token (401); check --token");
                act.finish(2, ctx);
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not connect");
                act.reconnect_later(ctx);
            }
        })
        .wait(ctx);
    }

    fn reconnect_later(&mut self, ctx: &mut Context<Self>) {
        // Jitter spreads a fleet's reconnects after a server restart.
        self.failures = self.failures.saturating_add(1);
        let wait = RECONNECT.jittered(self.failures);
        tracing::info!(wait_ms = wait.as_millis() as u64, "reconnecting later");
        ctx.run_later(wait, |act, ctx| act.connect(ctx));
    }

    fn send(&mut self, frame: &WorkerFrame) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        match serde_json::to_string(frame) {
            Ok(text) => {
                if sink.write(Message::Text(text.into())).is_err() {
                    tracing::warn!("connection closed while sending");
                }
            }
            Err(err) => tracing::error!(error = %err, "could not encode a frame"),
        }
    }

    fn free_slots(&self) -> u32 {
        u32::try_from(self.scrapers.len() - self.busy.len()).unwrap_or(0)
    }

    fn on_frame(&mut self, frame: ServerFrame, ctx: &mut Context<Self>) {
        match frame {
            ServerFrame::Welcome {
                worker,
                heartbeat_ms,
                ..
            } => {
                tracing::info!(worker, "connected");
                self.failures = 0;
                if let Some(handle) = self.heartbeat.take() {
                    ctx.cancel_future(handle);
                }
                let every = Duration::from_millis(heartbeat_ms.max(100));
                self.heartbeat = Some(ctx.run_interval(every, |act, _| {
                    let leases = act.held.keys().cloned().collect();
                    let restarts = act.restarts.load(Ordering::Relaxed);
                    act.send(&WorkerFrame::Heartbeat { leases, restarts });
                }));
                if !self.draining && self.free_slots() > 0 {
                    let credits = self.free_slots();
                    self.send(&WorkerFrame::Ready { credits });
                }
            }
            ServerFrame::Assign {
                task,
                lease,
                attempt,
                kind,
                url,
                site,
                profile,
                ..
            } => {
                let Some(slot) = (0..self.scrapers.len()).find(|s| !self.busy.contains_key(s))
                else {
                    // The server sent more than the credits granted.
                    let error = "no free slot".to_owned();
                    self.send(&WorkerFrame::Failed {
                        task,
                        lease,
                        error,
                        retryable: true,
                    });
                    return;
                };
                tracing::debug!(task, %url, "assigned");
                self.busy.insert(slot, lease.clone());
                self.held.insert(lease.clone(), task);
                let scrape = Scrape {
                    slot,
                    task,
                    lease,
                    attempt,
                    kind,
                    url,
                    site,
                    profile,
                };
                self.scrapers[slot].do_send(scrape);
            }
            ServerFrame::Cancel { lease, .. } => {
                // The scrape runs on, but its outcome is no longer reported.
                self.held.remove(&lease);
            }
            ServerFrame::Stale { task, lease } => {
                tracing::debug!(task, lease, "the server says this lease was stale");
            }
            ServerFrame::Drain { reconnect: true } => {
                // No assignment follows on this connection; the next one,
                // to another node, starts afresh.
                if !self.draining {
                    tracing::info!("the server is going away; finishing, then reconnecting");
                    self.moving = true;
                }
                self.drain_acked = true;
                self.maybe_finish(ctx);
            }
            ServerFrame::Drain { reconnect: false } => {
                if !self.draining {
                    tracing::info!("the server asked this worker to drain");
                }
                self.draining = true;
                self.moving = false;
                self.drain_acked = true;
                self.maybe_finish(ctx);
            }
            ServerFrame::Error { code, message } => {
                tracing::warn!(code = code.as_str(), message, "the server refused a frame");
            }
        }
    }

    fn start_draining(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        self.draining = true;
        if self.sink.is_some() {
            // Credits already granted cannot be taken back; ask the server to
            // stop assigning, and leave only after it says it has.
            self.send(&WorkerFrame::Drain);
        } else {
            self.drain_acked = true;
        }
        self.maybe_finish(ctx);
    }

    fn maybe_finish(&mut self, ctx: &mut Context<Self>) {
        if !((self.draining || self.moving) && self.drain_acked && self.busy.is_empty()) {
            return;
        }
        if self.moving && !self.draining {
            if let Some(sink) = self.sink.as_mut() {
                // Every result is written before the close; the server
                // answers it, and `finished` connects again.
                tracing::info!("delivered what this worker held; closing to move");
                let _ = sink.write(Message::Close(Some(awc::ws::CloseCode::Normal.into())));
            }
            return;
        }
        match self.sink.as_mut() {
            Some(sink) => {
                tracing::info!("drained; closing");
                // The actor keeps running until the server answers the close,
                // so the results written just before it are flushed first.
                let _ = sink.write(Message::Close(Some(awc::ws::CloseCode::Normal.into())));
                ctx.run_later(CLOSE_GRACE, |act, ctx| act.finish(0, ctx));
            }
            None => self.finish(0, ctx),
        }
    }

    fn finish(&mut self, code: i32, ctx: &mut Context<Self>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(code);
        }
        ctx.stop();
    }
}

impl Actor for Link {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address().recipient();
        let fetcher = Fetcher::new();
        for _ in 0..self.options.slots {
            let link = me.clone();
            let fetcher = fetcher.clone();
            let restarts = self.restarts.clone();
            self.scrapers.push(Supervisor::start(move |_| {
                Scraper::new(link, fetcher, restarts)
            }));
        }
        self.connect(ctx);
    }
}

impl actix::io::WriteHandler<awc::error::WsProtocolError> for Link {
    // The default stops the actor once the write half is closed; a worker
    // moving to another node closes it and carries on. The connection's end
    // is the read half's (`StreamHandler::finished`).
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl StreamHandler<Result<Frame, awc::error::WsProtocolError>> for Link {
    fn handle(&mut self, msg: Result<Frame, awc::error::WsProtocolError>, ctx: &mut Context<Self>) {
        match msg {
            Ok(Frame::Text(bytes)) => match serde_json::from_slice::<ServerFrame>(&bytes) {
                Ok(frame) => self.on_frame(frame, ctx),
                // A newer server may send ops this worker does not know.
                Err(err) => {
                    tracing::warn!(error = %err, "ignored a frame this worker does not understand")
                }
            },
            Ok(Frame::Ping(bytes)) => {
                if let Some(sink) = self.sink.as_mut() {
                    let _ = sink.write(Message::Pong(bytes));
                }
            }
            Ok(Frame::Close(reason)) => {
                tracing::info!(?reason, "the server closed the connection");
                // A moving worker's close is answered: the server has all it
                // sent. Hanging up now lets the server end the connection at
                // once rather than wait for the worker to.
                if self.moving && !self.draining {
                    if let Some(sink) = self.sink.as_mut() {
                        sink.close();
                    }
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "connection error"),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The server requeued this connection's leases when it closed; any
        // scrape still running will finish unreported.
        self.sink = None;
        self.held.clear();
        if let Some(handle) = self.heartbeat.take() {
            ctx.cancel_future(handle);
        }
        if self.moving && !self.draining {
            self.moving = false;
            self.drain_acked = false;
            self.failures = 0;
            tracing::info!("reconnecting to another node");
            self.reconnect_later(ctx);
            return;
        }
        if self.draining {
            // Nothing can be assigned without a connection.
            self.drain_acked = true;
            if self.busy.is_empty() {
                tracing::info!("drained; leaving");
                self.finish(0, ctx);
            }
            return;
        }
        tracing::warn!("disconnected from the server");
        self.reconnect_later(ctx);
    }
}

impl Handler<ScrapeDone> for Link {
    type Result = ();

    fn handle(&mut self, msg: ScrapeDone, ctx: &mut Context<Self>) {
        if self.busy.get(&msg.slot) == Some(&msg.lease) {
            self.busy.remove(&msg.slot);
        }
        if self.held.remove(&msg.lease).is_some() {
            let frame = match msg.outcome {
                Ok(ScrapeOutput::Items(items)) => WorkerFrame::Result {
                    task: msg.task,
                    lease: msg.lease,
                    items,
                    links: Vec::new(),
                },
                Ok(ScrapeOutput::Links(links)) => WorkerFrame::Result {
                    task: msg.task,
                    lease: msg.lease,
                    items: Vec::new(),
                    links,
                },
                Err(failure) => {
                    tracing::info!(task = msg.task, error = %failure.error, "task failed");
                    WorkerFrame::Failed {
                        task: msg.task,
                        lease: msg.lease,
                        error: failure.error,
                        retryable: failure.retryable,
                    }
                }
            };
            self.send(&frame);
        }
        if self.draining || self.moving {
            self.maybe_finish(ctx);
        } else if self.sink.is_some() {
            self.send(&WorkerFrame::Ready { credits: 1 });
        }
    }
}

/// Finish the held tasks, take no more, then leave.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for Link {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.start_draining(ctx);
    }
}
