// The admin dashboard, live: a snapshot arrives every second as a
// server-sent event and the page updates in place. EventSource reconnects
// by itself when the server restarts.

const $ = (id) => document.getElementById(id);

function setCounts(attr, counts) {
  for (const [name, n] of counts) {
    const cell = document.querySelector(`td[${attr}="${CSS.escape(name)}"]`);
    if (cell) cell.textContent = String(n);
  }
}

function setCrawl(crawl) {
  if (!crawl) return;
  const link = $("crawl-link");
  link.textContent = String(crawl.id);
  link.href = `/admin/tasks?crawl=${crawl.id}`;
  $("crawl-status").textContent = crawl.status;
  $("crawl-count").textContent = `${crawl.done} / ${crawl.total}`;
  const bar = $("crawl-progress");
  bar.max = Math.max(crawl.total, 1);
  bar.value = crawl.done;
  bar.textContent = `${crawl.percent}%`;
}

function setThroughput(perMinute) {
  const svg = $("throughput-chart");
  const height = svg.viewBox.baseVal.height;
  const max = Math.max(1, ...perMinute);
  perMinute.forEach((count, i) => {
    const rect = svg.querySelector(`rect[data-minute="${i}"]`);
    if (!rect) return;
    const h = Math.floor((count * height) / max);
    rect.setAttribute("y", String(height - h));
    rect.setAttribute("height", String(h));
    rect.querySelector("title").textContent = String(count);
  });
}

function apply({ snapshot, workers, node }) {
  setCrawl(snapshot.crawl);
  setCounts("data-state", snapshot.tasks);
  setCounts("data-status", snapshot.outbox);
  setThroughput(snapshot.throughput);
  $("workers-count").textContent = String(workers);
  // Counts by the cells' keys; absent if this node's rooms did not answer.
  if (node) setCounts("data-node", Object.entries(node));
  const paused = $("paused");
  paused.hidden = !snapshot.paused;
  $("paused-by").textContent = snapshot.paused || "";
}

const events = new EventSource("/admin/events");
events.onopen = () => { $("live").textContent = "live"; };
events.onerror = () => { $("live").textContent = "reconnecting…"; };
events.onmessage = (event) => {
  try {
    apply(JSON.parse(event.data));
  } catch (err) {
    console.error("bad dashboard event", err);
  }
};
// A page kept in the back/forward cache must not hold the stream open.
window.addEventListener("pagehide", () => events.close());
