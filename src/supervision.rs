//! Supervision that survives panics.
//!
//! actix's own `Supervisor` restarts an actor only once its context has
//! stopped, and a panic in a handler never gets there: it unwinds out of the
//! actor's future, Tokio drops the task, and every `Addr` to it answers
//! `MailboxError::Closed` from then on. The supervisor here polls the actor
//! inside `catch_unwind`, so a panic in a handler, a timer or a future the
//! actor spawned is caught where it happened. The actor is then restarted
//! in place: its mailbox and address stay, what it was running (timers,
//! futures) is dropped, and `Supervised::restarting` rebuilds the rest from
//! the database before `started` runs again. The request whose handler
//! panicked loses its reply sender on the way out, so whoever sent it hears
//! an error rather than nothing.
//!
//! Each restart is logged with the actor's name and counted for `/metrics`
//! (`bazaar_actor_restarts_total{actor}`). The panic itself is logged by the
//! hook `telemetry` installs, which reads the actor's name from here.

use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::{self, Poll};

use actix::dev::ContextFut;
use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Supervised};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::lifecycle::Lifecycle;

/// The server's supervised actors, as logs, metrics and the fault drill
/// name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Dispatcher,
    Merger,
    Scheduler,
    Registry,
    Room,
    Lot,
    Writer,
    Hub,
    Mailer,
    Notifier,
    Handover,
    LocalWorkers,
}

impl Name {
    pub const ALL: [Name; 12] = [
        Name::Dispatcher,
        Name::Merger,
        Name::Scheduler,
        Name::Registry,
        Name::Room,
        Name::Lot,
        Name::Writer,
        Name::Hub,
        Name::Mailer,
        Name::Notifier,
        Name::Handover,
        Name::LocalWorkers,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Name::Dispatcher => "dispatcher",
            Name::Merger => "merger",
            Name::Scheduler => "scheduler",
            Name::Registry => "registry",
            Name::Room => "room",
            Name::Lot => "lot",
            Name::Writer => "writer",
            Name::Hub => "hub",
            Name::Mailer => "mailer",
            Name::Notifier => "notifier",
            Name::Handover => "handover",
            Name::LocalWorkers => "local_workers",
        }
    }

    pub fn parse(name: &str) -> Option<Name> {
        Name::ALL.into_iter().find(|n| n.as_str() == name)
    }

    fn index(self) -> usize {
        Name::ALL.iter().position(|&n| n == self).unwrap_or(0)
    }
}

/// When an actor is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// After a panic, and after it stopped while its address is still held:
    /// the node's long-lived actors, which never mean to stop.
    Always,
    /// After a panic only: actors that stop of their own accord when their
    /// work is done (a room whose last member left).
    OnPanic,
}

/// Restarts per actor since the process began. Process-wide, like panics.
static RESTARTS: [AtomicU64; Name::ALL.len()] = [const { AtomicU64::new(0) }; Name::ALL.len()];

thread_local! {
    /// The actor being polled on this thread, for the panic hook.
    static CURRENT: Cell<Option<Name>> = const { Cell::new(None) };
}

/// The supervised actor running on this thread now, if a panic happens
/// inside one.
pub fn current() -> Option<Name> {
    CURRENT.with(Cell::get)
}

/// How often each actor has been restarted, for `/metrics`.
pub fn restarts() -> impl Iterator<Item = (Name, u64)> {
    Name::ALL
        .into_iter()
        .map(|name| (name, RESTARTS[name.index()].load(Ordering::Relaxed)))
}

/// Starts `f`'s actor on the current arbiter under a supervisor that also
/// restarts it after a panic. Once `lifecycle` stops, the actor is asked
/// to stop (its `stopping` may hold it a while, as a room storing what it
/// published does) and is not restarted; shutdown waits for it.
pub fn start<A, F>(name: Name, restart: Restart, lifecycle: &Lifecycle, f: F) -> Addr<A>
where
    A: Supervised + Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A,
{
    let (fut, addr) = context(f);
    lifecycle.spawn_whole(Supervisor {
        fut,
        name,
        restart,
        stopping: Box::pin(lifecycle.stopping()),
        stopped: false,
    });
    addr
}

/// Starts a socket's session actor, which is not restarted after a panic
/// (its state is the connection's, and the peer reconnects) but stopped as
/// if it had been asked to: `stopping` and `stopped` run, so it leaves its
/// rooms and its worker's tasks go back to the queue rather than lingering
/// until their leases run out.
pub fn start_session<A, F>(f: F) -> Addr<A>
where
    A: Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A,
{
    let (fut, addr) = context(f);
    actix::spawn(Session {
        fut,
        panicked: false,
    });
    addr
}

/// `f`'s actor in a context of its own, as `Actor::create` builds it, for
/// a wrapper to poll.
fn context<A, F>(f: F) -> (ContextFut<A, Context<A>>, Addr<A>)
where
    A: Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A,
{
    let mut ctx = Context::new();
    let act = f(&mut ctx);
    let addr = ctx.address();
    (ctx.into_future(act), addr)
}

struct Session<A: Actor<Context = Context<A>>> {
    fut: ContextFut<A, Context<A>>,
    panicked: bool,
}

impl<A: Actor<Context = Context<A>>> Future for Session<A> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let polled = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.fut).poll(cx)));
            match polled {
                Ok(poll) => return poll,
                // A second panic, on the way out: the task ends as it would
                // have without this wrapper.
                Err(_) if this.panicked => return Poll::Ready(()),
                Err(_) => {
                    // Stopping skips the futures it was running (one of
                    // them may be what panicked) and runs its hooks.
                    this.panicked = true;
                    tracing::warn!("session stopped after a panic");
                    this.fut.ctx().stop();
                }
            }
        }
    }
}

struct Supervisor<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    fut: ContextFut<A, Context<A>>,
    name: Name,
    restart: Restart,
    /// Resolves when the node stops.
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The node stopped and the actor was asked to: it ends for good.
    stopped: bool,
}

impl<A> Future for Supervisor<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.stopped && this.stopping.as_mut().poll(cx).is_ready() {
            this.stopped = true;
            this.fut.ctx().stop();
        }
        loop {
            let outer = CURRENT.with(|c| c.replace(Some(this.name)));
            // The actor's state is touched again only through `restarting`,
            // which resets whatever a handler may have left half done.
            let polled = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.fut).poll(cx)));
            CURRENT.with(|c| c.set(outer));
            let why = match polled {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(())) if this.restart == Restart::OnPanic => return Poll::Ready(()),
                Ok(Poll::Ready(())) => "stopped",
                // The panic hook has logged it, with this actor's name.
                Err(_) => "panicked",
            };
            // Nobody to serve: the node is stopping, or (false from
            // `restart`) nothing holds its address any more.
            if this.stopped || !this.fut.restart() {
                return Poll::Ready(());
            }
            RESTARTS[this.name.index()].fetch_add(1, Ordering::Relaxed);
            tracing::warn!(actor = this.name.as_str(), why, "actor restarted");
        }
    }
}

/// A panic's message, when it has one.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Names the actor `BAZAAR_FAULT_PANIC_ONCE_IN` makes panic once, for
/// fault drills: `Err` if it names none.
pub fn drill_target() -> Result<Option<Name>, String> {
    match std::env::var(DRILL_ENV) {
        Ok(name) if !name.is_empty() => Name::parse(&name).map(Some).ok_or_else(|| {
            let names: Vec<&str> = Name::ALL.iter().map(|n| n.as_str()).collect();
            format!(
                "{DRILL_ENV}={name:?} names no actor; use one of {}",
                names.join(", ")
            )
        }),
        _ => Ok(None),
    }
}

/// The fault drill's switch: the actor named here panics once, at the next
/// message (or timer, for actors that have no messages) it handles.
pub const DRILL_ENV: &str = "BAZAAR_FAULT_PANIC_ONCE_IN";

/// Panics if the fault drill names `name` and has not fired yet. Called
/// first thing in each handler of a supervised actor, so that the drill
/// strikes wherever the actor's next piece of work lands.
pub fn drill(name: Name) {
    static TARGET: OnceLock<Option<Name>> = OnceLock::new();
    static FIRED: AtomicBool = AtomicBool::new(false);
    let target = TARGET.get_or_init(|| drill_target().ok().flatten());
    if *target == Some(name) && !FIRED.swap(true, Ordering::Relaxed) {
        panic!("fault drill: {} panics once ({DRILL_ENV})", name.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::prelude::*;

    struct Counter {
        count: u32,
        restarted: u32,
    }

    impl Actor for Counter {
        type Context = Context<Self>;
    }

    impl Supervised for Counter {
        fn restarting(&mut self, _: &mut Context<Self>) {
            self.restarted += 1;
        }
    }

    #[derive(Message)]
    #[rtype(result = "(u32, u32)")]
    struct Add(u32);

    impl Handler<Add> for Counter {
        type Result = MessageResult<Add>;

        fn handle(&mut self, msg: Add, _: &mut Context<Self>) -> MessageResult<Add> {
            assert!(msg.0 != 13, "thirteen is unlucky");
            self.count += msg.0;
            MessageResult((self.count, self.restarted))
        }
    }

    #[actix::test]
    async fn an_actor_that_panics_in_a_handler_is_restarted_and_keeps_its_address() {
        let addr = start(Name::Merger, Restart::Always, &Lifecycle::new(), |_| {
            Counter {
                count: 0,
                restarted: 0,
            }
        });
        let before = restarts().find(|(n, _)| *n == Name::Merger).map(|(_, c)| c);

        assert_eq!(addr.send(Add(2)).await.ok(), Some((2, 0)));
        let panicked = addr.send(Add(13)).await;
        let after = addr.send(Add(3)).await;

        assert!(panicked.is_err(), "the panicking request hears an error");
        assert_eq!(
            after.ok(),
            Some((5, 1)),
            "same address, state kept, restarted once"
        );
        let now = restarts().find(|(n, _)| *n == Name::Merger).map(|(_, c)| c);
        assert!(now > before, "the restart is counted");
    }

    #[actix::test]
    async fn an_actor_restarted_only_on_panic_may_stop_for_good() {
        struct Once;
        impl Actor for Once {
            type Context = Context<Self>;
        }
        impl Supervised for Once {}
        #[derive(Message)]
        #[rtype(result = "()")]
        struct Stop;
        impl Handler<Stop> for Once {
            type Result = ();
            fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
                ctx.stop();
            }
        }

        let addr = start(Name::Room, Restart::OnPanic, &Lifecycle::new(), |_| Once);
        addr.send(Stop).await.expect("handled");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;

        assert!(!addr.connected(), "a stopped room stays stopped");
    }

    #[actix::test]
    async fn when_the_node_stops_an_actor_stops_for_good_and_is_waited_for() {
        struct Ticking(tokio::sync::mpsc::UnboundedSender<&'static str>);
        impl Actor for Ticking {
            type Context = Context<Self>;
            fn started(&mut self, ctx: &mut Context<Self>) {
                ctx.run_interval(std::time::Duration::from_millis(5), |_, _| {});
            }
            fn stopped(&mut self, _: &mut Context<Self>) {
                let _ = self.0.send("stopped");
            }
        }
        impl Supervised for Ticking {}
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let lifecycle = Lifecycle::new();
        let addr = start(Name::Mailer, Restart::Always, &lifecycle, |_| Ticking(tx));

        let stopped = lifecycle.stop(std::time::Duration::from_secs(5)).await;

        assert!(stopped, "the stop waited for the actor and it ended");
        assert_eq!(rx.recv().await, Some("stopped"));
        assert!(
            !addr.connected(),
            "not restarted, though its address is held"
        );
    }

    #[actix::test]
    async fn a_session_that_panics_stops_and_runs_its_stopped_hook() {
        struct Session(tokio::sync::mpsc::UnboundedSender<&'static str>);
        impl Actor for Session {
            type Context = Context<Self>;
            fn stopped(&mut self, _: &mut Context<Self>) {
                let _ = self.0.send("stopped");
            }
        }
        #[derive(Message)]
        #[rtype(result = "()")]
        struct Boom;
        impl Handler<Boom> for Session {
            type Result = ();
            fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
                panic!("boom");
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();

        let addr = start_session(|_| Session(tx));
        let answer = addr.send(Boom).await;

        assert!(answer.is_err());
        assert_eq!(rx.recv().await, Some("stopped"));
    }

    #[test]
    fn the_drill_names_every_actor_and_refuses_others() {
        for name in Name::ALL {
            assert_eq!(Name::parse(name.as_str()), Some(name));
        }
        assert_eq!(Name::parse("dispatch"), None);
    }
}
