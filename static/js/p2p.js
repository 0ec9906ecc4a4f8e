// Direct conversations: two members of a room talk over a WebRTC data channel
// that the server does not carry. The server only relays the negotiation
// (`signal` frames, docs/protocol.md §1) between the two connections; what is
// said goes browser to browser, and each panel says so.
//
// Signal data, one of:
//   {"kind":"offer","sdp":...}   {"kind":"answer","sdp":...}
//   {"kind":"ice","candidate":{...}}   {"kind":"bye"}
// The callee accepts an offer automatically.

import { messageItem } from "./message_view.js";

/** No STUN or TURN: host candidates only, so that it works offline and on
 * loopback; peers behind different NATs will not find a route. */
const RTC_CONFIG = { iceServers: [] };
/** Give up on a connection that has not opened by then, in ms. */
const CONNECT_TIMEOUT_MS = 20_000;
/** The same limit as room messages, in characters. */
const MAX_TEXT = 2000;

const STATE_TEXT = { connecting: "connecting", open: "direct connection open", closed: "closed" };

/** All direct conversations of one page, one per peer connection. */
export class DirectTalks {
  /**
   * @param {object} options
   * @param {import("./socket.js").Socket} options.socket
   * @param {string} options.topic the room's topic, which scopes the signals
   * @param {HTMLElement} options.container where panels go
   * @param {(conn: string) => string | undefined} options.userOf a member's name
   */
  constructor({ socket, topic, container, userOf }) {
    this.socket = socket;
    this.topic = topic;
    this.container = container;
    this.userOf = userOf;
    this.myConn = null;
    /** peer conn → Talk */
    this.talks = new Map();
    socket.on("signal", (frame) => {
      if (frame.topic === topic && typeof frame.from === "string" && frame.data) this.receive(frame.from, frame.data);
    });
  }

  setMyConn(conn) {
    this.myConn = conn;
  }

  /** Open (or bring back) the conversation with `peer` and call it. */
  open(peer) {
    if (peer === this.myConn) return;
    const talk = this.talkWith(peer);
    if (talk.state === "closed") talk.call();
    talk.focus();
  }

  /** The peer left the room: its end of the channel is gone or going. */
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
      this.talkWith(from).answer(data.sdp);
      return;
    }
    const talk = this.talks.get(from);
    if (!talk) return;
    if (data.kind === "answer" && typeof data.sdp === "string") talk.acceptAnswer(data.sdp);
    else if (data.kind === "ice" && data.candidate) talk.addCandidate(data.candidate);
    else if (data.kind === "bye") talk.end("They closed the conversation.", false);
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
    /** ICE candidates that came before the offer or answer they belong to. */
    this.early = [];
    this.timer = null;
    this.buildPanel();
  }

  get user() {
    return this.owner.userOf(this.peer) ?? "someone";
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

    panel.append(head, this.note, this.messages, this.form);
    this.panel = panel;
    this.setState("closed");
  }

  focus() {
    this.panel.scrollIntoView({ block: "nearest" });
    (this.state === "open" ? this.input : this.panel).focus();
  }

  setState(state, note = "") {
    this.state = state;
    this.stateEl.textContent = STATE_TEXT[state];
    this.stateEl.dataset.state = state;
    this.panel.dataset.state = state;
    this.note.textContent = note;
    this.note.hidden = !note;
    // Typing is only possible while the channel is open, so nothing typed
    // can be silently dropped.
    for (const control of this.form.elements) control.disabled = state !== "open";
  }

  /** A fresh RTCPeerConnection; any previous one is dropped. */
  connect() {
    this.teardown();
    const pc = new RTCPeerConnection(RTC_CONFIG);
    this.pc = pc;
    this.early = [];
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate) this.owner.signal(this.peer, { kind: "ice", candidate: event.candidate.toJSON() });
    });
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc === pc && pc.connectionState === "failed") this.end("No direct route to them was found.", true);
    });
    this.timer = setTimeout(() => {
      if (this.pc === pc && this.state !== "open") this.end("No direct route to them was found.", true);
    }, CONNECT_TIMEOUT_MS);
    this.setState("connecting");
    return pc;
  }

  async call() {
    const pc = this.connect();
    this.attach(pc.createDataChannel("chat"));
    try {
      await pc.setLocalDescription(await pc.createOffer());
      if (!this.owner.signal(this.peer, { kind: "offer", sdp: pc.localDescription.sdp })) {
        this.end("Not connected to the room right now.", false);
      }
    } catch {
      if (this.pc === pc) this.end("The browser could not start a direct connection.", false);
    }
  }

  async answer(sdp) {
    // Both sides called at once: the connection with the smaller id keeps its
    // offer, the other one drops its own and answers ("polite peer").
    const calling = this.pc && this.pc.signalingState === "have-local-offer";
    if (calling && (this.owner.myConn ?? "") < this.peer) return;
    const pc = this.connect();
    pc.addEventListener("datachannel", (event) => this.attach(event.channel));
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      this.flushEarly();
      await pc.setLocalDescription(await pc.createAnswer());
      this.owner.signal(this.peer, { kind: "answer", sdp: pc.localDescription.sdp });
    } catch {
      if (this.pc === pc) this.end("Their offer could not be used.", true);
    }
  }

  async acceptAnswer(sdp) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== "have-local-offer") return;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
      this.flushEarly();
    } catch {
      if (this.pc === pc) this.end("Their answer could not be used.", true);
    }
  }

  addCandidate(candidate) {
    if (!this.pc) return;
    if (!this.pc.remoteDescription) this.early.push(candidate);
    else this.pc.addIceCandidate(candidate).catch(() => {}); // a stale one
  }

  flushEarly() {
    for (const candidate of this.early.splice(0)) this.pc.addIceCandidate(candidate).catch(() => {});
  }

  attach(channel) {
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

  /** Close the connection, keep the panel (and what was said) on screen.
   * `tell` sends a bye so the peer closes its side at once. */
  end(note, tell) {
    if (tell && this.pc) this.owner.signal(this.peer, { kind: "bye" });
    this.teardown();
    this.setState("closed", note);
  }

  /** The close button: end the conversation and remove the panel. */
  dismiss() {
    this.end("", this.state !== "closed");
    this.panel.remove();
    this.owner.forget(this.peer);
  }
}
