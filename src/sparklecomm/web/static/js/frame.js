// Every framed page: the live-connection indicator and the activity feed, if present.
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
  feed.prepend(li);
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
events.start().catch(() => status && (status.dataset.state = "offline"));
