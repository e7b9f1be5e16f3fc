// Customer satisfaction: the survey answers this user may read (supervisors: all; agents:
// about their own contacts), newest first, filtered by agent, queue and date, with the
// customers' comments. Follows the event stream: a new answer (survey.answered) reloads.
import { api, ApiError } from "./api.js";
import { debounce, h, toast } from "./dom.js";

const section = document.getElementById("surveys");
const everyAgent = section.dataset.everyAgent === "true";
const body = document.getElementById("srv-body");
const statusEl = document.getElementById("srv-status");
const agentSelect = document.getElementById("srv-agent"); // supervisors and administrators
const queueSelect = document.getElementById("srv-queue");
const sinceInput = document.getElementById("srv-since");
const untilInput = document.getElementById("srv-until");
const CHANNEL = { voice: "Call", chat: "Chat", email: "E-mail", callback: "Callback", task: "Task" };
const SOURCE = { phone: "Phone survey", web: "Survey link", api: "API" };
let answers = [];
let people = new Map(); // user id → name (supervisors and administrators)
let queues = new Map(); // queue id → name
let loading = null;
let again = false;

const problemText = (err) => (err instanceof ApiError ? err.message : "the server could not be reached");

function row(a) {
  const when = new Date(a.answered_at);
  return h("tr", { "data-answer": a.id },
    h("td", {}, h("time", { datetime: a.answered_at }, when.toLocaleString())),
    h("td", {}, CHANNEL[a.channel] ?? a.channel),
    h("td", {}, a.queue_id ? (queues.get(a.queue_id) ?? a.queue_id) : "–"),
    h("td", {}, !a.agent_id ? "–" : everyAgent ? (people.get(a.agent_id) ?? a.agent_id) : "You"),
    h("td", { class: "num", "data-testid": "survey-score" },
      h("meter", { min: 1, max: a.max_score, value: a.score, "aria-hidden": "true" }), ` ${a.score} / ${a.max_score}`),
    h("td", {}, a.comment ?? h("span", { class: "muted" }, "–")),
    h("td", {}, SOURCE[a.source] ?? a.source));
}

function render() {
  body.replaceChildren(...(answers.length ? answers.map(row)
    : [h("tr", {}, h("td", { colspan: 7, class: "muted", "data-testid": "surveys-empty" }, "No answers."))]));
  statusEl.textContent = answers.length ? `${answers.length} answer${answers.length === 1 ? "" : "s"}.` : "";
}

function query() {
  const q = new URLSearchParams({ limit: "500" });
  if (agentSelect?.value) q.set("agent_id", agentSelect.value);
  if (queueSelect.value) q.set("queue_id", queueSelect.value);
  // Dates are the user's local days: from the start of "From" to the end of "To".
  if (sinceInput.value) q.set("since", new Date(`${sinceInput.value}T00:00:00`).toISOString());
  if (untilInput.value) {
    const end = new Date(`${untilInput.value}T00:00:00`);
    end.setDate(end.getDate() + 1);
    q.set("until", end.toISOString());
  }
  return q.toString();
}

// One load at a time; an answer arriving meanwhile loads once more afterwards.
async function load() {
  if (loading) { again = true; return loading; }
  loading = (async () => {
    do {
      again = false;
      try { answers = await api("GET", `/api/v1/surveys?${query()}`); render(); }
      catch (err) { statusEl.textContent = `Answers could not be loaded: ${problemText(err)}.`; }
    } while (again);
  })();
  try { await loading; } finally { loading = null; }
}

function fill(select, allLabel, entries) {
  if (!select) return;
  const value = select.value;
  select.replaceChildren(h("option", { value: "" }, allLabel),
    ...[...entries].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]) => h("option", { value: id }, name)));
  select.value = value;
}

async function loadNames() {
  try {
    const qs = await api("GET", "/api/v1/queues");
    queues = new Map(qs.map((q) => [q.queue_id, q.name || q.queue_id]));
    fill(queueSelect, "All queues", queues);
    if (everyAgent) {
      const users = await api("GET", "/api/v1/users");
      people = new Map(users.map((u) => [u.id, u.display_name || u.username]));
      fill(agentSelect, "All agents", people);
    }
  } catch (err) {
    toast(`Names could not be loaded: ${problemText(err)}.`, "error");
  }
}

document.getElementById("srv-filters").addEventListener("submit", (e) => { e.preventDefault(); load(); });
for (const el of [agentSelect, queueSelect, sinceInput, untilInput]) el?.addEventListener("change", debounce(() => load(), 150));
document.addEventListener("sc:event", (e) => { if (e.detail?.type === "survey.answered") load(); });

await loadNames();
await load();
section.dataset.ready = "true";
