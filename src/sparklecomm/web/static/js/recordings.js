// Call recordings: the recorded calls this user may hear, newest first, filtered by agent,
// queue and date. Each plays in the page (the session cookie authenticates the audio's URL;
// the server answers Range requests, so the player can seek). Administrators may delete
// them. The list follows the event stream: a recording started, paused, resumed, stopped or
// deleted anywhere reloads it (recording.*).
import { api } from "./api.js";
import { debounce, duration, h, toast } from "./dom.js";
import { filterQuery, loadNames, oneAtATime, problemText } from "./listing.js";

const base = "/api/v1/recordings";
const section = document.getElementById("recordings");
const everyAgent = section.dataset.everyAgent === "true";
const mayDelete = section.dataset.mayDelete === "true";
const body = document.getElementById("rec-body");
const statusEl = document.getElementById("rec-status");
const agentSelect = document.getElementById("rec-agent"); // supervisors and administrators
const queueSelect = document.getElementById("rec-queue");
const sinceInput = document.getElementById("rec-since");
const untilInput = document.getElementById("rec-until");
const columns = mayDelete ? 10 : 9;
const STATUS_LABEL = { recording: "Recording", complete: "Complete", interrupted: "Interrupted", failed: "Failed" };
let recordings = [];
let people = new Map(); // user id → name (supervisors and administrators)
let queues = new Map(); // queue id → name
const filters = { agent: agentSelect, queue: queueSelect, since: sinceInput, until: untilInput };

function agentName(id) {
  if (!id) return "–";
  if (!everyAgent) return "You";
  return people.get(id) ?? id;
}

function pausedText(r) {
  const spans = (r.pauses || []).map(([a, b]) => b === null ? `${duration(a)}–…` : `${duration(a)}–${duration(b)}`);
  return spans.length ? spans.join(", ") : "–";
}

function statusBadge(r) {
  const paused = r.status === "recording" && (r.pauses || []).some(([, b]) => b === null);
  const label = paused ? "Paused" : STATUS_LABEL[r.status] ?? r.status;
  return h("span", { class: r.status === "complete" ? "badge" : "badge off", "data-testid": "rec-status" }, label);
}

function row(r) {
  const when = new Date(r.started_at);
  const playable = r.status === "complete" || r.status === "interrupted";
  const audio = playable
    ? h("audio", {
      controls: true, preload: "metadata", src: `${base}/${encodeURIComponent(r.id)}/audio`,
      "aria-label": `Recording of the call from ${r.caller} at ${when.toLocaleString()}`,
    })
    : h("span", { class: "muted" }, r.status === "recording" ? "After the call" : "No audio");
  if (playable) {
    audio.addEventListener("error", () => toast(`The recording of the call from ${r.caller} could not be loaded.`, "error"));
  }
  return h("tr", { "data-recording": r.id, "data-status": r.status },
    h("td", {}, h("time", { datetime: r.started_at }, when.toLocaleString())),
    h("td", {}, r.caller),
    h("td", {}, r.dialled || "–"),
    h("td", {}, agentName(r.agent_id)),
    h("td", {}, r.queue_id ? (queues.get(r.queue_id) ?? r.queue_id) : "–"),
    h("td", { class: "num" }, duration(r.seconds)),
    h("td", {}, pausedText(r)),
    h("td", {}, statusBadge(r)),
    h("td", {}, audio),
    mayDelete ? h("td", {}, r.status === "recording" ? null
      : h("button", { class: "btn small bad", type: "button", onclick: () => remove(r) }, "Delete")) : null);
}

function render() {
  if (!recordings.length) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: columns, class: "muted", "data-testid": "recordings-empty" }, "No recordings.")));
  } else {
    // Keep a row whose recording is playing: replacing it would stop the playback.
    const playing = new Map([...body.querySelectorAll("tr[data-recording]")]
      .filter((tr) => { const a = tr.querySelector("audio"); return a && !a.paused; })
      .map((tr) => [tr.dataset.recording, tr]));
    body.replaceChildren(...recordings.map((r) => playing.get(r.id) ?? row(r)));
  }
  statusEl.textContent = recordings.length ? `${recordings.length} recording${recordings.length === 1 ? "" : "s"}.` : "";
}

// One load at a time; an event arriving meanwhile loads once more afterwards.
const load = oneAtATime(async () => {
  try {
    recordings = await api("GET", `${base}?${filterQuery(filters)}`);
    render();
  } catch (err) {
    statusEl.textContent = `Recordings could not be loaded: ${problemText(err)}.`;
    toast(`Recordings could not be loaded: ${problemText(err)}.`, "error");
  }
});

async function remove(r) {
  if (!confirm(`Delete the recording of the call from ${r.caller}? The audio is deleted too.`)) return;
  try {
    await api("DELETE", `${base}/${encodeURIComponent(r.id)}`);
    recordings = recordings.filter((x) => x.id !== r.id);
    render();
    toast(`Deleted the recording of the call from ${r.caller}.`);
  } catch (err) {
    toast(`Could not delete the recording: ${problemText(err)}.`, "error");
    load();
  }
}

document.getElementById("rec-refresh").addEventListener("click", () => load());
document.getElementById("rec-filters").addEventListener("submit", (e) => { e.preventDefault(); load(); });
for (const el of [agentSelect, queueSelect, sinceInput, untilInput]) el?.addEventListener("change", debounce(() => load(), 150));
// frame.js follows the event stream and hands every event on as "sc:event".
document.addEventListener("sc:event", (e) => {
  const type = e.detail?.type ?? "";
  if (type.startsWith("recording.") && type !== "recording.policy_changed") load();
});

loadNames(filters).then((names) => { ({ queues, people } = names); render(); });
load();
