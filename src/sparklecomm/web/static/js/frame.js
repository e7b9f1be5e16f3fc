// Every framed page: the live-connection indicator and the activity feed, if present.
import { api } from "./api.js";
import { EventClient } from "./events.js";

const status = document.getElementById("live-status");
const feed = document.getElementById("event-feed");

function describe(ev) {
  const p = ev.payload || {};
  if (p.user) return `${p.user.display_name} (${p.user.username}, ${p.user.role})`;
  if (p.name) return p.name;
  return "";
}

function show(ev) {
  if (!feed) return;
  const li = document.createElement("li");
  const t = document.createElement("time");
  t.dateTime = ev.time;
  t.textContent = new Date(ev.time).toLocaleTimeString();
  const c = document.createElement("code");
  c.textContent = ev.type;
  const d = document.createElement("span");
  d.textContent = describe(ev);
  li.append(t, c, d);
  li.dataset.eventId = ev.id;
  // newest first, whatever order history and live events arrive in
  const older = [...feed.children].find((x) => Number(x.dataset.eventId) < ev.id);
  feed.insertBefore(li, older ?? null);
  while (feed.children.length > 100) feed.lastChild.remove();
}

export const events = new EventClient({
  onEvent: (ev) => { show(ev); document.dispatchEvent(new CustomEvent("sc:event", { detail: ev })); },
  onStatus: (s) => {
    if (!status) return;
    status.dataset.state = s;
    status.querySelector(".label").textContent = s;
  },
});
events.start()
  .then(async (snapshot) => {
    if (!feed) return;
    // Recent history first, so the feed is not empty on arrival.
    const after = Math.max(0, snapshot.last_event_id - 20);
    const page = await api("GET", `/api/v1/events?after=${after}&limit=20`);
    const shown = new Set([...feed.children].map((li) => Number(li.dataset.eventId)));
    for (const ev of page.events) if (!shown.has(ev.id)) show(ev);
  })
  .catch(() => status && (status.dataset.state = "offline"));
