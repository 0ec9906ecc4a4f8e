// The one shape of a chat message on screen, shared by the room and the
// direct conversations: `.meta` (`.user`, `.time`) then `.text`. User text
// only ever goes through textContent.

/** A time as the list shows it: hours today, the date before that. */
export function formatTime(at) {
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return { text: "", full: "" };
  const today = date.toDateString() === new Date().toDateString();
  const text = today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  return { text, full: date.toLocaleString() };
}

/**
 * A message's list item. `at` is an RFC 3339 time; `null` leaves the time
 * out (a message not sent yet has none).
 */
export function messageItem(user, text, at) {
  const item = document.createElement("li");
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("span");
  who.className = "user";
  who.textContent = user;
  meta.append(who);
  if (at !== null) {
    const time = document.createElement("time");
    time.className = "time";
    const shown = formatTime(at);
    time.dateTime = at ?? "";
    time.textContent = shown.text;
    time.title = shown.full;
    meta.append(" ", time);
  }
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  item.append(meta, body);
  return item;
}
