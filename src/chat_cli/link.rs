//! One direct conversation's transport: a WebRTC data channel driven by
//! str0m, a sans-IO stack, on UDP sockets of this task's own. The task
//! talks to the chat loop through two channels: [`Command`]s in, [`Event`]s
//! out, so the loop never waits on the network of a peer.
//!
//! Candidates are all known before the offer or answer is made (one socket
//! per local address, plus what STUN reports), so they travel inside the
//! SDP and this side never trickles. The other side may trickle: its `ice`
//! signals come in as [`Command::Remote`].

use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::task::Poll;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, Input, Output, Rtc};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::direct::{Command, Ended, Event, Events, LinkOptions, Role, MAX_TEXT};
use super::stun;

/// The data channel's label, as the browser page names it.
const LABEL: &str = "chat";
/// How long the callee gets to say yes before the caller gives up.
const ASK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the connection gets to open once both sides said yes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an open connection may stay unreachable before it is given up.
const LOST_GRACE: Duration = Duration::from_secs(10);
/// The longest sleep between two looks at the clock.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Larger than any datagram str0m sends or a browser sends it.
const DATAGRAM: usize = 2000;

/// Runs one conversation to its end; the last event is always `Closed`.
pub async fn run(
    role: Role,
    options: LinkOptions,
    commands: mpsc::UnboundedReceiver<Command>,
    events: Events,
) {
    let ended = match Link::start(role, &options, &events).await {
        Ok((mut link, early)) => link.drive(early, commands, &events).await,
        Err(err) => {
            tracing::warn!(error = %err, "could not start a direct connection");
            Ended::Failed(err.to_string())
        }
    };
    events.send(Event::Closed(ended));
}

struct Link {
    rtc: Rtc,
    sockets: Vec<UdpSocket>,
    /// The caller's offer, until the answer comes.
    pending: Option<SdpPendingOffer>,
    channel: Option<ChannelId>,
    /// When to give up: waiting for the answer, for the channel to open, or
    /// for a lost connection to come back.
    deadline: Option<(Instant, Ended)>,
}

impl Link {
    async fn start(
        role: Role,
        options: &LinkOptions,
        events: &Events,
    ) -> anyhow::Result<(Link, Vec<Value>)> {
        let sockets = bind_local().await?;
        let now = Instant::now();
        let mut rtc = Rtc::builder().build(now);
        for socket in &sockets {
            let address = socket.local_addr()?;
            rtc.add_local_candidate(Candidate::host(address, "udp")?);
        }
        for (base, mapped) in stun::reflexive(&sockets, &options.stun).await {
            match Candidate::server_reflexive(mapped, base, "udp") {
                Ok(candidate) => {
                    rtc.add_local_candidate(candidate);
                }
                Err(err) => tracing::debug!(error = %err, %mapped, "unusable STUN address"),
            }
        }
        let mut link = Link {
            rtc,
            sockets,
            pending: None,
            channel: None,
            deadline: None,
        };
        let mut early = Vec::new();
        match role {
            Role::Call => {
                let mut change = link.rtc.sdp_api();
                change.add_channel(LABEL.to_owned());
                let (offer, pending) = change
                    .apply()
                    .ok_or_else(|| anyhow::anyhow!("nothing to offer"))?;
                link.pending = Some(pending);
                link.deadline = Some((now + ASK_TIMEOUT, Ended::NoAnswer));
                events.send(Event::Signal(
                    json!({"kind": "offer", "sdp": offer.to_sdp_string()}),
                ));
            }
            Role::Answer {
                offer,
                early: candidates,
            } => {
                let offer = SdpOffer::from_sdp_string(&offer)
                    .map_err(|err| anyhow::anyhow!("their offer could not be read: {err}"))?;
                let answer = link
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .map_err(|err| anyhow::anyhow!("their offer could not be used: {err}"))?;
                link.deadline = Some((now + CONNECT_TIMEOUT, Ended::TimedOut));
                events.send(Event::Signal(
                    json!({"kind": "answer", "sdp": answer.to_sdp_string()}),
                ));
                early = candidates;
            }
        }
        Ok((link, early))
    }

    /// The loop of the single-mutation rule: one input, then every output
    /// until the next timeout. `early` are the candidates that came with
    /// the offer, before it was accepted.
    async fn drive(
        &mut self,
        early: Vec<Value>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        events: &Events,
    ) -> Ended {
        for candidate in early {
            if let Err(ended) = self.flush(events).await {
                return ended;
            }
            self.remote_candidate(&candidate);
        }
        let mut buf = vec![0u8; DATAGRAM];
        loop {
            let wake = match self.flush(events).await {
                Ok(wake) => wake,
                Err(ended) => return ended,
            };
            // str0m says "the distant future" when it has nothing planned.
            let mut wake = wake.min(Instant::now() + IDLE_WAKE);
            if let Some((deadline, _)) = &self.deadline {
                wake = wake.min(*deadline);
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if let Some((deadline, _)) = &self.deadline {
                        if *deadline <= now {
                            let (_, ended) = self.deadline.take().expect("a deadline");
                            return ended;
                        }
                    }
                    if let Err(err) = self.rtc.handle_input(Input::Timeout(now)) {
                        return Ended::Failed(err.to_string());
                    }
                }
                received = recv_any(&self.sockets, &mut buf) => match received {
                    Ok((index, len, source)) => self.receive(index, &buf[..len], source),
                    Err(err) => return Ended::Failed(format!("the local socket failed: {err}")),
                },
                command = commands.recv() => match command {
                    Some(Command::Remote(data)) => self.remote(&data),
                    Some(Command::Send(text)) => self.send(&text, events),
                    Some(Command::Close) | None => {
                        self.close(events).await;
                        return Ended::Closed;
                    }
                },
            }
        }
    }

    /// Sends what str0m has to send, hands its events on, and returns when
    /// it next wants to be woken; `Err` once the conversation is over.
    async fn flush(&mut self, events: &Events) -> Result<Instant, Ended> {
        loop {
            let output = self
                .rtc
                .poll_output()
                .map_err(|err| Ended::Failed(err.to_string()))?;
            match output {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(transmit) => {
                    let socket = self
                        .sockets
                        .iter()
                        .find(|s| s.local_addr().is_ok_and(|a| a == transmit.source));
                    if let Some(socket) = socket {
                        // A lost datagram is ICE's and SCTP's to retry.
                        if let Err(err) = socket
                            .send_to(&transmit.contents, transmit.destination)
                            .await
                        {
                            tracing::debug!(error = %err, to = %transmit.destination, "send failed");
                        }
                    }
                }
                Output::Event(event) => self.on_event(event, events)?,
            }
        }
    }

    fn on_event(&mut self, event: RtcEvent, events: &Events) -> Result<(), Ended> {
        match event {
            RtcEvent::ChannelOpen(id, label) if label == LABEL => {
                self.channel = Some(id);
                self.deadline = None;
                events.send(Event::Open);
            }
            RtcEvent::ChannelData(data) if Some(data.id) == self.channel => {
                match text_of(&data.data) {
                    Some(text) => {
                        events.send(Event::Text(text));
                    }
                    None => tracing::debug!("a direct message that is not {{\"text\":...}}"),
                }
            }
            RtcEvent::ChannelClose(id) if Some(id) == self.channel => {
                return Err(Ended::PeerClosed)
            }
            RtcEvent::Closed => return Err(Ended::PeerClosed),
            RtcEvent::IceConnectionStateChange(state) if self.channel.is_some() => match state {
                IceConnectionState::Disconnected => {
                    self.deadline = Some((Instant::now() + LOST_GRACE, Ended::Lost));
                }
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    self.deadline = None;
                }
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn receive(&mut self, index: usize, datagram: &[u8], source: SocketAddr) {
        let Ok(destination) = self.sockets[index].local_addr() else {
            return;
        };
        let Ok(contents) = datagram.try_into() else {
            return; // neither STUN, DTLS nor anything else str0m knows
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            if let Err(err) = self.rtc.handle_input(input) {
                tracing::debug!(error = %err, %source, "a datagram str0m refused");
            }
        }
    }

    /// An answer or a trickled candidate from the other side.
    fn remote(&mut self, data: &Value) {
        match data["kind"].as_str() {
            Some("answer") => {
                let (Some(pending), Some(sdp)) = (self.pending.take(), data["sdp"].as_str()) else {
                    return;
                };
                match SdpAnswer::from_sdp_string(sdp) {
                    Ok(answer) => match self.rtc.sdp_api().accept_answer(pending, answer) {
                        Ok(()) => {
                            self.deadline =
                                Some((Instant::now() + CONNECT_TIMEOUT, Ended::TimedOut));
                        }
                        Err(err) => self.fail(format!("their answer could not be used: {err}")),
                    },
                    Err(err) => self.fail(format!("their answer could not be read: {err}")),
                }
            }
            Some("ice") => self.remote_candidate(&data["candidate"]),
            _ => {}
        }
    }

    /// Candidates str0m cannot reach are skipped: a browser names its own
    /// addresses by mDNS (`….local`), and this side then learns them from
    /// the checks the browser sends (peer-reflexive candidates).
    fn remote_candidate(&mut self, candidate: &Value) {
        let Some(line) = candidate["candidate"].as_str().filter(|c| !c.is_empty()) else {
            return;
        };
        match Candidate::from_sdp_string(line) {
            Ok(candidate) => self.rtc.add_remote_candidate(candidate),
            Err(err) => tracing::debug!(error = %err, candidate = line, "skipped a candidate"),
        }
    }

    fn send(&mut self, text: &str, events: &Events) {
        let frame = json!({ "text": text }).to_string();
        let written = self
            .channel
            .and_then(|id| self.rtc.channel(id))
            .map(|mut channel| channel.write(false, frame.as_bytes()));
        let sent = matches!(written, Some(Ok(true)));
        events.send(Event::Sent {
            text: text.to_owned(),
            sent,
        });
    }

    /// Ends the conversation at once: the deadline fires on the next turn.
    fn fail(&mut self, reason: String) {
        self.deadline = Some((Instant::now(), Ended::Failed(reason)));
    }

    /// Tells the peer's stack the association is over (the `bye` signal
    /// tells the peer), then lets the closing datagrams out.
    async fn close(&mut self, events: &Events) {
        if self.rtc.close().is_ok() {
            let _ = self.flush(events).await;
        }
    }
}

/// `{"text":"..."}`, cut to what a room message may hold: the peer's
/// program is not ours to trust.
fn text_of(data: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(data).ok()?;
    let text = value["text"].as_str()?.trim();
    (!text.is_empty()).then(|| text.chars().take(MAX_TEXT).collect())
}

/// The first datagram on any socket: (socket index, length, source).
pub(super) async fn recv_any(
    sockets: &[UdpSocket],
    buf: &mut [u8],
) -> std::io::Result<(usize, usize, SocketAddr)> {
    poll_fn(|cx| {
        for (index, socket) in sockets.iter().enumerate() {
            let mut read = ReadBuf::new(buf);
            if let Poll::Ready(result) = socket.poll_recv_from(cx, &mut read) {
                return Poll::Ready(result.map(|source| (index, read.filled().len(), source)));
            }
        }
        Poll::Pending
    })
    .await
}

/// One UDP socket per local address that can carry a conversation: str0m
/// must know which address a datagram came in on, and a socket bound to one
/// address says so.
async fn bind_local() -> anyhow::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::new();
    for ip in local_addresses()? {
        match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
            Ok(socket) => sockets.push(socket),
            Err(err) => tracing::debug!(error = %err, %ip, "could not bind"),
        }
    }
    anyhow::ensure!(!sockets.is_empty(), "no local address to connect from");
    Ok(sockets)
}

/// The addresses of the interfaces that are up. IPv6 link-local addresses
/// are left out: they need a scope that candidates do not carry.
fn local_addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that stays valid
    // until freeifaddrs, and nothing here keeps a pointer into it.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut addresses = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a non-null node of the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        let up = entry.ifa_flags & libc::IFF_UP as libc::c_uint != 0;
        if !up || entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and its family says which sockaddr it is.
        let ip = unsafe {
            match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let addr = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::from(u32::from_be(addr.sin_addr.s_addr).to_be_bytes())
                }
                libc::AF_INET6 => {
                    let addr = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::from(addr.sin6_addr.s6_addr)
                }
                _ => continue,
            }
        };
        let link_local = matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
        if !link_local && !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_among_the_local_addresses() {
        let addresses = local_addresses().expect("getifaddrs");
        assert!(
            addresses.contains(&IpAddr::from([127, 0, 0, 1])),
            "{addresses:?}"
        );
        assert!(addresses
            .iter()
            .all(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] == 0xfe80)));
    }

    #[test]
    fn a_direct_message_is_a_text_field_cut_to_the_room_limit() {
        assert_eq!(text_of(br#"{"text":" hi "}"#).as_deref(), Some("hi"));
        assert_eq!(text_of(br#"{"text":""}"#), None);
        assert_eq!(text_of(b"hi"), None);
        assert_eq!(text_of(br#"{"text":5}"#), None);
        let long = json!({ "text": "é".repeat(MAX_TEXT + 10) }).to_string();
        assert_eq!(
            text_of(long.as_bytes()).expect("text").chars().count(),
            MAX_TEXT
        );
    }
}
