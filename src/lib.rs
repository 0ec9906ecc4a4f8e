//! Bazaar: one actix server for a gamers' community site.
//!
//! Worker processes connect over WebSockets and scrape game stores; the server
//! merges their offers into one catalog of games with prices, historical lows
//! and price history. People talk in chat rooms and bid in live auction rooms
//! over a second WebSocket.
//!
//! # Layout
//!
//! ```text
//! bazaar serve                    startup/                Application, on one lifecycle.rs
//! ├─ ↻ Dispatcher                 crawl/dispatcher.rs     leases tasks to workers' credits
//! │    │   restart: slots recounted from its leases, waiting tasks given
//! │    │   back, every worker delivers and reconnects (credits afresh)
//! │    └─ WorkerSession*          crawl/worker_session.rs one per /ws/worker socket
//! ├─ ↻ Merger                     crawl/merger.rs         results → catalog; crawl completion
//! │        (a batch.rs Batcher, like the MessageWriter: one transaction per batch)
//! │        restart: merges in flight fail, their tasks are retried
//! ├─ ↻ Scheduler                  crawl/scheduler.rs      crawl schedule, lease-expiry sweep, lots
//! │        restart: timers set again; a crawl start in flight is refused
//! ├─ ↻ RoomRegistry               rooms/registry.rs       topic → Room or AuctionRoom
//! │    │   restart: keeps the rooms still running
//! │    ├─ ↻ Room*                 rooms/room.rs           members, seq, stored messages, fan-out
//! │    │      restart (after a panic only): keeps members and unstored
//! │    │      messages, says in flight are refused, seq marks reloaded
//! │    ├─ ↻ AuctionRoom*          auction/room.rs         a lot: bids one at a time, events after commit
//! │    │      restart (after a panic only): re-reads the lot, tells watchers
//! │    └─ ClientSession*          rooms/session.rs        one per /ws socket
//! ├─ ↻ MessageWriter              rooms/writer.rs         every room's messages, one transaction per write
//! │        restart: rooms write again what it held (by id: once)
//! ├─ ↻ SessionHub                 accounts/hub.rs         an account's sockets: logout, changes
//! │        restart: keeps the open sockets; a notice it dropped is sent again
//! ├─ ↻ Mailer                     mail/mailer.rs          outbox → SMTP or .eml files, throttle, backoff
//! │        restart: rounds run as tasks of their own, so none is cut short
//! ├─ ↻ Notifier                   mail/notifier.rs        digests and price alerts (scheduler node only)
//! ├─ Leadership                   roles.rs                the scheduler role: one node's timed duties
//! ├─ ↻ Handover                   handover.rs             SIGTERM or Drain node: workers, clients move on
//! ├─ Bus                          bus/                    LocalBus, or RedisBus between nodes (cluster)
//! └─ ↻ LocalWorkers               crawl/local_workers.rs  `bazaar worker` children, started again
//!                                                         with backoff when they exit
//!
//! ↻ supervision.rs: a panic in a handler, timer or spawned future is
//!   caught and logged with the actor's name, counted in /metrics, and the
//!   actor restarts in place (same address) once `restarting` has rebuilt
//!   what the panic may have left half done. The request it panicked on
//!   hears an error. Sessions are not restarted: their socket closes, and
//!   the client or worker reconnects.
//!
//! bazaar-worker (or bazaar worker) the worker crate, worker/src/
//! ├─ Link                         link.rs                 WebSocket to the server, reconnects
//! └─ Supervisor ─ Scraper × slots scrapers.rs             fetch (scrape/fetch.rs) + extract (scrape/);
//!                                                         a panic while extracting restarts it
//! ```
//!
//! The queue and the catalog live in the database (`crawl/store.rs`,
//! `crawl/catalog.rs`; schema in the `migration` crate, entities in `entity`).
//! Accounts (argon2id, cookie sessions, CSRF, throttling) are `accounts/`;
//! the auction rules are pure functions in `auction/`. Pages and the JSON
//! API are in `web/`; the wire protocol is `protocol/` (docs/protocol.md
//! in serde types); the demo stores the default crawl visits are in
//! `demo/`; the `bazaar` command is the `cli/` crate, and the load generator
//! behind `bazaar bench` the `bench/` crate;
//! `metrics.rs` holds the per-node counters and the text format of `/metrics`.
//! Both WebSockets leave the HTTP server at their upgrade (`ws/`): each
//! socket is then its session actor, which reads frames itself, and one task
//! that writes its bounded queue.
//!
//! `docs/architecture.md` describes the design section by section, and
//! `docs/protocol.md` the wire protocol; comments cite their sections.

pub mod accounts;
pub mod admin;
pub mod auction;
pub(crate) mod batch;
pub(crate) mod bus;
pub mod chat_cli;
pub mod clock;
pub mod config;
pub mod crawl;
pub mod db;
pub mod demo;
pub mod domain;
pub(crate) mod handover;
pub mod lifecycle;
pub mod mail;
pub(crate) mod metrics;
pub mod retention;
pub(crate) mod roles;
pub mod rooms;
pub(crate) mod secrets;
pub mod sites_cli;
pub mod startup;
pub(crate) mod supervision;
pub mod telemetry;
pub(crate) mod web;
pub(crate) mod ws;

// The wire protocol (protocol/) and the worker (worker/) are crates of
// their own; the server's modules reach them, and the worker's scraping,
// backoff and connections it shares, under the names they always used.
pub use bazaar_protocol as protocol;
pub use bazaar_worker as worker;
pub(crate) use bazaar_worker::backoff;
pub use bazaar_worker::{net, scrape};
