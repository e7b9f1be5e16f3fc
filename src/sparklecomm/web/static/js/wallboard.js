// The supervisor's wallboard: live queues and agents (routing snapshots, refreshed on events),
// today's figures (stats endpoint, from the event stream), alerts, and supervisor actions.
import { api } from "./api.js";
import { h, duration, percent, debounce, toast, statePill, showFieldErrors } from "./dom.js";
import { dayChart } from "./chart.js";
import "./frame.js";

const $ = (id) => document.getElementById(id);
let queues = [], agents = [], stats = null, reasons = [];
let queuesAt = 0, agentsAt = 0;
let chosen = null; // queue whose waiting list is shown
// Alert thresholds live on the server (per tenant, per queue; GET/PUT /api/v1/stats/thresholds),
// are changed by supervisors here, and every wallboard follows a change live (thresholds.updated).
let th = { default: { max_wait_seconds: 60, min_service_level: 80, max_waiting: 10 }, queues: {} };
const FIELDS = ["max_wait_seconds", "min_service_level", "max_waiting"];
const limits = (qid) => th.queues[qid]?.effective ?? th.default;
const form = $("thresholds");

async function loadThresholds() {
  th = await api("GET", "/api/v1/stats/thresholds");
  fillThresholdForm();
  renderQueues();
}
function fillThresholdForm() {
  const scope = $("th-scope");
  const keep = scope.value;
  scope.replaceChildren(h("option", { value: "" }, "All queues"),
    ...queues.map((q) => h("option", { value: q.queue_id }, q.name)));
  scope.value = queues.some((q) => q.queue_id === keep) ? keep : "";
  if (form.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
  const qid = scope.value;
  const own = qid ? th.queues[qid]?.override ?? {} : th.tenant ?? {};
  const inherited = qid ? th.default : th.builtin ?? th.default;
  for (const f of FIELDS) {
    const input = form.elements[f];
    input.value = own[f] ?? "";
    input.placeholder = `${inherited[f]}`;
    input.title = own[f] === null || own[f] === undefined ? `Not set: ${inherited[f]} applies` : "";
  }
  $("th-reset").hidden = !qid || !Object.values(th.queues[qid]?.override ?? {}).some((v) => v !== null);
}
$("th-scope").addEventListener("change", () => { showFieldErrors(form, null, $("th-status")); fillThresholdForm(); });
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = {};
  for (const f of FIELDS) {
    const v = form.elements[f].value.trim();
    body[f] = v === "" ? null : Number(v);
  }
  const qid = $("th-scope").value;
  try {
    th = await api("PUT", qid ? `/api/v1/stats/thresholds/queues/${encodeURIComponent(qid)}` : "/api/v1/stats/thresholds", body);
    showFieldErrors(form, null, $("th-status"));
    $("th-status").textContent = "Saved.";
    document.activeElement?.blur?.();
    fillThresholdForm(); renderQueues();
  } catch (err) { showFieldErrors(form, err, $("th-status")); }
});
$("th-reset").addEventListener("click", async () => {
  const qid = $("th-scope").value;
  if (!qid) return;
  try { th = await api("DELETE", `/api/v1/stats/thresholds/queues/${encodeURIComponent(qid)}`); fillThresholdForm(); renderQueues(); }
  catch (err) { showFieldErrors(form, err, $("th-status")); }
});

const since = (at) => (performance.now() - at) / 1000;
const longest = (q) => (q.waiting ? q.longest_wait_seconds + since(queuesAt) : 0);

async function loadQueues() {
  queues = await api("GET", "/api/v1/queues");
  queuesAt = performance.now();
  renderQueues();
  if (chosen) loadWaiting();
}
async function loadAgents() {
  agents = await api("GET", "/api/v1/agents");
  agentsAt = performance.now();
  renderAgents();
}
async function loadStats() {
  stats = await api("GET", "/api/v1/stats/queues");
  renderQueues();
  $("chart").replaceChildren(dayChart(stats.intervals));
}
async function loadWaiting() {
  const q = await api("GET", `/api/v1/queues/${encodeURIComponent(chosen)}`);
  $("waiting-queue").textContent = `· ${q.name}`;
  $("waiting-body").replaceChildren(...(q.entries.length ? q.entries.map((e) => h("tr", {},
    h("td", { class: "num" }, String(e.position)), h("td", {}, h("code", {}, e.interaction_id.slice(0, 10))),
    h("td", {}, e.channel), h("td", { class: "num" }, String(e.priority)),
    h("td", { class: "num" }, duration(e.wait_seconds)), h("td", { class: "num" }, duration(e.ewt_seconds))))
    : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "Nobody is waiting."))]));
}
const refreshQueues = debounce(() => loadQueues().catch(() => {}), 100);
const refreshAgents = debounce(() => loadAgents().catch(() => {}), 100);
const refreshStats = debounce(() => loadStats().catch(() => {}), 700);
const refreshThresholds = debounce(() => loadThresholds().catch(() => {}), 100);

const csat = (x) => (x === null || x === undefined ? "–" : String(Math.round(x)));

function breaches(q) {
  const out = [];
  const s = stats?.queues?.[q.queue_id];
  const t = limits(q.queue_id);
  if (longest(q) > t.max_wait_seconds) out.push(`${q.name}: longest wait ${duration(longest(q))} is over ${t.max_wait_seconds} s`);
  if (s && s.service_level !== null && s.service_level * 100 < t.min_service_level)
    out.push(`${q.name}: service level ${percent(s.service_level)} is below the ${t.min_service_level}% target`);
  if (q.waiting > t.max_waiting) out.push(`${q.name}: ${q.waiting} waiting is over ${t.max_waiting}`);
  return out;
}

function renderQueues() {
  const alerts = [];
  const cards = queues.map((q) => {
    const s = stats?.queues?.[q.queue_id] ?? {};
    const b = breaches(q);
    alerts.push(...b);
    const t = limits(q.queue_id);
    const slBad = s.service_level !== null && s.service_level !== undefined && s.service_level * 100 < t.min_service_level;
    const stat = (v, l, cls = "", field = "") => h("div", {}, h("div", { class: `v num ${cls}`, dataset: field ? { field } : undefined }, v), h("div", { class: "l" }, l));
    return h("button", { type: "button", class: `qcard${b.length ? " breach" : ""}`, "aria-pressed": String(chosen === q.queue_id),
      "data-testid": `queue-${q.queue_id}`, onclick: () => { chosen = q.queue_id; renderQueues(); loadWaiting(); } },
      h("h2", {}, h("span", {}, q.name),
        // A queue keeping business hours says when it is closed (new contacts turned away).
        q.open === false ? h("span", { class: "badge off", "data-testid": "closed" }, "Closed") : null,
        h("span", { class: "muted", style: "font-size:.8rem;font-weight:500" }, `SL ${q.service_level_seconds}s`)),
      h("div", { class: "big" },
        stat(String(q.waiting), "Waiting", q.waiting > t.max_waiting ? "bad" : q.waiting ? "" : "good", "waiting"),
        stat(duration(longest(q)), "Longest wait", longest(q) > t.max_wait_seconds ? "bad" : "", "longest"),
        stat(percent(s.service_level), "Service level", slBad ? "bad" : "good", "sl")),
      h("div", { class: "small" },
        stat(`${s.answered ?? 0} / ${s.abandoned ?? 0}`, "Answered / abandoned", "", "answered"),
        stat(duration(s.asa_seconds), "ASA"), stat(duration(s.aht_seconds), "AHT"),
        // Customer satisfaction today: the mean score on 0-100, with the number of answers.
        stat(csat(s.csat), s.surveys ? `CSAT (${s.surveys})` : "CSAT", "", "csat")),
      h("div", { class: "chips" }, Object.entries(q.agents_by_state).filter(([, n]) => n > 0).map(([st, n]) =>
        h("span", { class: "pill", dataset: { state: st } }, `${n} ${statePill(st).textContent.toLowerCase()}`))));
  });
  $("queues").replaceChildren(...(cards.length ? cards : [h("div", { class: "empty" }, "No queues yet: an admin creates them under Admin › Queues.")]));
  $("alerts").replaceChildren(...alerts.map((a) => h("div", { class: "alert warn" }, `⚠ ${a}`)));
  if ($("th-scope").options.length !== queues.length + 1) fillThresholdForm();
}

function agentRow(a) {
  const reason = h("select", { class: "compact", "aria-label": `Break reason for ${a.name}` },
    reasons.map((r) => h("option", { value: r.code }, r.label)));
  const others = queues.filter((q) => !a.queues.includes(q.queue_id));
  const move = h("select", { class: "compact", "aria-label": `Add ${a.name} to a queue` },
    h("option", { value: "" }, "+ queue"), others.map((q) => h("option", { value: q.queue_id }, q.name)));
  move.addEventListener("change", () => move.value && act(`Add to ${move.value}`,
    () => api("PUT", `/api/v1/queues/${encodeURIComponent(move.value)}/members/${a.agent_id}`, { agent_id: a.agent_id })));
  const loggedIn = a.state !== "logged_out";
  const work = [a.offer ? `offer ${a.offer.slice(0, 8)}` : null, ...a.interactions.map((i) => i.slice(0, 8)),
    ...a.wrapups.map((i) => `wrap-up ${i.slice(0, 8)}`)].filter(Boolean).join(", ");
  return h("tr", { "data-agent": a.agent_id, "data-testid": `agent-${a.name}` },
    h("td", {}, h("strong", {}, a.name)),
    h("td", {}, statePill(a.state, a.reason), a.pending_break ? h("div", { class: "muted", style: "font-size:.78rem" }, `break next: ${a.pending_break}`) : null),
    h("td", { class: "num", "data-seconds": a.seconds_in_state }, duration(a.seconds_in_state)),
    h("td", {}, work || h("span", { class: "muted" }, "–")),
    h("td", {}, h("div", { class: "chips row" }, a.queues.map((qid) => h("span", { class: "badge" },
      queues.find((q) => q.queue_id === qid)?.name ?? qid, " ",
      h("button", { type: "button", class: "btn small", style: "padding:0 .3rem;border:0;background:none", "aria-label": `Remove ${a.name} from ${qid}`,
        onclick: () => act(`Remove from ${qid}`, () => api("DELETE", `/api/v1/queues/${encodeURIComponent(qid)}/members/${a.agent_id}`)) }, "×"))), move)),
    h("td", { class: "num" }, String(a.handled)),
    h("td", {}, h("div", { class: "row" },
      loggedIn ? [reason, h("button", { type: "button", class: "btn small warn", onclick: () => act("Force break",
        () => api("POST", `/api/v1/agents/${a.agent_id}/state`, { state: "break", reason: reason.value })) }, "Break"),
      h("button", { type: "button", class: "btn small", disabled: a.state !== "break" && !a.pending_break, onclick: () => act("Ready",
        () => api("POST", `/api/v1/agents/${a.agent_id}/state`, { state: "available" })) }, "Ready"),
      h("button", { type: "button", class: "btn small bad", onclick: () => act("Log out",
        () => api("POST", `/api/v1/agents/${a.agent_id}/logout`, { reason: "supervisor" })) }, "Log out")]
        : h("button", { type: "button", class: "btn small", onclick: () => act("Log in", () => api("POST", `/api/v1/agents/${a.agent_id}/login`)) }, "Log in"))));
}

function renderAgents() {
  if (document.activeElement?.closest?.("#agents-body select")) { setTimeout(renderAgents, 1000); return; }
  const order = { available: 0, reserved: 1, busy: 2, wrap_up: 3, break: 4, logged_out: 5 };
  const sorted = [...agents].sort((a, b) => order[a.state] - order[b.state] || a.name.localeCompare(b.name));
  $("agents-body").replaceChildren(...sorted.map(agentRow));
  const by = {};
  for (const a of agents) by[a.state] = (by[a.state] ?? 0) + 1;
  $("agents-summary").textContent = Object.entries(by).map(([s, n]) => `${n} ${statePill(s).textContent.toLowerCase()}`).join(" · ");
}

async function act(label, fn) {
  try { await fn(); toast(`${label}: done.`); }
  catch (e) { toast(`${label}: ${e.message}`, "error"); }
  refreshAgents(); refreshQueues();
}

function tick() {
  for (const el of document.querySelectorAll("#agents-body [data-seconds]")) el.textContent = duration(Number(el.dataset.seconds) + since(agentsAt));
  for (const q of queues) {
    const card = document.querySelector(`[data-testid="queue-${q.queue_id}"] [data-field="longest"]`);
    if (card) card.textContent = duration(longest(q));
  }
}

document.addEventListener("sc:event", (e) => {
  const t = e.detail.type;
  if (t.startsWith("interaction.") || t.startsWith("queue.")) { refreshQueues(); refreshStats(); }
  if (t === "survey.answered") refreshStats();
  if (t.startsWith("agent.") || t.startsWith("interaction.") || t.startsWith("queue.")) refreshAgents();
  if (t === "thresholds.updated" || t.startsWith("queue.")) refreshThresholds();
});

reasons = (await api("GET", "/api/v1/codes?kind=reason")).filter((r) => r.active);
await Promise.all([loadQueues(), loadAgents(), loadStats()]);
await loadThresholds().catch(() => {});
setInterval(tick, 1000);
setInterval(() => { loadQueues().catch(() => {}); loadStats().catch(() => {}); }, 10000);
document.getElementById("queues").dataset.ready = "true";
