// The browser's one WebSocket client for /ws (docs/protocol.md §1), shared by
// chat now and auctions later. It owns the socket and everything that keeps it
// useful across drops: request/reply matching by `ref`, listeners per event op,
// reconnection with backoff, re-joining topics with `since` so that no event is
// missed, a keep-alive ping, and a queue for requests made while offline.

/** First reconnect delay in ms; doubles per failed attempt. */
const BACKOFF_START_MS = 500;
/** Longest reconnect delay in ms, so a long outage still retries often. */
const BACKOFF_CAP_MS = 10_000;
/** How long a request waits for its reply before it fails, in ms. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Send a ping after this long without sending anything, in ms: idle sockets
 * get cut by proxies, and an unanswered ping reveals a dead connection. */
const IDLE_PING_MS = 20_000;

/** A failed request: the server's error reply, or a local failure with code
 * `disconnected`, `timeout` or `closed`. */
export class RequestError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class Socket {
  /**
   * @param {string} url absolute ws:/wss: URL, see `socketUrl`
   */
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.state = "offline";
    this.closedByUs = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastSentAt = 0;
    this.nextRef = 1;
    /** ref → { resolve, reject, timer } of requests sent and not yet answered. */
    this.pending = new Map();
    /** Requests made before the socket was online, sent once it is. */
    this.outbox = [];
    /** topic → { seq, onJoin, onError } for every topic the caller joined. */
    this.topics = new Map();
    /** op → Set of listeners; "state" and "refused" are local events. */
    this.listeners = new Map();
    this.reconnectWhenOnline = () => { if (this.state === "reconnecting") this.reconnectNow(); };
  }

  /** Listen to server events of one op (or the local "state" and "refused").
   * Returns a function that removes the listener. */
  on(op, listener) {
    if (!this.listeners.has(op)) this.listeners.set(op, new Set());
    this.listeners.get(op).add(listener);
    return () => this.listeners.get(op).delete(listener);
  }

  emit(op, value) {
    for (const listener of this.listeners.get(op) ?? []) listener(value);
  }

  /** Start connecting; the page may set `url` first (a new guest name). */
  connect() {
    this.closedByUs = false;
    this.attempt = 0;
    window.addEventListener("online", this.reconnectWhenOnline);
    this.open();
  }

  /** Close for good: no reconnection; pending and queued requests fail. */
  close() {
    this.closedByUs = true;
    window.removeEventListener("online", this.reconnectWhenOnline);
    clearTimeout(this.retryTimer);
    if (this.ws) this.lost(this.ws, { code: 1000, reason: "bye" });
    for (const { reject } of this.outbox.splice(0)) reject(new RequestError("closed", "the connection was closed"));
    this.setState("offline");
  }

  /** Skip the rest of a reconnect delay (not an attempt already under way). */
  reconnectNow() {
    if (this.state !== "reconnecting" || this.ws) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  open() {
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting", { retryAt: null });
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      ws.opened = true; // tells `lost` a drop from a refused upgrade
      this.lastSentAt = Date.now();
      this.pingTimer = setInterval(() => this.pingIfIdle(), IDLE_PING_MS / 4);
      this.rejoinAll();
    });
    // Frames from a socket already given up on (see `lost`) are ignored.
    ws.addEventListener("message", (event) => this.ws === ws && this.receive(event.data));
    ws.addEventListener("close", () => this.lost(ws));
  }

  /**
   * Give up on `ws`: fail what is in flight, then reconnect unless closed on
   * purpose. Also called without waiting for a close event (a ping left
   * unanswered, a join lost), since closing a dead TCP connection can take
   * long; the late close event is then ignored.
   */
  lost(ws, { code = 4000, reason = "gone" } = {}) {
    if (this.ws !== ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(code, reason);
    const error = this.closedByUs
      ? new RequestError("closed", "the connection was closed")
      : new RequestError("disconnected", "the connection dropped before the server answered");
    this.dropped(error);
    if (this.closedByUs) return;
    if (ws.opened) {
      this.scheduleReconnect();
      return;
    }
    // A refused upgrade (401 bad name, 403 origin) looks like any other
    // failure from here: the browser hides the HTTP status. Ask again with a
    // plain GET, which the server answers with the same status.
    const url = this.url;
    refusalStatus(url).then((status) => {
      // The page may have reconnected meanwhile (a new guest name).
      if (this.ws !== null || this.url !== url || this.closedByUs) return;
      if (status === null) {
        this.scheduleReconnect();
        return;
      }
      // Retrying would be refused again: stop, and let the page ask the user.
      this.closedByUs = true;
      this.setState("offline");
      this.emit("refused", { status });
    });
  }

  scheduleReconnect() {
    if (this.closedByUs) return;
    // "Equal jitter": half the exponential delay is fixed, half random, so a
    // server restart is not met by every client at the same instant.
    const base = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    this.setState("reconnecting", { retryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit("state", { state, ...detail });
  }

  /** Fail every request in flight: whether the server acted on it is unknown. */
  dropped(error) {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    this.pending.clear();
  }

  receive(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (!frame || typeof frame.op !== "string") return;
    if (frame.op === "reply") return this.settle(frame);
    const topic = frame.topic && this.topics.get(frame.topic);
    if (topic && Number.isInteger(frame.seq)) topic.seq = Math.max(topic.seq ?? 0, frame.seq);
    this.emit(frame.op, frame);
  }

  settle(reply) {
    const request = this.pending.get(reply.ref);
    if (!request) return;
    this.pending.delete(reply.ref);
    clearTimeout(request.timer);
    if (reply.status === "ok") request.resolve(reply.body ?? {});
    else request.reject(new RequestError(reply.body?.code ?? "error", reply.body?.message ?? "the server refused the request"));
  }

  /** Send a frame now if the socket is open; false when it is not. For frames
   * that are worthless later (typing, signal) and get no reply. */
  send(op, fields = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ op, ...fields }));
    this.lastSentAt = Date.now();
    return true;
  }

  /** Send a request and resolve with its reply body, or reject with a
   * RequestError. Requests made while not online wait in a queue and go out
   * after the topics are joined again (so a `say` lands in a joined topic). */
  request(op, fields = {}) {
    return new Promise((resolve, reject) => {
      const request = { op, fields, resolve, reject };
      if (this.state === "online") this.transmit(request);
      else if (this.closedByUs) reject(new RequestError("closed", "the connection is closed"));
      else this.outbox.push(request);
    });
  }

  /** True while a request made now would wait in the queue. */
  get queueing() {
    return this.state !== "online";
  }

  transmit({ op, fields, resolve, reject }) {
    const ref = String(this.nextRef++);
    const timer = setTimeout(() => {
      this.pending.delete(ref);
      reject(new RequestError("timeout", "the server did not answer in time"));
    }, REQUEST_TIMEOUT_MS);
    this.pending.set(ref, { resolve, reject, timer });
    if (!this.send(op, { ...fields, ref })) {
      this.pending.delete(ref);
      clearTimeout(timer);
      reject(new RequestError("disconnected", "not connected"));
    }
  }

  /**
   * Join a topic now and again after every reconnect. `onJoin(body, resumed)`
   * gets every join reply; `resumed` is true when it was a `since` resume, so
   * its history holds only the events missed while away. `onError(error)`
   * gets a join the server refused.
   */
  join(topic, { onJoin, onError } = {}) {
    const entry = { seq: null, onJoin, onError };
    this.topics.set(topic, entry);
    if (this.state !== "online") return; // joined on (re)connect
    const ws = this.ws;
    // A join lost in transit: start over, as after any drop.
    this.joinOne(topic, entry).catch(() => this.ws === ws && this.lost(ws, { reason: "join failed" }));
  }

  leave(topic) {
    this.topics.delete(topic);
    if (this.state === "online") this.request("leave", { topic }).catch(() => {});
  }

  async joinOne(topic, entry) {
    const resumed = entry.seq !== null;
    const fields = resumed ? { topic, since: entry.seq } : { topic };
    try {
      const body = await new Promise((resolve, reject) => this.transmit({ op: "join", fields, resolve, reject }));
      if (this.topics.get(topic) !== entry) return;
      const seqs = (body.history ?? []).map((m) => m.seq).filter(Number.isInteger);
      entry.seq = Math.max(entry.seq ?? 0, Number.isInteger(body.seq) ? body.seq : 0, ...seqs);
      entry.onJoin?.(body, resumed);
    } catch (error) {
      if (["disconnected", "timeout", "closed"].includes(error.code)) throw error;
      entry.onError?.(error);
    }
  }

  /** After (re)connecting: join every topic, then go online and flush the
   * queue. A join lost to another drop leaves the next reconnect to retry. */
  async rejoinAll() {
    const ws = this.ws;
    try {
      await Promise.all([...this.topics].map(([topic, entry]) => this.joinOne(topic, entry)));
    } catch {
      if (ws) this.lost(ws, { reason: "join failed" });
      return;
    }
    if (this.ws !== ws) return;
    this.attempt = 0;
    this.setState("online");
    for (const request of this.outbox.splice(0)) this.transmit(request);
  }

  pingIfIdle() {
    if (this.state !== "online" || Date.now() - this.lastSentAt < IDLE_PING_MS) return;
    const ws = this.ws;
    this.request("ping").catch((error) => {
      // No answer on an open socket: the connection is dead without knowing.
      if (error.code === "timeout" && ws) this.lost(ws, { reason: "ping timeout" });
    });
  }
}

/** 401 or 403 when the server refuses the upgrade of `url` for its identity
 * or origin; null for anything else (down, or merely not an upgrade). */
async function refusalStatus(url) {
  try {
    const response = await fetch(url.replace(/^ws/, "http"), { cache: "no-store" });
    return response.status === 401 || response.status === 403 ? response.status : null;
  } catch {
    return null;
  }
}

/** The /ws URL on this page's origin, with `?name=` for a guest. */
export function socketUrl(guestName) {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (guestName) url.searchParams.set("name", guestName);
  return url.href;
}
