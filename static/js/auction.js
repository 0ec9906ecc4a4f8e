// A lot's live room (/auctions/{id}). The server renders the lot as it is
// (templates/auction.html); this module joins the lot's topic over the shared
// socket and keeps the page live: price, leader, minimum next bid, history,
// watchers, a countdown on the server's clock, the bid form, and the outcome
// once the lot ends (docs/protocol.md §1).
//
// Money stays in integer cents; typed amounts are read digit by digit, never
// through floats. User text only ever reaches the page through textContent.

import { Socket, socketUrl } from "./socket.js";

/** Where chat remembers a guest's chosen name; watching a lot reuses it. */
const NAME_KEY = "bazaar.name";
/** Where a generated guest name is kept, for a guest who never chose one. */
const GUEST_KEY = "bazaar.guest";
/** The server's guest-name rule (docs/protocol.md §1). */
const GUEST_NAME = /^[\p{Alphabetic}\p{N}_.\- ]{1,32}$/u;
/** The most bid rows the history keeps on the page. */
const HISTORY_MAX = 200;
/** Pings per clock sync; the fastest round trip gives the best estimate. */
const SYNC_SAMPLES = 3;
/** Re-sync the clock this often, in ms: local clocks drift. */
const RESYNC_MS = 5 * 60_000;
/** Countdown refresh, in ms: often enough that seconds tick evenly. */
const TICK_MS = 250;

const STATUS_LABEL = { scheduled: "Not open yet", running: "Open for bids", finished: "Ended", cancelled: "Cancelled" };
const CONN_TEXT = { connecting: "connecting…", online: "online", reconnecting: "reconnecting…", offline: "offline" };

const $ = (id) => document.getElementById(id);
const root = $("auction");
const topic = root.dataset.topic;
const account = root.dataset.user ?? null;
const hasReserve = root.dataset.reserve !== undefined;
const form = $("bid-form");

/** The lot as last applied, and its seq (the lot's version): a state with a
 * lower seq is older and dropped. Starts as the server rendered it. */
let lot = {
  status: root.dataset.status,
  currency: root.dataset.currency,
  starts_at: root.dataset.startsAt,
  ends_at: root.dataset.endsAt,
};
let lastSeq = Number(root.dataset.seq);
/** Our account id (null for a guest) and connection id, from the join reply. */
let you = null;
let myConn = null;
/** The server's clock minus ours, in ms. */
let offsetMs = 0;

const socket = new Socket(null);

// ---- Formatting -----------------------------------------------------------

/** 1350 → "13.50" */
function units(cents) {
  const abs = Math.abs(cents);
  return `${cents < 0 ? "-" : ""}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/** 1350 → "13.50 EUR", as the server writes amounts. */
function money(cents) {
  return `${units(cents)} ${lot.currency}`;
}

/** "13.50" (or "13,5", "13") → 1350; null for anything that is not a plain
 * amount with at most two decimals. */
function parseCents(text) {
  const match = /^(\d{1,9})(?:[.,](\d{1,2}))?$/.exec(text.trim());
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? "").padEnd(2, "0"));
}

/** An RFC 3339 time as the server renders it: "2026-11-23 19:05:00 UTC". */
function stamp(at) {
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? "" : `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** A span as the countdown shows it: "2d 3h", "3h 12m", "4m 10s", "12s". */
function span(ms) {
  const secs = Math.max(0, Math.ceil(ms / 1000));
  const [d, h, m, s] = [Math.floor(secs / 86400), Math.floor(secs / 3600) % 24, Math.floor(secs / 60) % 60, secs % 60];
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s}s`;
  return `${s}s`;
}

/** How an ended lot ended, in the server's words (see auctions/pages.rs). */
/** A finished lot keeps its winner as the leader and its final price as the price. */
function outcomeText({ outcome, status, leader_name: winner, current_cents: final }) {
  if (outcome === "sold") return winner ? `Sold to ${winner} for ${money(final)}` : `Sold for ${money(final)}`;
  if (outcome === "reserve_not_met") return `Not sold: the reserve was not met (highest bid ${money(final)})`;
  if (outcome === "no_bids") return "Not sold: there were no bids";
  return outcome === "cancelled" || status === "cancelled" ? "Cancelled: this lot was withdrawn" : "Ended";
}

/** A new element with a class and text (text only ever via textContent). */
function el(tag, className, text = "") {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}

function showResult(kind, text) {
  const result = $("bid-result");
  result.dataset.kind = kind;
  result.textContent = text;
}

// ---- The lot --------------------------------------------------------------

/** Applies a lot state unless an equal or newer one is already shown (a join
 * reply is the full state, so it may re-apply the same seq). */
function applyLot(next, seq, { sameSeq = false } = {}) {
  if (!next || !Number.isInteger(seq) || seq < lastSeq || (seq === lastSeq && !sameSeq)) return false;
  lastSeq = seq;
  lot = next;
  render();
  return true;
}

function render() {
  $("price").textContent = money(lot.current_cents);
  $("price-label").textContent = lot.leader ? "Current bid" : "Starting price";
  const leader = lot.leader_name ?? (lot.leader ? "a bidder" : null);
  $("leader").textContent = leader ? `${leader}${lot.leader === you && you !== null ? " (you)" : ""}` : "no bids yet";
  $("bid-count").textContent = String(lot.bid_count ?? 0);
  $("min-next").textContent = money(lot.min_next_cents);
  if (form) form.elements.amount.placeholder = units(lot.min_next_cents);
  if (hasReserve) $("reserve").textContent = lot.reserve_met ? "met" : "not met yet";
  const status = $("lot-status");
  status.dataset.status = lot.status;
  status.textContent = STATUS_LABEL[lot.status] ?? lot.status;
  root.dataset.status = lot.status;
  $("opens").hidden = lot.status !== "scheduled";
  const endsAt = $("ends-at");
  endsAt.dateTime = lot.ends_at;
  endsAt.textContent = stamp(lot.ends_at);
  if (form) form.hidden = lot.status !== "running";
  const ended = lot.status === "finished" || lot.status === "cancelled";
  $("outcome").hidden = !ended;
  if (ended) $("outcome").textContent = outcomeText(lot);
  tick();
}

// ---- Countdown on the server's clock --------------------------------------

function tick() {
  const now = Date.now() + offsetMs;
  let text = STATUS_LABEL[lot.status] ?? "";
  if (lot.status === "scheduled") {
    const left = Date.parse(lot.starts_at) - now;
    text = left > 0 ? `Opens in ${span(left)}` : "Opening…";
  } else if (lot.status === "running") {
    const left = Date.parse(lot.ends_at) - now;
    text = left > 0 ? `Ends in ${span(left)}` : "Closing…";
  }
  $("countdown").textContent = text;
}

/** Estimates the clock offset from a few pings: the server read its clock
 * about half a round trip before the reply came. */
async function syncClock() {
  let best = null;
  for (let i = 0; i < SYNC_SAMPLES; i += 1) {
    const sent = Date.now();
    // Offline: give up; the next join syncs again.
    const body = await socket.request("ping").catch(() => null);
    const received = Date.now();
    const server = Date.parse(body?.server_time);
    if (Number.isNaN(server)) break;
    const rtt = received - sent;
    if (!best || rtt < best.rtt) best = { rtt, offset: server + rtt / 2 - received };
  }
  if (!best) return;
  offsetMs = Math.round(best.offset);
  root.dataset.clockOffset = String(offsetMs);
  tick();
}

setInterval(tick, TICK_MS);
setInterval(() => socket.state === "online" && syncClock(), RESYNC_MS);

// ---- Bid history ----------------------------------------------------------

/** A history row, shaped as the server renders it. */
function bidItem({ seq, bidder, amount_cents, proxy, at }) {
  const item = el("li", "");
  item.dataset.seq = String(seq);
  item.append(el("span", "bidder", bidder), " ", el("span", "amount", money(amount_cents)));
  if (proxy) item.append(" ", el("span", "proxy", "auto"));
  const time = el("time", "", stamp(at));
  time.dateTime = at;
  item.append(" ", time);
  return item;
}

/** Adds the rows of one seq (oldest first) unless they are shown already;
 * the list stays newest first. */
function addRows(seq, rows) {
  const list = $("bids");
  if (!Number.isInteger(seq) || list.querySelector(`li[data-seq="${seq}"]`)) return;
  const fragment = document.createDocumentFragment();
  for (const row of [...rows].reverse()) fragment.append(bidItem({ ...row, seq }));
  const after = [...list.children].find((li) => Number(li.dataset.seq) < seq);
  list.insertBefore(fragment, after ?? null);
  while (list.children.length > HISTORY_MAX) list.lastElementChild.remove();
  $("no-bids").hidden = list.children.length > 0;
}

/** The join reply's rows, newest first: grouped by seq. */
function addHistory(bids) {
  const groups = new Map();
  for (const bid of bids) {
    if (!groups.has(bid.seq)) groups.set(bid.seq, []);
    groups.get(bid.seq).unshift(bid);
  }
  for (const [seq, rows] of groups) addRows(seq, rows);
}

// ---- Watchers -------------------------------------------------------------

/** conn → user; presence diffs that arrive before the join reply wait in
 * `early` (null once the reply's list is in place). */
const members = new Map();
let early = [];

/** One entry per connection, sorted by name: a user with two tabs shows twice. */
function showMembers() {
  const sorted = [...members].sort(([c1, u1], [c2, u2]) => u1.localeCompare(u2) || c1.localeCompare(c2));
  $("members").replaceChildren(...sorted.map(([conn, user]) => {
    const item = el("li", "", user);
    item.dataset.conn = conn;
    if (conn === myConn) item.append(el("span", "you", " (you)"));
    return item;
  }));
  $("member-count").textContent = `(${members.size})`;
}

function applyPresence(event) {
  // Leaves first: a connection in both lists was renamed, and stays.
  for (const { conn } of event.leaves ?? []) members.delete(conn);
  for (const { conn, user } of event.joins ?? []) if (typeof conn === "string") members.set(conn, user);
  showMembers();
}

function setMembers(list) {
  members.clear();
  applyPresence({ joins: list });
  for (const event of early ?? []) applyPresence(event);
  early = null;
}

// ---- Socket ---------------------------------------------------------------

socket.join(topic, {
  onJoin(body) {
    you = body.you ?? null;
    myConn = body.conn ?? null;
    const server = Date.parse(body.server_time);
    if (!Number.isNaN(server)) offsetMs = server - Date.now(); // rough, until the pings
    applyLot(body.lot, body.seq ?? body.lot?.version, { sameSeq: true });
    addHistory(body.bids ?? []);
    setMembers(body.members ?? []);
    syncClock();
  },
  onError(error) {
    showResult("error", error.message);
  },
});

/** Listens to one op's events on this lot's topic only. */
const onLot = (op, listener) => socket.on(op, (event) => event.topic === topic && listener(event));

onLot("bid", (event) => {
  addRows(event.seq, event.rows ?? [event]);
  applyLot(event.lot, event.seq);
});
onLot("lot", (event) => applyLot(event.lot, event.seq));
onLot("started", (event) => applyLot(event.lot, event.seq));
onLot("finished", (event) => {
  if (!applyLot(event.lot, event.seq)) return;
  if (lot.outcome === "sold" && you !== null && lot.leader === you) showResult("ok", `You won this lot for ${money(lot.current_cents)}.`);
});
// Sent only to the previous leader's sockets; stale once we lead again.
onLot("outbid", (event) => {
  applyLot(event.lot, event.seq);
  if (lot.leader !== you) showResult("outbid", `You were outbid: the price is now ${money(lot.current_cents)}.`);
});
onLot("presence", (event) => (early ? early.push(event) : applyPresence(event)));

// After a logout (maybe in another tab) this socket is no one: start over.
socket.on("session", ({ user }) => {
  if (user === null) {
    socket.close();
    window.location.reload();
  }
});

socket.on("state", ({ state }) => {
  const badge = $("conn-state");
  badge.dataset.state = state;
  badge.textContent = CONN_TEXT[state] ?? state;
  if (state !== "online" && !early) early = [];
});

socket.on("refused", ({ status }) => {
  if (status === 403) showResult("error", "This page's address is not allowed to connect for live updates.");
  else if (account) showResult("error", "You are no longer logged in: reload the page.");
  else if (!renamed) {
    renamed = true; // the stored name was refused: watch under a new one, once
    connect(freshGuestName());
  } else showResult("error", "The server refused to let this page watch the lot: reload to try again.");
});

/** Whether a refused guest name was already replaced. */
let renamed = false;

// ---- Bidding --------------------------------------------------------------

const STANDING = {
  leading: () => `You are the highest bidder at ${money(lot.current_cents)}.`,
  outbid: () => `Your bid was placed, but another bidder's maximum is higher: the price is now ${money(lot.current_cents)}.`,
  raised_max: () => `Your maximum is raised; you are still the highest bidder at ${money(lot.current_cents)}.`,
};

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const amount = parseCents(form.elements.amount.value);
  if (amount === null) return showResult("error", `Write your bid as an amount such as ${units(lot.min_next_cents ?? 0)}: digits, and at most two decimals.`);
  const maxText = form.elements.max.value.trim();
  const max = maxText ? parseCents(maxText) : undefined;
  if (max === null) return showResult("error", "Write your maximum as an amount such as 25.00, or leave it empty.");
  // A bid queued while offline could land much later than meant: refuse it now.
  if (socket.state !== "online") return showResult("error", "Not connected: wait until the page is live again, then bid.");
  const fields = max === undefined ? { topic, amount_cents: amount } : { topic, amount_cents: amount, max_cents: max };
  const button = form.querySelector("button");
  button.disabled = true;
  showResult("pending", "Placing your bid…");
  try {
    const reply = await socket.request("bid", fields);
    applyLot(reply.lot, reply.seq);
    form.reset();
    showResult(reply.standing === "outbid" ? "outbid" : "ok", (STANDING[reply.standing] ?? STANDING.leading)());
  } catch (error) {
    const lost = ["disconnected", "timeout", "closed"].includes(error.code);
    showResult("error", lost ? "The connection dropped before the server answered: the history shows whether your bid went through." : error.message);
  } finally {
    button.disabled = false;
  }
});

// ---- Start ----------------------------------------------------------------

/** localStorage, or nothing when it is disabled: then a name lasts one visit. */
function storage(key, value) {
  try {
    return value === undefined ? localStorage.getItem(key) : localStorage.setItem(key, value);
  } catch {
    return null;
  }
}

function freshGuestName() {
  const bytes = crypto.getRandomValues(new Uint8Array(2));
  const name = `guest-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  storage(GUEST_KEY, name);
  return name;
}

function connect(guest) {
  socket.url = socketUrl(guest);
  socket.connect();
}

// Leaving the page may keep it alive in the back/forward cache, socket and
// all, and the room would list a watcher who is gone: close on the way out,
// and reconnect if the page is shown again.
window.addEventListener("pagehide", () => socket.close());
window.addEventListener("pageshow", (event) => event.persisted && socket.connect());

if (account) {
  connect(null);
} else {
  const name = [storage(NAME_KEY), storage(GUEST_KEY)].find((n) => n && GUEST_NAME.test(n));
  connect(name ?? freshGuestName());
}
tick();
