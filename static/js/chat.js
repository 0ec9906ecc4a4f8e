// The chat room page (/rooms/{name}). The server renders an empty frame
// (templates/room.html); this module asks a guest for a name, joins the room's
// topic over the shared socket and keeps the page live: messages (history,
// live, and older ones paged in on scroll), members, typing, the composer and
// the connection badge. Direct conversations live in p2p.js.
//
// User text only ever reaches the page through textContent.

import { Socket, socketUrl } from "./socket.js";
import { messageItem } from "./message_view.js";
import { DirectTalks } from "./p2p.js";

/** The server's limit on a message, in characters. */
const MAX_TEXT = 2000;
/** Send `typing` at most this often, in ms: the server expires it after ~5 s. */
const TYPING_EVERY_MS = 2000;
/** Older messages fetched per request while scrolling back. */
const PAGE_SIZE = 50;
/** Within this many pixels of an edge counts as being at that edge. */
const EDGE_PX = 48;
/** After a failed page of older messages, wait this long before retrying, in ms. */
const HISTORY_RETRY_MS = 3000;
/** Where a guest's chosen name is remembered between visits. */
const NAME_KEY = "bazaar.name";
/** The server's guest-name rule (docs/protocol.md §1), checked here first so
 * that a typo gets a message instead of a refused connection. */
const GUEST_NAME = /^[\p{Alphabetic}\p{N}_.\- ]{1,32}$/u;

const $ = (id) => document.getElementById(id);
const root = $("chat");
const room = root.dataset.room;
const topic = root.dataset.topic;
const account = root.dataset.user ?? null;

const list = $("messages");
const composer = $("composer");
const textarea = composer.elements.text;

const socket = new Socket(null);
/** Who we are: the account's display name or the guest name. */
let me = account;
/** This connection's id in the room (changes on every reconnect). */
let myConn = null;
/** seq → message element, so an event seen twice is shown once. */
const shown = new Map();
/** seq → outgoing placeholder, for a `say` whose reply came before its event. */
const awaiting = new Map();
/** conn → { user, element } */
const members = new Map();

const talks = new DirectTalks({
  socket,
  topic,
  container: $("p2p-panels"),
  userOf: (conn) => members.get(conn)?.user,
  stunUrls: stunUrls(),
});

/** The STUN servers the server is configured with (chat.stun_urls), which
 * the page carries as a JSON list. */
function stunUrls() {
  try {
    const urls = JSON.parse(root.dataset.stun ?? "[]");
    return Array.isArray(urls) ? urls.filter((url) => typeof url === "string") : [];
  } catch {
    return [];
  }
}

// ---- Identity -------------------------------------------------------------

function storedName() {
  try {
    return localStorage.getItem(NAME_KEY);
  } catch {
    return null; // storage can be disabled; then the name lasts one visit
  }
}

function storeName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // as above
  }
}

function showNameForm(message = "") {
  const form = $("name-form");
  form.hidden = false;
  $("chat-body").hidden = true;
  $("chat-as").hidden = true;
  form.elements.name.value = me ?? storedName() ?? "";
  const error = $("name-error");
  error.textContent = message;
  error.hidden = !message;
  form.elements.name.focus();
}

function start(name) {
  me = name;
  $("me").textContent = name;
  $("chat-as").hidden = false;
  $("chat-body").hidden = false;
  const form = $("name-form");
  if (form) form.hidden = true;
  socket.url = socketUrl(account ? null : name);
  socket.connect();
  textarea.focus();
}

if (!account) {
  $("name-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = event.target.elements.name.value.trim();
    if (!GUEST_NAME.test(name)) {
      showNameForm("Names are 1-32 letters, digits, spaces, _ - or .");
      return;
    }
    storeName(name);
    if (socket.state !== "offline") socket.close();
    start(name);
  });
  $("change-name").addEventListener("click", () => {
    socket.close();
    showNameForm();
  });
}

socket.on("refused", ({ status }) => {
  if (status === 403) {
    showComposerError("This page's address is not allowed to connect to the chat.");
  } else if (account) {
    showComposerError("You are no longer signed in: reload the page to chat.");
  } else {
    showNameForm(`The server did not accept the name “${me}”. Names are 1-32 letters, digits, spaces, _ - or .`);
  }
});

// The account changed or logged out, maybe in another tab: the server pushes
// `session`. A new display name shows at once; after a logout this socket is
// no one, so the page reloads as a visitor.
socket.on("session", ({ user }) => {
  if (user === null) {
    socket.close();
    window.location.reload();
  } else if (account) {
    me = user.display_name;
    $("me").textContent = me;
  }
});

// Leaving the page may keep it alive in the back/forward cache, socket and
// all, and the room would list a member who is gone: close on the way out,
// and reconnect (resuming with `since`) if the page is shown again.
window.addEventListener("pagehide", () => socket.close());
window.addEventListener("pageshow", (event) => event.persisted && me && socket.connect());

// ---- Connection badge -----------------------------------------------------

const STATE_TEXT = { connecting: "connecting…", online: "online", reconnecting: "reconnecting…", offline: "offline" };
let countdown = null;

socket.on("state", ({ state, retryAt }) => {
  const badge = $("conn-state");
  badge.dataset.state = state;
  clearInterval(countdown);
  if (state === "reconnecting" && retryAt) {
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      badge.textContent = `reconnecting in ${seconds} s…`;
    };
    tick();
    countdown = setInterval(tick, 1000);
  } else {
    badge.textContent = STATE_TEXT[state];
  }
  $("reconnect-now").hidden = !(state === "reconnecting" && retryAt);
  if (state === "online") {
    for (const entry of list.querySelectorAll(".outgoing[data-state=queued]")) setOutgoing(entry, "sending");
  }
});

$("reconnect-now").addEventListener("click", () => socket.reconnectNow());

// ---- Joining --------------------------------------------------------------

socket.join(topic, {
  onJoin(body, resumed) {
    myConn = body.conn ?? null;
    talks.setMyConn(myConn);
    setMembers(body.members ?? []);
    showTyping([]);
    const upTo = Number.isInteger(body.seq) ? body.seq : null;
    if (body.truncated && upTo !== null) {
      // Too much was missed: the reply holds only the oldest of it. Start
      // over from the newest and let scrolling back fill in the rest.
      clearMessages(upTo);
      loadLatest(upTo);
      return;
    }
    stickToBottom(() => (body.history ?? []).forEach(insertMessage), !resumed);
    fillViewport();
  },
  onError(error) {
    showComposerError(error.message);
  },
});

// ---- Messages -------------------------------------------------------------

function messageElement(message) {
  const item = messageItem(message.user, message.text, message.at);
  item.className = "message";
  if (message.user === me) item.classList.add("mine");
  item.dataset.seq = message.seq;
  if (message.id !== undefined) item.dataset.id = message.id;
  return item;
}

function seqOf(element) {
  return Number(element.dataset.seq);
}

/** Put a message in seq order (almost always last); ignore one already shown. */
function insertMessage(message) {
  if (!Number.isInteger(message.seq) || shown.has(message.seq)) return;
  const item = messageElement(message);
  shown.set(message.seq, item);
  let before = list.querySelector(".outgoing"); // placeholders stay at the end
  let previous = before ? before.previousElementSibling : list.lastElementChild;
  while (previous && seqOf(previous) > message.seq) {
    before = previous;
    previous = previous.previousElementSibling;
  }
  list.insertBefore(item, before);
  settleOutgoing(message);
}

/** Older messages go on top; keep what the reader was looking at in place. */
function prependOlder(messages) {
  const fresh = messages.filter((m) => Number.isInteger(m.seq) && !shown.has(m.seq));
  const fragment = document.createDocumentFragment();
  for (const message of fresh.sort((a, b) => a.seq - b.seq)) {
    const item = messageElement(message);
    shown.set(message.seq, item);
    fragment.append(item);
  }
  const fromBottom = list.scrollHeight - list.scrollTop;
  list.prepend(fragment);
  list.scrollTop = list.scrollHeight - fromBottom;
}

/** Remove the messages up to seq `upTo`; later ones came live and stay. */
function clearMessages(upTo) {
  for (const [seq, item] of shown) {
    if (seq > upTo) continue;
    item.remove();
    shown.delete(seq);
  }
  older.hasMore = true;
  setHistoryState("");
}

function atBottom() {
  return list.scrollHeight - list.scrollTop - list.clientHeight < EDGE_PX;
}

/** Run `change`, then scroll to the bottom if the reader was there (or `force`). */
function stickToBottom(change, force = false) {
  const stick = force || atBottom();
  change();
  if (stick) list.scrollTop = list.scrollHeight;
}

socket.on("message", (event) => {
  if (event.topic === topic) stickToBottom(() => insertMessage(event));
});

// ---- Older messages -------------------------------------------------------

/** Paging state for older messages. */
const older = { loading: false, hasMore: true, retryAt: 0 };

function setHistoryState(text) {
  $("history-state").textContent = text;
}

/** One page of messages before seq `before`, oldest first. */
async function fetchPage(before) {
  const url = `/api/rooms/${encodeURIComponent(room)}/messages?before=${before}&limit=${PAGE_SIZE}`;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const page = await response.json();
  const messages = Array.isArray(page.messages) ? page.messages : [];
  return { messages, hasMore: Boolean(page.has_more) && messages.length > 0 };
}

function showPaging() {
  setHistoryState(older.hasMore ? "" : `This is the beginning of #${room}.`);
}

async function loadOlder() {
  if (older.loading || !older.hasMore || Date.now() < older.retryAt) return;
  const first = list.querySelector(".message");
  if (!first) return; // nothing shown yet: the join brings the newest first
  older.loading = true;
  setHistoryState("Loading older messages…");
  try {
    const page = await fetchPage(seqOf(first));
    prependOlder(page.messages);
    older.hasMore = page.hasMore;
    showPaging();
  } catch {
    older.retryAt = Date.now() + HISTORY_RETRY_MS;
    setHistoryState("Older messages could not be loaded. Scroll up to try again.");
    return;
  } finally {
    older.loading = false;
  }
  fillViewport();
}

/** The newest page up to seq `upTo`, after a resume that missed too much. */
async function loadLatest(upTo) {
  older.loading = true;
  setHistoryState("Loading what was said while you were away…");
  try {
    const page = await fetchPage(upTo + 1);
    stickToBottom(() => page.messages.forEach(insertMessage), true);
    older.hasMore = page.hasMore;
    showPaging();
  } catch {
    setHistoryState("What was said while you were away could not be loaded: reload the page to see it.");
    return;
  } finally {
    older.loading = false;
  }
  fillViewport();
}

/** Keep loading while the top of the list is in view: a short list has no
 * scrollbar to scroll back with. */
function fillViewport() {
  if (list.scrollTop < EDGE_PX) loadOlder();
}

list.addEventListener("scroll", fillViewport, { passive: true });

// ---- Members --------------------------------------------------------------

function memberElement(conn, user) {
  const item = document.createElement("li");
  item.className = "member";
  item.dataset.conn = conn;
  const name = document.createElement("span");
  name.className = "user";
  name.textContent = user;
  item.append(name);
  if (conn === myConn) {
    item.classList.add("me");
    const you = document.createElement("span");
    you.className = "you";
    you.textContent = " (you)";
    item.append(you);
  } else {
    const talk = document.createElement("button");
    talk.type = "button";
    talk.className = "talk";
    talk.textContent = "talk directly";
    talk.setAttribute("aria-label", `Talk directly with ${user}`);
    talk.addEventListener("click", () => talks.open(conn));
    item.append(" ", talk);
  }
  return item;
}

/** One entry per connection, sorted by name: a user with two tabs shows twice. */
function addMember({ conn, user }) {
  if (typeof conn !== "string") return;
  members.get(conn)?.element.remove();
  const element = memberElement(conn, user);
  members.set(conn, { user, element });
  const ul = $("members");
  const next = [...ul.children].find((other) => {
    const otherUser = members.get(other.dataset.conn)?.user ?? "";
    return otherUser.localeCompare(user) > 0 || (otherUser === user && other.dataset.conn > conn);
  });
  ul.insertBefore(element, next ?? null);
}

/** `renamed`: the connection is still here under a new name, so a direct
 * talk with it goes on. */
function removeMember({ conn }, renamed = false) {
  const member = members.get(conn);
  if (!member) return;
  member.element.remove();
  members.delete(conn);
  if (!renamed) talks.peerLeft(conn);
}

function updateMemberCount() {
  $("member-count").textContent = `(${members.size})`;
}

/** The join reply's full list, then any diffs that overtook it. */
function setMembers(list) {
  const present = new Set(list.map((m) => m.conn));
  for (const conn of [...members.keys()]) if (!present.has(conn)) removeMember({ conn });
  for (const member of list) addMember(member);
  updateMemberCount();
  for (const event of earlyPresence ?? []) applyPresence(event);
  earlyPresence = null;
}

function applyPresence(event) {
  // Leaves first: a connection in both lists was renamed, and stays.
  const joins = event.joins ?? [];
  for (const left of event.leaves ?? []) removeMember(left, joins.some((m) => m.conn === left.conn));
  joins.forEach(addMember);
  updateMemberCount();
}

/** Diffs that arrive before the join reply are newer than its member list:
 * hold them until the list is in place. null once it is. */
let earlyPresence = [];

socket.on("presence", (event) => {
  if (event.topic !== topic) return;
  if (earlyPresence) earlyPresence.push(event);
  else applyPresence(event);
});

socket.on("state", ({ state }) => {
  if (state !== "online" && !earlyPresence) earlyPresence = [];
});

// ---- Typing ---------------------------------------------------------------

function showTyping(users) {
  const others = [...new Set(users.filter((user) => user !== me))];
  let text = "";
  if (others.length === 1) text = `${others[0]} is typing…`;
  else if (others.length === 2) text = `${others[0]} and ${others[1]} are typing…`;
  else if (others.length === 3) text = `${others[0]}, ${others[1]} and ${others[2]} are typing…`;
  else if (others.length > 3) text = "Several people are typing…";
  $("typing").textContent = text;
}

socket.on("typing", (event) => {
  if (event.topic === topic && Array.isArray(event.users)) showTyping(event.users);
});

let lastTypingAt = 0;

function announceTyping() {
  if (!textarea.value || socket.state !== "online") return;
  if (Date.now() - lastTypingAt < TYPING_EVERY_MS) return;
  if (socket.send("typing", { topic })) lastTypingAt = Date.now();
}

// ---- Composer -------------------------------------------------------------

function length(text) {
  return [...text].length; // characters, as the server counts, not UTF-16 units
}

function updateCount() {
  const count = $("composer-count");
  const used = length(textarea.value);
  count.textContent = `${used} / ${MAX_TEXT}`;
  count.classList.toggle("over", used > MAX_TEXT);
}

function showComposerError(message) {
  const error = $("composer-error");
  error.textContent = message;
  error.hidden = !message;
}

const OUTGOING_TEXT = {
  queued: "waiting for the connection…",
  sending: "sending…",
  failed: "not sent: the connection dropped",
};

/** A placeholder for a message on its way; the message event replaces it. */
function outgoingElement(text) {
  const item = messageItem(me, text, null);
  item.className = "outgoing mine";
  const status = document.createElement("span");
  status.className = "status";
  item.querySelector(".meta").append(" ", status);
  item.sentText = text;
  stickToBottom(() => list.append(item), true);
  return item;
}

function setOutgoing(item, state) {
  item.dataset.state = state;
  const status = item.querySelector(".status");
  status.textContent = OUTGOING_TEXT[state];
  if (state === "failed") {
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "link retry";
    retry.textContent = "Retry";
    retry.addEventListener("click", () => say(item.sentText, item));
    status.append(" ", retry);
  }
}

/** A placeholder is done once its message is shown. A failed one whose
 * message shows up anyway (the drop came after the server had it) goes too. */
function settleOutgoing(message) {
  const item = awaiting.get(message.seq);
  if (item) {
    awaiting.delete(message.seq);
    item.remove();
  }
  if (message.user !== me) return;
  for (const failed of list.querySelectorAll(".outgoing[data-state=failed]")) {
    if (failed.sentText === message.text) {
      failed.remove();
      break;
    }
  }
}

function say(text, item = outgoingElement(text)) {
  setOutgoing(item, socket.queueing ? "queued" : "sending");
  socket.request("say", { topic, text }).then(
    ({ seq }) => {
      if (shown.has(seq) || !Number.isInteger(seq)) item.remove();
      else awaiting.set(seq, item);
    },
    (error) => {
      if (["disconnected", "timeout", "closed"].includes(error.code)) {
        // The server may or may not have it: keep it, offer a retry, and drop
        // it if the message arrives after all.
        setOutgoing(item, "failed");
        return;
      }
      item.remove();
      showComposerError(error.message);
      if (!textarea.value) {
        textarea.value = text; // give the words back rather than lose them
        updateCount();
      }
    },
  );
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = textarea.value.trim();
  if (!text) return;
  if (length(text) > MAX_TEXT) {
    showComposerError(`A message is at most ${MAX_TEXT} characters.`);
    return;
  }
  showComposerError("");
  textarea.value = "";
  updateCount();
  say(text);
});

textarea.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter is a new line; Enter that ends an IME
  // composition (Japanese, Chinese input) only confirms the characters.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

textarea.addEventListener("input", () => {
  updateCount();
  announceTyping();
});

// ---- Start ----------------------------------------------------------------

if (account) {
  start(account);
} else {
  const name = storedName();
  if (name && GUEST_NAME.test(name)) start(name);
  else showNameForm();
}
