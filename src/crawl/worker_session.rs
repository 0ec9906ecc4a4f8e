//! The WorkerSession actor: one per worker WebSocket (`/ws/worker`). It parses
//! and validates the worker's frames (docs/protocol.md §2) and turns them
//! into typed messages for the Dispatcher and the Merger.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use url::Url;

use super::dispatcher::{
    Connect, Credit, Disconnect, Dispatcher, Fetched, Heartbeat, StopAssigning, TaskFailed,
    TaskFinished, WorkerId,
};
use super::lease::LeaseToken;
use super::merger::{MergeOutcome, MergeResult, Merger};
use super::sites::{is_allowed, Sites};
use super::store::NewTask;
use crate::batch::WriteFailed;
use crate::protocol::frame::{self, Refs};
use crate::protocol::worker::{self, Item, Link, ServerFrame, TaskKind, WorkerFrame};
use crate::protocol::{ErrorCode, Refusal};
use crate::ws::{CloseCode, Frame, Outbound, ReadError, SendError, Silence};

/// Frames above this size get an `error` frame; the connection stays.
pub const SOFT_FRAME_LIMIT: usize = 1 << 20;
/// Frames above this size close the connection with 1009.
pub const HARD_FRAME_LIMIT: usize = 4 << 20;
/// The most links one listing result may carry.
const MAX_LINKS: usize = 2000;
/// The most offers one page result may carry.
const MAX_ITEMS: usize = 100;
/// A price above this (in cents) is not a game's price but a parsing accident.
const MAX_PRICE_CENTS: i64 = 100_000_000;

/// Timing handed to the session by the server settings.
#[derive(Debug, Clone, Copy)]
pub struct SessionTiming {
    pub heartbeat: Duration,
    pub lease: Duration,
}

pub struct WorkerSession {
    dispatcher: Addr<Dispatcher>,
    merger: Addr<Merger>,
    sites: Arc<Sites>,
    out: Outbound,
    peer: String,
    timing: SessionTiming,
    worker: Option<WorkerId>,
    name: String,
    /// The tasks assigned over this connection, by lease.
    assigned: HashMap<LeaseToken, Assigned>,
    silence: Silence,
    /// Results sent to the Merger and not yet answered.
    merging: usize,
    /// The socket closed; stop once the results in flight are settled, so that
    /// a draining worker's last results are not requeued as abandoned.
    closing: bool,
    /// Entered while the session handles anything: its log lines, and
    /// those of the store calls it makes, name the worker.
    span: tracing::Span,
}

struct Assigned {
    crawl_id: i64,
    kind: TaskKind,
    site: String,
}

impl WorkerSession {
    pub fn new(
        dispatcher: Addr<Dispatcher>,
        merger: Addr<Merger>,
        sites: Arc<Sites>,
        out: Outbound,
        peer: String,
        timing: SessionTiming,
    ) -> WorkerSession {
        let span = tracing::info_span!(
            "worker_session",
            %peer,
            worker = tracing::field::Empty,
            worker_name = tracing::field::Empty
        );
        WorkerSession {
            dispatcher,
            merger,
            sites,
            out,
            peer,
            timing,
            worker: None,
            name: String::new(),
            assigned: HashMap::new(),
            // A worker that says nothing for three heartbeats is gone.
            silence: Silence::new(timing.heartbeat * 3),
            merging: 0,
            closing: false,
            span,
        }
    }

    fn send(&self, frame: &ServerFrame, ctx: &mut Context<Self>) {
        let text = match serde_json::to_string(frame) {
            Ok(text) => text,
            Err(err) => {
                tracing::error!(error = %err, "could not encode a frame");
                return;
            }
        };
        if let Err(SendError::Full) = self.out.text(text) {
            tracing::warn!(worker = %self.name, "worker stopped reading; closed");
            ctx.stop();
        }
    }

    fn error(&self, code: ErrorCode, message: impl Into<String>, ctx: &mut Context<Self>) {
        self.refuse(Refusal::new(code, message), ctx);
    }

    fn refuse(&self, refusal: Refusal, ctx: &mut Context<Self>) {
        let Refusal { code, message } = refusal;
        tracing::debug!(worker = %self.name, code = code.as_str(), message, "refused a worker frame");
        self.send(&ServerFrame::Error { code, message }, ctx);
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let read =
            frame::within_soft_limit(text, SOFT_FRAME_LIMIT).and_then(|()| parse_frame(text));
        let frame = match read {
            Ok(frame) => frame,
            Err(refusal) => return self.refuse(refusal, ctx),
        };
        let worker = match (self.worker, &frame) {
            (None, WorkerFrame::Hello { .. }) => None,
            (None, _) => return self.error(ErrorCode::HelloRequired, "send hello first", ctx),
            (Some(_), WorkerFrame::Hello { .. }) => {
                return self.error(ErrorCode::BadFrame, "hello was already received", ctx)
            }
            (Some(id), _) => Some(id),
        };
        match (frame, worker) {
            (
                WorkerFrame::Hello {
                    name,
                    version,
                    slots,
                    ..
                },
                _,
            ) => self.on_hello(name, version, slots, ctx),
            (WorkerFrame::Ready { credits }, Some(worker)) => {
                self.dispatcher.do_send(Credit { worker, credits });
            }
            (WorkerFrame::Heartbeat { leases, restarts }, Some(worker)) => {
                let leases = leases.iter().filter_map(|l| LeaseToken::parse(l)).collect();
                self.dispatcher.do_send(Heartbeat {
                    worker,
                    leases,
                    restarts,
                });
            }
            (
                WorkerFrame::Result {
                    task,
                    lease,
                    items,
                    links,
                },
                Some(worker),
            ) => self.on_result(worker, task, &lease, items, links, ctx),
            (
                WorkerFrame::Failed {
                    task,
                    lease,
                    error,
                    retryable,
                },
                Some(worker),
            ) => self.on_failed(worker, task, &lease, error, retryable, ctx),
            (WorkerFrame::Drain, Some(worker)) => {
                self.dispatcher.do_send(StopAssigning { worker });
            }
            (_, None) => {}
        }
    }

    fn on_hello(&mut self, name: String, version: String, slots: u32, ctx: &mut Context<Self>) {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return self.error(
                ErrorCode::BadFrame,
                "name must be 1-64 printable characters",
                ctx,
            );
        }
        if !(1..=256).contains(&slots) {
            return self.error(ErrorCode::BadFrame, "slots must be between 1 and 256", ctx);
        }
        self.name = name.clone();
        self.span.record("worker_name", name.as_str());
        let connect = Connect {
            session: ctx.address(),
            name,
            version: version.chars().take(32).collect(),
            peer: self.peer.clone(),
            slots,
        };
        self.dispatcher
            .send(connect)
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(id) => {
                    act.worker = Some(id);
                    act.span.record("worker", id.0);
                    let welcome = ServerFrame::Welcome {
                        worker: id.0,
                        heartbeat_ms: millis(act.timing.heartbeat),
                        lease_ms: millis(act.timing.lease),
                    };
                    act.send(&welcome, ctx);
                }
                Err(_) => {
                    act.out
                        .close(CloseCode::Again, "the dispatcher is restarting; try again");
                    ctx.stop();
                }
            })
            .wait(ctx);
    }

    fn on_result(
        &mut self,
        worker: WorkerId,
        task: u64,
        lease: &str,
        items: Vec<Item>,
        links: Vec<Link>,
        ctx: &mut Context<Self>,
    ) {
        let _result = tracing::info_span!("result", task, lease).entered();
        let Some(token) = LeaseToken::parse(lease).filter(|t| t.task() as u64 == task) else {
            return self.error(ErrorCode::BadFrame, "lease does not name this task", ctx);
        };
        let Some(assigned) = self.assigned.remove(&token) else {
            // Not a lease of this connection: an old one, or someone else's.
            return self.send(
                &ServerFrame::Stale {
                    task,
                    lease: lease.to_owned(),
                },
                ctx,
            );
        };
        let validated =
            match assigned.kind {
                TaskKind::Page => validate_items(items, &self.sites, &assigned.site)
                    .map(|items| (items, Vec::new())),
                TaskKind::Listing => validate_links(links, &self.sites, &assigned.site)
                    .map(|links| (Vec::new(), links)),
            };
        let (items, links) = match validated {
            Ok(v) => v,
            Err(reason) => {
                self.error(ErrorCode::InvalidResult, reason.clone(), ctx);
                // A result that cannot be trusted is a permanent failure of the
                // task, recorded with its reason; nothing of it is merged.
                let failed = TaskFailed {
                    worker,
                    lease: token,
                    error: format!("invalid result: {reason}"),
                    retryable: false,
                };
                self.dispatcher.do_send(failed);
                return;
            }
        };
        self.dispatcher.do_send(Fetched {
            lease: token.clone(),
        });
        let merge = MergeResult {
            lease: token.clone(),
            crawl_id: assigned.crawl_id,
            items,
            links,
        };
        self.merging += 1;
        self.merger
            .send(merge)
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.merging -= 1;
                act.settle(res, worker, task, token, ctx);
                if act.closing && act.merging == 0 {
                    ctx.stop();
                }
            })
            .spawn(ctx);
    }

    /// Tells the Dispatcher (and, for a stale lease, the worker) how a merge went.
    fn settle(
        &mut self,
        res: Result<Result<MergeOutcome, WriteFailed>, MailboxError>,
        worker: WorkerId,
        task: u64,
        token: LeaseToken,
        ctx: &mut Context<Self>,
    ) {
        match res {
            Ok(Ok(MergeOutcome::Merged)) => {
                self.dispatcher.do_send(TaskFinished {
                    worker,
                    lease: token,
                });
            }
            Ok(Ok(MergeOutcome::Stale)) => {
                self.send(
                    &ServerFrame::Stale {
                        task,
                        lease: token.to_string(),
                    },
                    ctx,
                );
                self.dispatcher.do_send(TaskFinished {
                    worker,
                    lease: token,
                });
            }
            Ok(Err(err)) => {
                tracing::error!(worker = %self.name, task, lease = %token, error = %err, "merge failed; the task will be retried");
                self.error(
                    ErrorCode::Internal,
                    "the result could not be stored; the task will be retried",
                    ctx,
                );
                let failed = TaskFailed {
                    worker,
                    lease: token,
                    error: err.to_string(),
                    retryable: true,
                };
                self.dispatcher.do_send(failed);
            }
            Err(_) => {
                self.error(
                    ErrorCode::Internal,
                    "the merger is restarting; the task will be retried",
                    ctx,
                );
                let failed = TaskFailed {
                    worker,
                    lease: token,
                    error: "merger unavailable".into(),
                    retryable: true,
                };
                self.dispatcher.do_send(failed);
            }
        }
    }

    /// The socket is done: stop now, or once the results in flight are merged.
    fn close(&mut self, ctx: &mut Context<Self>) {
        self.closing = true;
        if self.merging == 0 {
            ctx.stop();
        }
    }

    fn on_failed(
        &mut self,
        worker: WorkerId,
        task: u64,
        lease: &str,
        error: String,
        retryable: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(token) = LeaseToken::parse(lease).filter(|t| t.task() as u64 == task) else {
            return self.error(ErrorCode::BadFrame, "lease does not name this task", ctx);
        };
        if self.assigned.remove(&token).is_none() {
            return self.send(
                &ServerFrame::Stale {
                    task,
                    lease: lease.to_owned(),
                },
                ctx,
            );
        }
        let error: String = error.chars().take(2000).collect();
        let lease = lease.to_owned();
        self.dispatcher
            .send(TaskFailed {
                worker,
                lease: token,
                error,
                retryable,
            })
            .into_actor(self)
            .map(move |res, act, ctx| {
                if let Ok(Ok(false)) = res {
                    act.send(&ServerFrame::Stale { task, lease }, ctx);
                }
            })
            .spawn(ctx);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Parses a frame, telling malformed JSON, unknown ops and wrong types apart.
pub fn parse_frame(text: &str) -> Result<WorkerFrame, Refusal> {
    frame::parse_op_frame(text, &worker::OPS, Refs::Ignored)
        .map(|read| read.frame)
        .map_err(|unread| unread.refusal)
}

/// Checks a page's offers; the store name always comes from the site.
pub fn validate_items(items: Vec<Item>, sites: &Sites, site: &str) -> Result<Vec<Item>, String> {
    let Some(site) = sites.get(site) else {
        return Err(format!("unknown site {site:?}"));
    };
    if items.is_empty() {
        return Err("a page result must carry at least one item".into());
    }
    if items.len() > MAX_ITEMS {
        return Err(format!("at most {MAX_ITEMS} items per page"));
    }
    items
        .into_iter()
        .map(|mut item| {
            item.title = item.title.split_whitespace().collect::<Vec<_>>().join(" ");
            if item.title.is_empty() || item.title.chars().count() > 300 {
                return Err("item title must be 1-300 characters".to_owned());
            }
            if !(0..=MAX_PRICE_CENTS).contains(&item.price_cents)
                || item
                    .regular_cents
                    .is_some_and(|r| !(0..=MAX_PRICE_CENTS).contains(&r))
            {
                return Err(format!("price out of range for {:?}", item.title));
            }
            if item.currency.len() != 3 || !item.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "currency {:?} is not an ISO 4217 code",
                    item.currency
                ));
            }
            let url = Url::parse(&item.url)
                .map_err(|_| format!("item url {:?} is not a URL", item.url))?;
            if !is_allowed(&url, &site.profile.allowed_hosts) {
                return Err(format!("item url {url} is not on an allowed host"));
            }
            item.store = site.profile.store.clone();
            Ok(item)
        })
        .collect()
}

/// Keeps a listing's links that the site allows; the rest are dropped.
pub fn validate_links(links: Vec<Link>, sites: &Sites, site: &str) -> Result<Vec<NewTask>, String> {
    let Some(config) = sites.get(site) else {
        return Err(format!("unknown site {site:?}"));
    };
    if links.len() > MAX_LINKS {
        return Err(format!("at most {MAX_LINKS} links per listing"));
    }
    Ok(links
        .into_iter()
        .filter_map(|link| {
            let mut url = Url::parse(&link.url).ok()?;
            url.set_fragment(None);
            is_allowed(&url, &config.profile.allowed_hosts).then(|| NewTask {
                kind: link.kind,
                site: site.to_owned(),
                url,
            })
        })
        .collect())
}

impl Actor for WorkerSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.timing.heartbeat, |act, ctx| {
            if act.silence.too_long() {
                tracing::warn!(worker = %act.name, "worker missed its heartbeats; closing");
                act.out.close(CloseCode::Away, "heartbeat timeout");
                ctx.stop();
            }
        });
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        if let Some(worker) = self.worker {
            self.dispatcher.do_send(Disconnect { worker });
        }
        Running::Stop
    }
}

impl StreamHandler<Result<Frame, ReadError>> for WorkerSession {
    fn handle(&mut self, msg: Result<Frame, ReadError>, ctx: &mut Context<Self>) {
        let span = self.span.clone();
        let _entered = span.enter();
        self.silence.heard();
        match msg {
            Ok(Frame::Text(text)) => self.on_text(&text, ctx),
            Ok(Frame::Binary(_)) => self.refuse(frame::binary_refused(), ctx),
            Ok(Frame::Ping(bytes)) => self.out.pong(bytes),
            Ok(Frame::Pong(_)) => {}
            Ok(Frame::Close(_)) => {
                self.out.bye();
                self.close(ctx);
            }
            Err(err) => {
                tracing::warn!(worker = %self.name, error = %err, "worker protocol error");
                let (code, reason) = err.close();
                self.out.close(code, reason);
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.close(ctx);
    }
}

/// The Dispatcher leased a task to this worker.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AssignTask {
    pub lease: LeaseToken,
    pub crawl_id: i64,
    pub attempt: u32,
    pub kind: TaskKind,
    pub url: String,
    pub site: String,
    pub host: String,
    pub lease_until: DateTime<Utc>,
}

impl Handler<AssignTask> for WorkerSession {
    type Result = ();

    fn handle(&mut self, msg: AssignTask, ctx: &mut Context<Self>) {
        let span = self.span.clone();
        let _entered = span.enter();
        let Some(site) = self.sites.get(&msg.site) else {
            return;
        };
        let frame = ServerFrame::Assign {
            task: msg.lease.task() as u64,
            lease: msg.lease.to_string(),
            attempt: msg.attempt,
            kind: msg.kind,
            url: msg.url,
            site: msg.site.clone(),
            profile: Box::new(site.profile.clone()),
            lease_until: msg.lease_until,
        };
        self.assigned.insert(
            msg.lease,
            Assigned {
                crawl_id: msg.crawl_id,
                kind: msg.kind,
                site: msg.site,
            },
        );
        self.send(&frame, ctx);
    }
}

/// Ask the worker to finish its tasks and leave, or, with `reconnect`, to
/// finish them and come back to another node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainWorker {
    pub reconnect: bool,
}

impl Handler<DrainWorker> for WorkerSession {
    type Result = ();

    fn handle(&mut self, msg: DrainWorker, ctx: &mut Context<Self>) {
        let frame = ServerFrame::Drain {
            reconnect: msg.reconnect,
        };
        self.send(&frame, ctx);
    }
}

/// Close the connection (an admin disconnects the worker). Results
/// already being merged are settled first, as when the worker closes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseConnection {
    pub reason: &'static str,
}

impl Handler<CloseConnection> for WorkerSession {
    type Result = ();

    fn handle(&mut self, msg: CloseConnection, ctx: &mut Context<Self>) {
        self.out.close(CloseCode::Normal, msg.reason);
        self.close(ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::protocol::doc_examples;

    #[test]
    fn malformed_unknown_and_mistyped_frames_are_told_apart() {
        let code = |text: &str| parse_frame(text).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::BadFrame);
        assert_eq!(code("[1,2]"), ErrorCode::BadFrame);
        assert_eq!(code(r#"{"op":"explode"}"#), ErrorCode::UnknownOp);
        let err = parse_frame(r#"{"op":"ready","credits":"many"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadFrame);
        assert!(err.message.contains("ready"), "{}", err.message);
        assert_eq!(
            parse_frame(r#"{"op":"ready","credits":3}"#).unwrap(),
            WorkerFrame::Ready { credits: 3 }
        );
    }

    /// The op of a frame the server sends; a new variant must be named here
    /// (and shown in docs/protocol.md §2) before this compiles.
    fn server_op(frame: &ServerFrame) -> &'static str {
        match frame {
            ServerFrame::Welcome { .. } => "welcome",
            ServerFrame::Assign { .. } => "assign",
            ServerFrame::Cancel { .. } => "cancel",
            ServerFrame::Stale { .. } => "stale",
            ServerFrame::Drain { .. } => "drain",
            ServerFrame::Error { .. } => "error",
        }
    }

    /// The op of a frame a worker sends, likewise.
    fn worker_op(frame: &WorkerFrame) -> &'static str {
        match frame {
            WorkerFrame::Hello { .. } => "hello",
            WorkerFrame::Ready { .. } => "ready",
            WorkerFrame::Heartbeat { .. } => "heartbeat",
            WorkerFrame::Result { .. } => "result",
            WorkerFrame::Drain => "drain",
            WorkerFrame::Failed { .. } => "failed",
        }
    }

    /// Every frame example in docs/protocol.md §2 is one the code reads and
    /// writes as shown: a worker's frame parses, with every field it shows
    /// read; a server's frame (`assign` with its profile included) is
    /// exactly what the server writes for it. Every op has an example.
    #[test]
    fn every_worker_example_in_the_protocol_parses() {
        let doc = doc_examples::protocol();
        let section = doc_examples::section(&doc, 2);
        let (mut worker_ops, mut server_ops) = (BTreeSet::new(), BTreeSet::new());
        for line in section.lines().filter(|l| l.starts_with("{\"op\"")) {
            let shown = doc_examples::json(line);
            // `drain` goes both ways, the server's with a field of its own;
            // the others one way only.
            let as_server = serde_json::from_value::<ServerFrame>(shown.clone()).ok();
            let as_worker = parse_frame(line);
            match &as_worker {
                Ok(frame) => {
                    let read = serde_json::to_value(frame).expect("json");
                    if doc_examples::shows(&read, &shown) {
                        worker_ops.insert(worker_op(frame));
                    } else {
                        assert!(as_server.is_some(), "{line}: the server read only {read}");
                    }
                }
                Err(Refusal {
                    code: ErrorCode::UnknownOp,
                    ..
                }) => {}
                Err(e) => panic!("{line}: {e:?}"),
            }
            match serde_json::from_value::<ServerFrame>(shown.clone()) {
                Ok(frame) => {
                    let written = serde_json::to_value(&frame).expect("json");
                    assert_eq!(written, shown, "{line}: the server writes it otherwise");
                    server_ops.insert(server_op(&frame));
                }
                Err(_) if as_worker.is_ok() => {}
                Err(e) => panic!("{line}: not a frame the server sends: {e}"),
            }
        }
        let all_server_ops = ["welcome", "assign", "cancel", "stale", "drain", "error"];
        assert_eq!(
            worker_ops,
            BTreeSet::from(worker::OPS),
            "every op the parser knows, and no other"
        );
        assert_eq!(server_ops, BTreeSet::from(all_server_ops));
    }
}
