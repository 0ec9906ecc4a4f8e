// Live crawl progress on the games page: while a crawl runs, poll its status,
// move the progress bar, and refresh the games list as prices come in.

const section = document.getElementById("crawl");
const POLL_MS = 1500;

async function refreshGames() {
  const response = await fetch(location.href, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = doc.getElementById("games");
  const current = document.getElementById("games");
  if (fresh && current) current.replaceWith(fresh);
  const freshCrawl = doc.getElementById("crawl");
  if (freshCrawl && section) section.replaceChildren(...freshCrawl.childNodes);
}

async function poll() {
  try {
    const response = await fetch("/api/crawls/latest");
    if (response.ok) {
      const crawl = await response.json();
      const total = Object.values(crawl.tasks).reduce((a, b) => a + b, 0);
      const done = (crawl.tasks.done || 0) + (crawl.tasks.dead || 0) + (crawl.tasks.cancelled || 0);
      const bar = document.getElementById("crawl-progress");
      const count = document.getElementById("crawl-count");
      if (bar) { bar.max = total; bar.value = done; }
      if (count) count.textContent = `${done} / ${total}`;
      await refreshGames();
      if (crawl.status !== "running") return;
    }
  } catch (err) {
    console.warn("crawl status unavailable", err);
  }
  setTimeout(poll, POLL_MS);
}

// Poll while a crawl runs, or while the first one is about to start.
if (section && section.dataset.running !== "false") setTimeout(poll, POLL_MS);
