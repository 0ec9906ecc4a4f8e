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

// The worker table's cells after the node's, in the template's order.
const WORKER_FIELDS = ["address", "version", "slots", "credits", "in_flight", "done", "failed", "scraper_restarts"];

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = String(text);
  if (className) td.className = className;
  return td;
}

// A row as the template renders it. Every value goes in as text: worker
// names and versions are the workers' own words.
function workerRow(worker, cluster) {
  const row = document.createElement("tr");
  if (cluster) cell(row, worker.node, "node");
  const name = cell(row, worker.name);
  if (worker.draining) {
    const note = document.createElement("span");
    note.className = "muted";
    note.textContent = "(draining)";
    name.append(" ", note);
  }
  for (const field of WORKER_FIELDS) cell(row, worker[field]);
  // The server's clock, in UTC, as the template shows it.
  const beat = new Date(worker.last_heartbeat);
  cell(row, Number.isNaN(beat.getTime()) ? "" : beat.toISOString().slice(11, 19));
  return row;
}

// Every node's workers; null when this node could not list them this time.
function setWorkers(workers, cluster, unreachable) {
  if (!workers) return;
  $("workers-count").textContent = String(workers.length);
  $("workers-none").hidden = workers.length > 0;
  $("workers-table").hidden = workers.length === 0;
  $("workers-rows").replaceChildren(...workers.map((w) => workerRow(w, cluster)));
  $("workers-unreachable").hidden = !unreachable;
  $("workers-unreachable-why").textContent = unreachable || "";
}

function apply({ snapshot, cluster, workers, unreachable, node }) {
  setCrawl(snapshot.crawl);
  setCounts("data-state", snapshot.tasks);
  setCounts("data-status", snapshot.outbox);
  setThroughput(snapshot.throughput);
  setWorkers(workers, cluster, unreachable);
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
