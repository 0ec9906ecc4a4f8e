// Direct conversations: two members of a room talk over a WebRTC data channel
// that the server does not carry. The server only relays the negotiation
// (`signal` frames, docs/protocol.md §1, "Direct conversations") between the
// two connections; what is said goes browser to browser, and each panel says
// so.
//
// Signal data, one of:
//   {"kind":"offer","sdp":...}   {"kind":"answer","sdp":...}
//   {"kind":"ice","candidate":{...}}   {"kind":"reject"}   {"kind":"bye"}
// Nobody is connected to without saying yes: an offer only shows a prompt,
// and the callee's browser makes no peer connection (so gathers and reveals
// no address of its own) until Accept.
//
// A panel's states: closed; waiting (we called, they have not answered);
// asking (they called, we have not answered); connecting; open.

import { messageItem } from "./message_view.js";

/** How long a call waits for the callee to accept or decline, in ms. */
const ASK_TIMEOUT_MS = 60_000;
/** Give up on a connection that has not opened by then, in ms, counted from
 * the answer: waiting for a person to decide is not a network problem. */
const CONNECT_TIMEOUT_MS = 20_000;
/** The same limit as room messages, in characters. */
const MAX_TEXT = 2000;
/** ICE candidates kept for an offer not yet accepted (or an answer not yet
 * applied); a peer cannot make a page hoard more than this. */
const MAX_EARLY = 100;
/** The data channel's label; any other channel a peer opens is refused. */
const CHANNEL = "chat";

const STATE_TEXT = {
  closed: () => "closed",
  waiting: (user) => `waiting for ${user} to accept`,
  asking: (user) => `${user} wants to talk directly`,
  connecting: () => "connecting",
  open: () => "direct connection open",
};

/** All direct conversations of one page, one per peer connection. */
export class DirectTalks {
  /**
   * @param {object} options
   * @param {import("./socket.js").Socket} options.socket
   * @param {string} options.topic the room's topic, which scopes the signals
   * @param {HTMLElement} options.container where panels go
   * @param {(conn: string) => string | undefined} options.userOf a member's name
   * @param {string[]} [options.stunUrls] STUN servers (chat.stun_urls)
   */
  constructor({ socket, topic, container, userOf, stunUrls = [] }) {
    this.socket = socket;
    this.topic = topic;
    this.container = container;
    this.userOf = userOf;
    // Without STUN, host candidates only: that works offline and on a LAN,
    // but peers behind different NATs will not find a route.
    this.rtcConfig = { iceServers: stunUrls.length ? [{ urls: stunUrls }] : [] };
    this.myConn = null;
    /** peer conn → Talk */
    this.talks = new Map();
    socket.on("signal", (frame) => {
      if (frame.topic === topic && typeof frame.from === "string" && frame.data) this.receive(frame.from, frame.data);
    });
  }

  /** Our connection id, new after every reconnect. An offer or a call
   * addressed to (or sent from) the old id can no longer be answered, and
   * its peer saw the old id leave; so both end here too. */
  setMyConn(conn) {
    const changed = this.myConn !== null && conn !== this.myConn;
    this.myConn = conn;
    if (!changed) return;
    for (const talk of this.talks.values()) {
      if (talk.state === "asking" || talk.state === "waiting") talk.end("The room connection dropped; call again.", false);
    }
  }

  /** Open (or bring back) the conversation with `peer`: call them, or say
   * yes to their call when they are already asking. */
  open(peer) {
    if (peer === this.myConn) return;
    const talk = this.talkWith(peer);
    if (talk.state === "closed") talk.call();
    else if (talk.state === "asking") talk.accept();
    talk.focus();
  }

  /** The peer left the room: its end of the channel is gone or going, and
   * an offer of theirs can no longer be answered. */
  peerLeft(peer) {
    this.talks.get(peer)?.end("They left the room.", false);
  }

  talkWith(peer) {
    let talk = this.talks.get(peer);
    if (!talk) {
      talk = new Talk(this, peer);
      this.talks.set(peer, talk);
      this.container.append(talk.panel);
    }
    return talk;
  }

  signal(peer, data) {
    return this.socket.send("signal", { topic: this.topic, to: peer, data });
  }

  receive(from, data) {
    if (data.kind === "offer" && typeof data.sdp === "string") {
      this.talkWith(from).offered(data.sdp);
      return;
    }
    const talk = this.talks.get(from);
    if (!talk) return;
    if (data.kind === "answer" && typeof data.sdp === "string") talk.acceptAnswer(data.sdp);
    else if (data.kind === "ice" && data.candidate && typeof data.candidate === "object") talk.addCandidate(data.candidate);
    else if (data.kind === "reject") talk.rejected();
    else if (data.kind === "bye") talk.bye();
  }

  forget(peer) {
    this.talks.delete(peer);
  }
}

/** One direct conversation: its panel, and the current peer connection. */
class Talk {
  constructor(owner, peer) {
    this.owner = owner;
    this.peer = peer;
    this.pc = null;
    this.channel = null;
    this.state = "closed";
    /** The offer waiting for Accept (state asking). */
    this.offer = null;
    /** ICE candidates that came before the offer or answer they belong to
     * was applied, or while the offer waits for Accept. */
    this.early = [];
    this.timer = null;
    /** The peer's name when last seen: it is gone from the member list by
     * the time their leaving is told. */
    this.name = null;
    this.buildPanel();
  }

  get user() {
    this.name = this.owner.userOf(this.peer) ?? this.name;
    return this.name ?? "someone";
  }

  buildPanel() {
    const panel = document.createElement("section");
    panel.className = "p2p-panel";
    panel.dataset.peer = this.peer;
    panel.setAttribute("aria-label", `Direct conversation with ${this.user}`);
    panel.tabIndex = -1;

    const head = document.createElement("header");
    const name = document.createElement("strong");
    name.className = "user";
    name.textContent = this.user;
    const label = document.createElement("span");
    label.className = "p2p-label";
    label.textContent = "direct · peer-to-peer";
    this.stateEl = document.createElement("span");
    this.stateEl.className = "p2p-state";
    this.stateEl.setAttribute("role", "status");
    const close = document.createElement("button");
    close.type = "button";
    close.className = "p2p-close";
    close.textContent = "×";
    close.setAttribute("aria-label", `Close the direct conversation with ${this.user}`);
    close.addEventListener("click", () => this.dismiss());
    head.append(name, " ", label, " ", this.stateEl, close);

    // The question an incoming offer asks; the state line says who asks.
    this.ask = document.createElement("div");
    this.ask.className = "p2p-ask";
    this.ask.setAttribute("role", "group");
    this.ask.setAttribute("aria-label", `Talk directly with ${this.user}?`);
    const accept = document.createElement("button");
    accept.type = "button";
    accept.className = "p2p-accept";
    accept.textContent = "Accept";
    accept.addEventListener("click", () => this.accept());
    const decline = document.createElement("button");
    decline.type = "button";
    decline.className = "p2p-decline";
    decline.textContent = "Decline";
    decline.addEventListener("click", () => this.decline());
    this.ask.append(accept, decline);

    this.note = document.createElement("p");
    this.note.className = "p2p-note";
    this.note.hidden = true;

    this.messages = document.createElement("ol");
    this.messages.className = "p2p-messages";
    this.messages.setAttribute("aria-live", "polite");

    this.form = document.createElement("form");
    this.form.className = "p2p-composer";
    const field = document.createElement("label");
    const fieldName = document.createElement("span");
    fieldName.className = "visually-hidden";
    fieldName.textContent = `Direct message to ${this.user}`;
    this.input = document.createElement("input");
    this.input.name = "text";
    this.input.maxLength = MAX_TEXT;
    this.input.autocomplete = "off";
    this.input.placeholder = "Only they will see this";
    field.append(fieldName, this.input);
    const send = document.createElement("button");
    send.type = "submit";
    send.textContent = "Send";
    this.form.append(field, send);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });

    panel.append(head, this.ask, this.note, this.messages, this.form);
    this.panel = panel;
    this.setState("closed");
  }

  focus() {
    this.panel.scrollIntoView({ block: "nearest" });
    (this.state === "open" ? this.input : this.panel).focus();
  }

  setState(state, note = "") {
    this.state = state;
    this.stateEl.textContent = STATE_TEXT[state](this.user);
    this.stateEl.dataset.state = state;
    this.panel.dataset.state = state;
    this.ask.hidden = state !== "asking";
    this.note.textContent = note;
    this.note.hidden = !note;
    // Typing is only possible while the channel is open, so nothing typed
    // can be silently dropped.
    for (const control of this.form.elements) control.disabled = state !== "open";
  }

  /** A fresh RTCPeerConnection; any previous one is dropped. */
  connect(state) {
    this.teardown();
    const pc = new RTCPeerConnection(this.owner.rtcConfig);
    this.pc = pc;
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate) this.owner.signal(this.peer, { kind: "ice", candidate: event.candidate.toJSON() });
    });
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc === pc && pc.connectionState === "failed") this.end("No direct route to them was found.", true);
    });
    this.setState(state);
    return pc;
  }

  /** Ends the attempt with `note` (and a bye) unless it opened by then. */
  giveUpAfter(ms, note) {
    clearTimeout(this.timer);
    const pc = this.pc;
    this.timer = setTimeout(() => {
      if (this.pc === pc && this.state !== "open") this.end(note, true);
    }, ms);
  }

  async call() {
    this.early = [];
    const pc = this.connect("waiting");
    this.giveUpAfter(ASK_TIMEOUT_MS, `${this.user} did not answer.`);
    this.attach(pc.createDataChannel(CHANNEL));
    try {
      await pc.setLocalDescription(await pc.createOffer());
      // Their offer may have crossed ours and replaced this connection.
      if (this.pc !== pc) return;
      if (!this.owner.signal(this.peer, { kind: "offer", sdp: pc.localDescription.sdp })) {
        this.end("Not connected to the room right now.", false);
      }
    } catch {
      if (this.pc === pc) this.end("The browser could not start a direct connection.", false);
    }
  }

  /** An offer came: ask, unless we are calling them at the same time. */
  offered(sdp) {
    if (this.state === "waiting") {
      // Both called at once, so both said yes. The connection with the
      // smaller id keeps its offer, the other one drops its own and answers
      // ("polite peer").
      const calling = this.pc?.signalingState === "have-local-offer";
      if (calling && (this.owner.myConn ?? "") < this.peer) return;
      this.answer(sdp, []);
      return;
    }
    // A new offer replaces whatever was going on with this peer: they
    // started over, so their old connection is gone on their side.
    this.teardown();
    this.offer = sdp;
    this.early = [];
    this.setState("asking");
  }

  accept() {
    if (this.state !== "asking") return;
    const sdp = this.offer;
    this.offer = null;
    this.answer(sdp, this.early.splice(0));
  }

  decline() {
    if (this.state !== "asking") return;
    this.offer = null;
    this.early = [];
    this.owner.signal(this.peer, { kind: "reject" });
    this.setState("closed", "You declined.");
  }

  /** Answers `sdp` with a new connection; `kept` are candidates that came
   * with the offer before there was a connection to give them to. */
  async answer(sdp, kept) {
    const pc = this.connect("connecting");
    this.early = kept;
    this.giveUpAfter(CONNECT_TIMEOUT_MS, "No direct route to them was found.");
    pc.addEventListener("datachannel", (event) => this.attach(event.channel));
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      this.flushEarly();
      await pc.setLocalDescription(await pc.createAnswer());
      if (this.pc === pc) this.owner.signal(this.peer, { kind: "answer", sdp: pc.localDescription.sdp });
    } catch {
      if (this.pc === pc) this.end("Their offer could not be used.", true);
    }
  }

  async acceptAnswer(sdp) {
    const pc = this.pc;
    if (!pc || this.state !== "waiting" || pc.signalingState !== "have-local-offer") return;
    this.setState("connecting");
    this.giveUpAfter(CONNECT_TIMEOUT_MS, "No direct route to them was found.");
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
      this.flushEarly();
    } catch {
      if (this.pc === pc) this.end("Their answer could not be used.", true);
    }
  }

  /** They said no to our call. */
  rejected() {
    if (this.state === "waiting") this.end(`${this.user} declined.`, false);
  }

  /** They ended the conversation, or took back their offer. */
  bye() {
    if (this.state === "asking") {
      this.offer = null;
      this.early = [];
      this.setState("closed", `${this.user} withdrew the offer.`);
    } else if (this.state !== "closed") {
      this.end("They closed the conversation.", false);
    }
  }

  addCandidate(candidate) {
    const keep = this.state === "asking" || (this.pc && !this.pc.remoteDescription);
    if (keep) {
      if (this.early.length < MAX_EARLY) this.early.push(candidate);
    } else if (this.pc) {
      this.pc.addIceCandidate(candidate).catch(() => {}); // a stale one
    }
  }

  flushEarly() {
    for (const candidate of this.early.splice(0)) this.pc.addIceCandidate(candidate).catch(() => {});
  }

  attach(channel) {
    if (channel.label !== CHANNEL) {
      channel.close();
      return;
    }
    this.channel = channel;
    channel.addEventListener("open", () => {
      if (this.channel !== channel) return;
      clearTimeout(this.timer);
      this.setState("open");
    });
    channel.addEventListener("close", () => {
      if (this.channel === channel && this.state !== "closed") this.end("The direct connection closed.", false);
    });
    channel.addEventListener("message", (event) => this.receive(event.data));
  }

  receive(raw) {
    let text;
    try {
      text = JSON.parse(raw).text;
    } catch {
      return;
    }
    if (typeof text !== "string" || !text) return;
    // The peer's browser is not ours to trust: cap what it can put on screen.
    this.show(this.user, [...text].slice(0, MAX_TEXT).join(""), false);
  }

  send() {
    const text = this.input.value.trim();
    if (!text || this.state !== "open") return;
    this.channel.send(JSON.stringify({ text }));
    this.input.value = "";
    this.show("you", text, true);
  }

  show(user, text, mine) {
    const item = messageItem(user, text, new Date().toISOString());
    item.className = mine ? "message p2p mine" : "message p2p";
    this.messages.append(item);
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  teardown() {
    clearTimeout(this.timer);
    const { pc, channel } = this;
    this.pc = null;
    this.channel = null;
    channel?.close();
    pc?.close();
  }

  /** Close the connection (or drop the offer), keep the panel and what was
   * said on screen. `tell` sends a bye so the peer closes its side at once. */
  end(note, tell) {
    if (tell && this.pc) this.owner.signal(this.peer, { kind: "bye" });
    this.teardown();
    this.offer = null;
    this.early = [];
    this.setState("closed", note);
  }

  /** The close button: end the conversation and remove the panel. Closing
   * an offer's prompt declines it. */
  dismiss() {
    if (this.state === "asking") this.decline();
    else this.end("", this.state !== "closed");
    this.panel.remove();
    this.owner.forget(this.peer);
  }
}
