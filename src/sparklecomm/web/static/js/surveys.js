// Customer satisfaction: the survey answers this user may read (supervisors: all; agents:
// about their own contacts), newest first, filtered by agent, queue and date, with the
// customers' comments. Follows the event stream: a new answer (survey.answered) reloads.
import { api } from "./api.js";
import { debounce, h } from "./dom.js";
import { filterQuery, loadNames, oneAtATime, problemText } from "./listing.js";

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
const filters = { agent: agentSelect, queue: queueSelect, since: sinceInput, until: untilInput };

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

// One load at a time; an answer arriving meanwhile loads once more afterwards.
const load = oneAtATime(async () => {
  try { answers = await api("GET", `/api/v1/surveys?${filterQuery(filters)}`); render(); }
  catch (err) { statusEl.textContent = `Answers could not be loaded: ${problemText(err)}.`; }
});

document.getElementById("srv-filters").addEventListener("submit", (e) => { e.preventDefault(); load(); });
for (const el of [agentSelect, queueSelect, sinceInput, untilInput]) el?.addEventListener("change", debounce(() => load(), 150));
document.addEventListener("sc:event", (e) => { if (e.detail?.type === "survey.answered") load(); });

({ queues, people } = await loadNames(filters));
await load();
section.dataset.ready = "true";
