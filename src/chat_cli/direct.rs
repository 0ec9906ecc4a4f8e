//! Direct conversations: two members of a room talk over a WebRTC data
//! channel that the server does not carry, as the browser page does. The
//! server relays only the negotiation, as `signal` frames whose `data` is
//! one of (docs/protocol.md, "Direct conversations"):
//!
//! - `{"kind":"offer","sdp":...}`: the caller asks; nothing happens until the
//!   callee says yes (`/accept`), or no (`/reject`, which sends `reject`);
//! - `{"kind":"answer","sdp":...}` and `{"kind":"ice","candidate":{...}}`;
//! - `{"kind":"bye"}`: either side ends it (or withdraws an offer).
//!
//! This module is the conversations' bookkeeping: who asked whom, what was
//! said yes to, what each command and signal does, and what the user reads.
//! The transport of each conversation runs as a task of its own (link.rs);
//! its events come back here through one channel.

// Without the transport (the `p2p` feature), no task ever reports.
#![cfg_attr(not(feature = "p2p"), allow(dead_code))]

use std::collections::{BTreeMap, HashMap};

use chrono::Local;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::stun::StunServer;

/// The same limit as a room message, in characters.
pub const MAX_TEXT: usize = 2000;

/// The most candidates kept for an offer not yet accepted: a browser
/// sends a handful per network interface.
const MAX_EARLY: usize = 64;

/// What a conversation's task is asked to do.
#[derive(Debug)]
pub enum Command {
    /// An answer or a candidate from the peer.
    Remote(Value),
    Send(String),
    Close,
}

/// What a conversation's task reports.
#[derive(Debug)]
pub enum Event {
    /// Signal data for the peer.
    Signal(Value),
    Open,
    Text(String),
    /// Whether a line typed here went out on the channel.
    Sent {
        text: String,
        sent: bool,
    },
    /// The task is over; nothing follows.
    Closed(Ended),
}

/// Why a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Closed from here.
    Closed,
    /// The other side's channel or connection closed.
    PeerClosed,
    /// The callee never said yes or no.
    NoAnswer,
    /// Both said yes, but no address of one reached the other.
    TimedOut,
    /// It was open, and the peer stopped being reachable.
    Lost,
    Failed(String),
}

impl Ended {
    fn reason(&self) -> String {
        match self {
            Ended::Closed => "closed".into(),
            Ended::PeerClosed => "they closed it".into(),
            Ended::NoAnswer => "they did not answer".into(),
            Ended::TimedOut => "no route to them (timed out)".into(),
            Ended::Lost => "the connection was lost (no route to them any more)".into(),
            Ended::Failed(why) => why.clone(),
        }
    }
}

/// How a conversation's task starts.
#[derive(Debug)]
pub enum Role {
    Call,
    /// Their offer, and the candidates that came before the yes.
    Answer {
        offer: String,
        early: Vec<Value>,
    },
}

/// What every conversation's transport is set up with.
#[derive(Debug, Clone, Default)]
pub struct LinkOptions {
    pub stun: Vec<StunServer>,
}

/// A task's events, tagged with the task they come from: a conversation
/// that was closed and opened again must not hear the old task.
#[derive(Clone)]
pub struct Events {
    link: u64,
    tx: mpsc::UnboundedSender<(u64, Event)>,
}

impl Events {
    pub fn send(&self, event: Event) {
        // The chat loop is gone only when the process is ending.
        let _ = self.tx.send((self.link, event));
    }
}

enum State {
    /// They asked; we have not said yes.
    Asked { offer: String, early: Vec<Value> },
    Linked {
        link: u64,
        commands: mpsc::UnboundedSender<Command>,
        phase: Phase,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// We asked; no answer yet.
    Calling,
    /// Both said yes; the channel is not open yet.
    Connecting,
    Open,
}

struct Talk {
    user: String,
    state: State,
}

/// Signal data to send, and to which connection.
pub type Outbox = Vec<(String, Value)>;

/// The conversations of one chat client, by the peer's connection id.
pub struct Directs {
    options: LinkOptions,
    talks: HashMap<String, Talk>,
    next_link: u64,
    events: mpsc::UnboundedSender<(u64, Event)>,
    /// The peer plain lines go to, after `/direct`.
    pub focus: Option<String>,
}

impl Directs {
    pub fn new(options: LinkOptions) -> (Directs, mpsc::UnboundedReceiver<(u64, Event)>) {
        let (events, rx) = mpsc::unbounded_channel();
        let directs = Directs {
            options,
            talks: HashMap::new(),
            next_link: 1,
            events,
            focus: None,
        };
        (directs, rx)
    }

    /// The connections with an open conversation, for `/who`.
    pub fn is_open(&self, conn: &str) -> bool {
        self.talks.get(conn).is_some_and(|t| {
            matches!(
                t.state,
                State::Linked {
                    phase: Phase::Open,
                    ..
                }
            )
        })
    }

    /// `/direct NAME`: talk to them, asking first when not yet connected;
    /// plain lines go to them from now on.
    pub fn direct(
        &mut self,
        members: &BTreeMap<String, String>,
        me: Option<&str>,
        name: &str,
    ) -> Outbox {
        let Some(conn) = self.member(members, me, name) else {
            return Vec::new();
        };
        let user = members[&conn].clone();
        self.focus = Some(conn.clone());
        match self.talks.get(&conn).map(|t| &t.state) {
            Some(State::Linked {
                phase: Phase::Open, ..
            }) => {
                println!("* lines go to {user} only now (direct); /room goes back");
                Vec::new()
            }
            Some(State::Linked { .. }) => {
                println!("* still connecting to {user}; lines go to them once open");
                Vec::new()
            }
            Some(State::Asked { .. }) => self.accept_conn(&conn),
            None => {
                println!("* asking {user} for a direct conversation…");
                println!("* lines go to {user} only once it opens; /room goes back");
                self.start(conn, user, Role::Call, Phase::Calling);
                Vec::new()
            }
        }
    }

    /// `/room`: plain lines go to the room again.
    pub fn room(&mut self, room: &str) {
        if self.focus.take().is_some() {
            println!("* lines go to #{room} again");
        } else {
            println!("* lines already go to #{room}");
        }
    }

    /// `/accept NAME`.
    pub fn accept(&mut self, name: &str) -> Outbox {
        match self.asked_by(name) {
            Some(conn) => self.accept_conn(&conn),
            None => Vec::new(),
        }
    }

    fn accept_conn(&mut self, conn: &str) -> Outbox {
        let Some(talk) = self.talks.remove(conn) else {
            return Vec::new();
        };
        let State::Asked { offer, early } = talk.state else {
            self.talks.insert(conn.to_owned(), talk);
            return Vec::new();
        };
        println!("* connecting to {} directly…", talk.user);
        self.start(
            conn.to_owned(),
            talk.user,
            Role::Answer { offer, early },
            Phase::Connecting,
        );
        Vec::new()
    }

    /// The connection of `name`'s offer not yet answered; says so when
    /// there is none.
    fn asked_by(&self, name: &str) -> Option<String> {
        let asked = self
            .talks
            .iter()
            .find(|(_, t)| t.user == name && matches!(t.state, State::Asked { .. }));
        if asked.is_none() {
            println!("! {name} has not asked to talk directly");
        }
        asked.map(|(conn, _)| conn.clone())
    }

    /// `/reject NAME`.
    pub fn reject(&mut self, name: &str) -> Outbox {
        let Some(conn) = self.asked_by(name) else {
            return Vec::new();
        };
        self.talks.remove(&conn);
        println!("* you declined {name}'s direct conversation");
        vec![(conn, json!({"kind": "reject"}))]
    }

    /// `/close NAME`.
    pub fn close(&mut self, name: &str) -> Outbox {
        let Some(conn) = self.conn_of(name) else {
            println!("! no direct conversation with {name}");
            return Vec::new();
        };
        self.end(
            &conn,
            &format!("* direct conversation with {name} closed"),
            true,
        )
    }

    /// `/msg NAME TEXT`, or a plain line while focused on `conn`.
    pub fn say(&mut self, conn: &str, text: &str) {
        let Some(talk) = self.talks.get(conn) else {
            println!("! that direct conversation is over; /room goes back to the room");
            return;
        };
        match &talk.state {
            State::Linked {
                phase: Phase::Open,
                commands,
                ..
            } => {
                let text: String = text.chars().take(MAX_TEXT).collect();
                let _ = commands.send(Command::Send(text));
            }
            _ => println!(
                "! not connected to {} yet; that line was not sent",
                talk.user
            ),
        }
    }

    /// The connection of the open or opening conversation with `name`.
    pub fn conn_of(&self, name: &str) -> Option<String> {
        self.talks
            .iter()
            .find(|(_, t)| t.user == name)
            .map(|(conn, _)| conn.clone())
    }

    /// Every name a conversation is with, longest first: `/msg NAME TEXT`
    /// matches the longest, names having spaces.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.talks.values().map(|t| t.user.clone()).collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        names
    }

    /// A `signal` from `from` (named `user` in the room).
    pub fn on_signal(&mut self, me: Option<&str>, from: &str, user: &str, data: &Value) -> Outbox {
        match data["kind"].as_str() {
            Some("offer") => {
                let Some(sdp) = data["sdp"].as_str() else {
                    return Vec::new();
                };
                self.on_offer(me, from, user, sdp)
            }
            Some("answer") => {
                if let Some(talk) = self.talks.get_mut(from) {
                    if let State::Linked {
                        commands, phase, ..
                    } = &mut talk.state
                    {
                        if *phase == Phase::Calling {
                            *phase = Phase::Connecting;
                            println!("* {} said yes; connecting directly…", talk.user);
                            let _ = commands.send(Command::Remote(data.clone()));
                        }
                    }
                }
                Vec::new()
            }
            Some("ice") => {
                match self.talks.get_mut(from).map(|t| &mut t.state) {
                    // Kept for the yes; a flood is cut short.
                    Some(State::Asked { early, .. }) if early.len() < MAX_EARLY => {
                        early.push(data.clone());
                    }
                    Some(State::Linked { commands, .. }) => {
                        let _ = commands.send(Command::Remote(data.clone()));
                    }
                    _ => {}
                }
                Vec::new()
            }
            Some("reject") => {
                let calling = self.talks.get(from).is_some_and(|t| {
                    matches!(
                        t.state,
                        State::Linked {
                            phase: Phase::Calling,
                            ..
                        }
                    )
                });
                if calling {
                    self.end(
                        from,
                        &format!("* {user} declined the direct conversation"),
                        false,
                    )
                } else {
                    Vec::new()
                }
            }
            Some("bye") => match self.talks.get(from).map(|t| &t.state) {
                Some(State::Asked { .. }) => {
                    self.end(from, &format!("* {user} withdrew the offer"), false)
                }
                Some(State::Linked { .. }) => self.end(
                    from,
                    &format!("* {user} closed the direct conversation"),
                    false,
                ),
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn on_offer(&mut self, me: Option<&str>, from: &str, user: &str, sdp: &str) -> Outbox {
        match self.talks.get(from).map(|t| &t.state) {
            Some(State::Linked {
                phase: Phase::Calling,
                ..
            }) => {
                // Both asked at once: the smaller connection id keeps its
                // offer and the other answers, as the browser page does.
                // Both said yes by asking, so nobody is asked again.
                if me.unwrap_or("") < from {
                    return Vec::new();
                }
                self.drop_link(from);
                println!("* connecting to {user} directly…");
                let role = Role::Answer {
                    offer: sdp.to_owned(),
                    early: Vec::new(),
                };
                self.start(from.to_owned(), user.to_owned(), role, Phase::Connecting);
            }
            Some(State::Asked { .. }) => {
                // Asked again (their page reloaded its offer): the newest counts.
                if let Some(talk) = self.talks.get_mut(from) {
                    talk.state = State::Asked {
                        offer: sdp.to_owned(),
                        early: Vec::new(),
                    };
                }
            }
            existing => {
                if existing.is_some() {
                    // They started over; what was open on our side is stale.
                    self.drop_link(from);
                    println!("* {user} started the direct conversation over");
                }
                self.talks.insert(
                    from.to_owned(),
                    Talk {
                        user: user.to_owned(),
                        state: State::Asked {
                            offer: sdp.to_owned(),
                            early: Vec::new(),
                        },
                    },
                );
                println!("* {user} wants to talk directly: /accept {user} or /reject {user}");
            }
        }
        Vec::new()
    }

    /// A member left the room: a conversation with them is over.
    pub fn on_left(&mut self, conn: &str) -> Outbox {
        let Some(talk) = self.talks.get(conn) else {
            return Vec::new();
        };
        let line = match talk.state {
            State::Asked { .. } => format!("* {}'s offer is void: they left the room", talk.user),
            State::Linked { .. } => format!(
                "* direct conversation with {} ended: they left the room",
                talk.user
            ),
        };
        self.end(conn, &line, false)
    }

    /// A member was renamed: so is the conversation.
    pub fn on_renamed(&mut self, conn: &str, user: &str) {
        if let Some(talk) = self.talks.get_mut(conn) {
            talk.user = user.to_owned();
        }
    }

    /// What a conversation's task reported.
    pub fn on_event(&mut self, link: u64, event: Event) -> Outbox {
        let Some((conn, talk)) = self
            .talks
            .iter_mut()
            .find(|(_, t)| matches!(t.state, State::Linked { link: l, .. } if l == link))
        else {
            return Vec::new(); // a task this side already let go of
        };
        let conn = conn.clone();
        match event {
            Event::Signal(data) => return vec![(conn, data)],
            Event::Open => {
                if let State::Linked { phase, .. } = &mut talk.state {
                    *phase = Phase::Open;
                }
                println!(
                    "* direct conversation with {} open: peer to peer, the server does not see it",
                    talk.user
                );
                if self.focus.as_deref() == Some(conn.as_str()) {
                    println!("* lines go to {} only now; /room goes back", talk.user);
                } else {
                    println!(
                        "* /msg {0} TEXT to write, /direct {0} to talk only to them",
                        talk.user
                    );
                }
            }
            Event::Text(text) => println!("[{}] {} → you (direct): {text}", clock(), talk.user),
            Event::Sent { text, sent: true } => {
                println!("[{}] you → {} (direct): {text}", clock(), talk.user);
            }
            Event::Sent { sent: false, .. } => {
                println!(
                    "! the direct connection to {} is closing; that line was not sent",
                    talk.user
                );
            }
            Event::Closed(ended) => {
                let user = talk.user.clone();
                // Ended here (a timeout, a failure): the peer is told.
                let tell = !matches!(ended, Ended::PeerClosed | Ended::Closed);
                let line = match (&ended, &talk.state) {
                    (Ended::NoAnswer, _) => {
                        format!("* {user} did not answer the direct conversation")
                    }
                    // Their channel closing is their /close (or closed panel)
                    // arriving before the `bye` the server relays.
                    (Ended::PeerClosed, _) => format!("* {user} closed the direct conversation"),
                    (
                        _,
                        State::Linked {
                            phase: Phase::Open, ..
                        },
                    ) => {
                        format!(
                            "* direct conversation with {user} ended: {}",
                            ended.reason()
                        )
                    }
                    _ => format!("* could not talk to {user} directly: {}", ended.reason()),
                };
                return self.end(&conn, &line, tell);
            }
        }
        Vec::new()
    }

    /// Ends every conversation, e.g. on leaving the room or the server.
    pub fn end_all(&mut self, why: &str, tell: bool) -> Outbox {
        let conns: Vec<String> = self.talks.keys().cloned().collect();
        let mut outbox = Vec::new();
        for conn in conns {
            let user = self.talks[&conn].user.clone();
            outbox.extend(self.end(
                &conn,
                &format!("* direct conversation with {user} ended: {why}"),
                tell,
            ));
        }
        outbox
    }

    fn end(&mut self, conn: &str, line: &str, tell: bool) -> Outbox {
        let Some(talk) = self.talks.get(conn) else {
            return Vec::new();
        };
        let user = talk.user.clone();
        self.drop_link(conn);
        self.talks.remove(conn);
        println!("{line}");
        if self.focus.as_deref() == Some(conn) {
            self.focus = None;
            println!("* lines go to the room again (not to {user})");
        }
        if tell {
            vec![(conn.to_owned(), json!({"kind": "bye"}))]
        } else {
            Vec::new()
        }
    }

    /// Stops the conversation's task, if it has one.
    fn drop_link(&mut self, conn: &str) {
        if let Some(Talk {
            state: State::Linked { commands, .. },
            ..
        }) = self.talks.remove(conn)
        {
            let _ = commands.send(Command::Close);
        }
    }

    fn start(&mut self, conn: String, user: String, role: Role, phase: Phase) {
        let link = self.next_link;
        self.next_link += 1;
        let (commands, rx) = mpsc::unbounded_channel();
        let events = Events {
            link,
            tx: self.events.clone(),
        };
        spawn_link(role, self.options.clone(), rx, events);
        self.talks.insert(
            conn,
            Talk {
                user,
                state: State::Linked {
                    link,
                    commands,
                    phase,
                },
            },
        );
    }

    /// The member called `name` (exactly, else ignoring case).
    fn member(
        &self,
        members: &BTreeMap<String, String>,
        me: Option<&str>,
        name: &str,
    ) -> Option<String> {
        let others = || members.iter().filter(|(conn, _)| Some(conn.as_str()) != me);
        let found = others()
            .find(|(_, user)| *user == name)
            .or_else(|| others().find(|(_, user)| user.eq_ignore_ascii_case(name)))
            .map(|(conn, _)| conn.clone());
        if found.is_none() {
            if me.and_then(|me| members.get(me)).is_some_and(|u| u == name) {
                println!("! that is you");
            } else {
                println!("! nobody called {name} is in the room (/who lists them)");
            }
        }
        found
    }
}

#[cfg(feature = "p2p")]
fn spawn_link(
    role: Role,
    options: LinkOptions,
    commands: mpsc::UnboundedReceiver<Command>,
    events: Events,
) {
    tokio::task::spawn_local(super::link::run(role, options, commands, events));
}

/// Without the `p2p` feature, every conversation ends at once, saying why.
#[cfg(not(feature = "p2p"))]
fn spawn_link(_: Role, _: LinkOptions, _: mpsc::UnboundedReceiver<Command>, events: Events) {
    let why = "this build of bazaar has no peer-to-peer mode (the p2p feature)";
    events.send(Event::Closed(Ended::Failed(why.into())));
}

fn clock() -> String {
    Local::now().format("%H:%M:%S").to_string()
}
