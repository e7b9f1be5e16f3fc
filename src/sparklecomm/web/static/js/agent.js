// The agent desktop: state, offers with the customer's record, interactions, wrap-up, my day.
// The routing API decides everything; this page renders the agent's snapshot and refreshes it
// when an event about this agent (or one of its interactions) arrives.
import { api } from "./api.js";
import { h, duration, debounce, toast, statePill, STATE_LABEL, showFieldErrors } from "./dom.js";
import "./frame.js";
import { serverClock } from "./events.js";

const root = document.getElementById("desk");
const ME = root.dataset.me;
const $ = (id) => document.getElementById(id);
const work = $("work");

let agent = null;           // the routing snapshot of this agent (or a logged-out stand-in)
let queues = [];            // live queue snapshots
let presence = [];          // agents and states, for transfers
let codes = { reason: [], disposition: [] };
let selected = null;        // the active interaction shown when there are several
const contexts = new Map(); // interaction id -> /context answer
const offers = new Map();   // interaction id -> interaction.offered payload + arrival time
const wraps = new Map();    // interaction id -> {seconds, at}
const talkSince = new Map();// interaction id -> Date accepted
const onHold = new Map();   // interaction id -> bool
const roles = new Map();    // interaction id -> {owner, participants: {agent id: role}}
const recording = new Map();// interaction id -> "off" | "recording" | "paused" (calls on a phone)
const popped = new Set();   // offers already shown (their card pops in once, not at each render)
const drafts = new Map();   // element id -> text typed, kept across re-renders
const CHANNEL = { voice: "Call", chat: "Chat", email: "E-mail", callback: "Callback", task: "Task" };

const queueName = (id) => queues.find((q) => q.queue_id === id)?.name ?? id;
const mine = (iid) => agent && (agent.offer === iid || agent.interactions.includes(iid) || agent.wrapups.includes(iid));
const owns = (iid) => (roles.get(iid)?.owner ?? ME) === ME;
const agentName = (id) => presence.find((p) => p.agent_id === id)?.name ?? id;

async function act(label, fn) {
  try { return await fn(); }
  catch (e) { toast(`${label}: ${e.message}`, "error"); return null; }
  finally { refresh(); }
}

// ---- loading ------------------------------------------------------------------------------

async function loadAgent() {
  try { agent = await api("GET", `/api/v1/agents/${ME}`); }
  catch (e) {
    if (e.status !== 404) throw e;
    agent = { agent_id: ME, state: "logged_out", reason: "", seconds_in_state: 0, offer: null,
      interactions: [], wrapups: [], load: {}, capacity: {}, queues: [], pending_break: null };
  }
}

async function loadContext(iid) {
  if (contexts.has(iid)) return;
  try { contexts.set(iid, await api("GET", `/api/v1/interactions/${iid}/context`)); }
  catch { contexts.set(iid, null); }
}

async function refreshNow() {
  await loadAgent();
  const ids = [agent.offer, ...agent.interactions, ...agent.wrapups].filter(Boolean);
  await Promise.all(ids.map(loadContext));
  await Promise.all(agent.interactions.map(async (iid) => {
    try {
      const snap = await api("GET", `/api/v1/interactions/${iid}`);
      onHold.set(iid, snap.on_hold);
      roles.set(iid, { owner: snap.agent_id, participants: snap.participants ?? {} });
    } catch { /* ended */ }
  }));
  for (const iid of roles.keys()) if (!agent.interactions.includes(iid)) roles.delete(iid);
  await Promise.all(agent.interactions.filter((iid) => onPhone(contexts.get(iid))).map(loadRecording));
  for (const iid of recording.keys()) if (!agent.interactions.includes(iid)) recording.delete(iid);
  // Who is free to consult or take a transfer, and the names of the other agents on an
  // interaction (consultation, conference).
  if (agent.interactions.length) await loadPresence();
  if (!agent.interactions.includes(selected)) selected = agent.interactions[0] ?? null;
  render();
  loadToday();
}
const refresh = debounce(refreshNow, 60);

async function loadQueues() {
  try { queues = await api("GET", "/api/v1/queues"); renderQueues(); } catch { /* offline */ }
}
const refreshQueues = debounce(loadQueues, 300);

async function loadToday() {
  try {
    const t = await api("GET", `/api/v1/stats/agents/${ME}/today`);
    $("today-handled").textContent = t.handled;
    $("today-aht").textContent = duration(t.aht_seconds);
    $("today-outbound").textContent = t.outbound ?? 0;
    // The customers' satisfaction with me today (0-100), with the number of answers.
    $("today-csat").textContent = t.csat === null || t.csat === undefined ? "–" : String(Math.round(t.csat));
    $("today-csat-label").textContent = t.surveys ? `CSAT (${t.surveys})` : "CSAT";
    const total = Object.values(t.state_seconds).reduce((a, b) => a + b, 0) || 1;
    const colors = { available: "#51cf66", reserved: "#fab005", busy: "#4c6ef5", wrap_up: "#be4bdb", break: "#fd7e14" };
    $("today-states").replaceChildren(...Object.entries(t.state_seconds).filter(([, s]) => s > 0.5).map(([state, s]) =>
      h("div", {}, h("div", { class: "row" }, h("span", {}, STATE_LABEL[state] ?? state), h("span", { class: "spacer" }),
        h("span", { class: "num muted" }, duration(s))),
      h("div", { class: "bar" }, h("span", { style: `width:${(100 * s) / total}%;background:${colors[state] ?? "#adb5bd"}` })))));
  } catch { /* not yet an agent */ }
}

// ---- rendering ----------------------------------------------------------------------------

// Timers run on server timestamps (state entered at, offer expiry, accepted at, wrap-up
// start) and the server's clock (serverClock: corrected for this browser's skew), so a
// reload shows the same figures as before it.
function secondsInState() {
  return agent.since ? (serverClock.now() - Date.parse(agent.since)) / 1000 : agent.seconds_in_state;
}
function offerOf(iid) { return offers.get(iid) ?? contexts.get(iid)?.timing?.offers?.[ME] ?? null; }
function acceptedAt(iid) {
  const at = talkSince.get(iid) ?? contexts.get(iid)?.timing?.accepted_at?.[ME];
  return at ? new Date(at) : null;
}
function wrapOf(iid) {
  const w = wraps.get(iid);
  if (w) return w;
  const t = contexts.get(iid)?.timing?.wrapups?.[ME];
  return t ? { seconds: t.planned_seconds, at: Date.parse(t.started_at) } : null;
}

function renderStatus() {
  const pill = $("state-pill");
  pill.dataset.state = agent.state;
  pill.textContent = statePill(agent.state, agent.reason).textContent;
  $("pending-break").textContent = agent.pending_break ? `Break (${agent.pending_break}) after this work` : "";
  const loggedIn = agent.state !== "logged_out";
  const login = $("btn-login");
  login.textContent = loggedIn ? "Log out" : "Log in";
  login.className = loggedIn ? "btn bad" : "btn primary";
  $("btn-ready").disabled = !loggedIn || !(agent.state === "break" || agent.pending_break);
  $("btn-break").disabled = !loggedIn || agent.state === "break";
  $("break-reason").disabled = !loggedIn;
  const cap = Object.entries(agent.capacity || {}).filter(([ch]) => (agent.load?.[ch] ?? 0) > 0 || ch === "chat" || ch === "voice");
  $("capacity").textContent = loggedIn ? cap.map(([ch, n]) => `${CHANNEL[ch] ?? ch}s ${agent.load?.[ch] ?? 0}/${n}`).join(" · ") : "";
  tick();
}

const numberOf = (it, cu) => cu?.phone ?? it.attributes?.phone ?? it.attributes?.ani ?? it.attributes?.to ?? null;

function customerPanel(iid, { editable }) {
  const c = contexts.get(iid);
  if (!c) return h("p", { class: "muted" }, "Loading the customer's record…");
  const it = c.interaction, cu = c.customer;
  const attrs = Object.entries(it.attributes || {}).filter(([k]) => !["dnis", "ani", "phone", "call_id", "to"].includes(k));
  const offer = offerOf(iid);
  const waited = offer?.wait_seconds ?? null;
  const kv = h("dl", { class: "kv", "data-testid": "customer-record" },
    h("dt", {}, "Customer"), h("dd", { "data-testid": "customer-name" }, cu?.name ?? "Unknown caller",
      cu?.vip_tier ? h("span", { class: `badge vip ${cu.vip_tier}`, style: "margin-left:.4rem" }, `VIP ${cu.vip_tier}`) : null),
    h("dt", {}, "Number"), h("dd", {}, numberOf(it, cu) ?? "–",
      // Call the customer back (from a chat, an e-mail, a callback): the agent's phone rings
      // first, then the customer's. Not while this is a call already.
      numberOf(it, cu) && it.channel !== "voice" && editable
        ? h("button", { class: "btn small", type: "button", style: "margin-left:.5rem", "data-testid": "call-customer",
          onclick: () => placeCall(numberOf(it, cu), cu?.id) }, "Call") : null),
    h("dt", {}, "Dialled (DNIS)"), h("dd", { "data-testid": "dnis" }, it.attributes?.dnis ?? "–"),
    h("dt", {}, "Queue"), h("dd", {}, queueName(it.queue_id)),
    waited !== null ? [h("dt", {}, "Waited"), h("dd", { class: "num" }, duration(waited))] : null,
    cu?.email ? [h("dt", {}, "E-mail"), h("dd", {}, cu.email)] : null,
    ...attrs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]),
    ...Object.entries(cu?.attributes || {}).map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]),
  );
  const history = h("ul", { class: "history", "data-testid": "history" },
    c.history.length ? c.history.map((x) => h("li", {},
      h("div", { class: "when" }, `${new Date(x.time).toLocaleString()} · ${x.direction === "outbound" ? "outbound " : ""}${CHANNEL[x.channel] ?? x.channel} · ${queueName(x.queue_id)}`),
      h("div", {}, h("strong", {}, x.outcome), x.disposition ? ` — ${x.disposition}` : "",
        x.handle_seconds ? h("span", { class: "muted" }, ` · ${duration(x.handle_seconds)}`) : ""),
      ...x.notes.filter((n) => n.text).map((n) => h("div", { class: "muted" }, `“${n.text}”`))))
      : h("li", { class: "muted" }, "No earlier interactions."));
  const parts = [h("div", { class: "section-title" }, "Customer"), kv];
  if (editable) parts.push(editForm(iid, cu, it));
  parts.push(h("div", { class: "section-title" }, "History"), history);
  return h("div", {}, parts);
}

function editForm(iid, cu, it) {
  const fid = `edit-${iid}`;
  const field = (name, label, value, type = "text") => h("div", { class: "field" },
    h("label", { for: `${fid}-${name}` }, label),
    name === "vip_tier"
      ? h("select", { id: `${fid}-${name}`, name }, ["", "silver", "gold", "platinum"].map((t) => h("option", { value: t, selected: (value ?? "") === t }, t || "none")))
      : h("input", { id: `${fid}-${name}`, name, type, value: value ?? "" }),
    h("p", { class: "field-error", "data-for": name }));
  const status = h("span", { role: "status" });
  const form = h("form", { class: "form-grid", novalidate: true },
    field("name", "Name", cu?.name), field("phone", "Phone", cu?.phone ?? it.attributes?.ani ?? it.attributes?.phone),
    field("email", "E-mail", cu?.email, "email"), field("vip_tier", "VIP tier", cu?.vip_tier),
    h("div", { class: "actions" }, h("button", { class: "btn small primary", type: "submit" }, cu ? "Save record" : "Create record"), " ", status));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    for (const k of ["phone", "email", "vip_tier"]) if (!data[k]) data[k] = null;
    try {
      if (cu) await api("PATCH", `/api/v1/customers/${encodeURIComponent(cu.id)}`, data);
      else await api("POST", "/api/v1/customers", { ...data, id: it.customer_id ?? undefined });
      showFieldErrors(form, null, status);
      status.textContent = "Saved.";
      contexts.delete(iid); await loadContext(iid); render();
    } catch (err) { showFieldErrors(form, err, status); }
  });
  return h("details", { class: "edit" }, h("summary", {}, cu ? "Edit the customer's record" : "Create a customer record"), form);
}

function notesPanel(iid) {
  const c = contexts.get(iid);
  const list = h("ul", { class: "notes", "data-testid": "notes" }, (c?.notes ?? []).filter((n) => n.text).map((n) =>
    h("li", {}, h("div", { class: "by" }, `${n.author_name} · ${new Date(n.time).toLocaleTimeString()}${n.disposition ? ` · ${n.disposition}` : ""}`), n.text)));
  const ta = h("textarea", { id: `note-${iid}`, "aria-label": "Note", placeholder: "Write a note… (Alt N)", rows: 2 });
  const add = h("button", { class: "btn small", type: "button", onclick: async () => {
    if (!ta.value.trim()) { ta.focus(); return; }
    await act("Note", () => api("POST", `/api/v1/interactions/${iid}/notes`, { text: ta.value }));
    drafts.delete(ta.id); contexts.delete(iid);
  } }, "Add note");
  return [h("div", { class: "section-title" }, "Notes"), list, ta, h("div", { class: "row", style: "margin-top:.4rem" }, add)];
}

function dispositionSelect(id) {
  return h("select", { id, class: "compact" }, h("option", { value: "" }, "— disposition —"),
    codes.disposition.filter((c) => c.active).map((c) => h("option", { value: c.code }, c.label)));
}

function transferPanel(iid) {
  const sel = h("select", { id: `transfer-${iid}`, class: "compact", "aria-label": "Transfer to" },
    h("option", { value: "" }, "— transfer to —"),
    h("optgroup", { label: "Queues" }, queues.map((q) => h("option", { value: `queue:${q.queue_id}` }, `${q.name} (${q.waiting} waiting)`))),
    h("optgroup", { label: "Agents" }, presence.filter((p) => p.agent_id !== ME && p.state !== "logged_out").map((p) =>
      h("option", { value: `agent:${p.agent_id}` }, `${p.name} — ${STATE_LABEL[p.state] ?? p.state}`))));
  const go = h("button", { class: "btn small", type: "button", onclick: () => {
    const [kind, id] = sel.value.split(/:(.*)/s);
    if (!id) { sel.focus(); return; }
    act("Transfer", () => api("POST", `/api/v1/interactions/${iid}/transfer`, kind === "queue" ? { to_queue_id: id } : { to_agent_id: id }));
  } }, "Transfer");
  sel.addEventListener("focus", loadPresence, { once: true });
  return h("div", { class: "row" }, sel, go);
}

async function loadRecording(iid) {
  try { recording.set(iid, (await api("POST", `/api/v1/interactions/${iid}/recording`, { action: "state" })).state); }
  catch { recording.delete(iid); } // not connected to this agent, or no recording on this platform
}

function recordingPanel(iid) {
  // Whether the call is recorded (the company's rules, or the agent asked), and the button
  // for the next step: pause while the customer gives a card number, then resume.
  const state = recording.get(iid);
  if (!state) return null;
  const step = (action, label) => h("button", { class: "btn small", type: "button", "data-testid": `recording-${action}`, onclick: async () => {
    const done = await act(label, () => api("POST", `/api/v1/interactions/${iid}/recording`, { action }));
    if (done) { recording.set(iid, done.state === "stopped" ? "off" : done.state); render(); }
  } }, label);
  const label = { recording: "Recording", paused: "Recording paused — the customer is not recorded", off: "Not recorded" }[state] ?? state;
  return [h("div", { class: "section-title" }, "Recording"),
    h("div", { class: "row", "data-testid": "recording", "data-state": state },
      h("span", { class: "pill", dataset: { state: state === "recording" ? "recording" : "break" } }, label),
      h("span", { class: "spacer" }),
      state === "off" ? step("start", "Record") : state === "recording" ? step("pause", "Pause recording") : step("resume", "Resume recording"))];
}

function numberTransferPanel(iid) {
  // A call on the agent's phone can be put through to any number the agent may dial (a
  // colleague's extension, a department's ring group, an outside number); the agent stays
  // on the line until it answers.
  const input = h("input", { id: `xfer-number-${iid}`, class: "compact", "aria-label": "Number to put the call through to",
    placeholder: "2003 or +3222000100", inputmode: "tel", autocomplete: "off" });
  const go = h("button", { class: "btn small", type: "button", onclick: async () => {
    const to = input.value.replace(/[\s().-]/g, "");
    if (!to) { input.focus(); return; }
    const done = await act("Put through", () => api("POST", `/api/v1/interactions/${iid}/transfer-to-number`, { to_number: to }));
    if (done) toast(`Putting the call through to ${to}: you stay on the line until it answers.`);
  } }, "Put through");
  return h("div", { class: "row" }, input, go);
}

function consultPanel(iid) {
  // The owner brings in another agent privately (a call's customer is on hold meanwhile),
  // then hands the customer over, makes it a conference, or ends the consultation.
  const parts = Object.entries(roles.get(iid)?.participants ?? {}).filter(([id]) => id !== ME);
  // Calls are not mixed yet (no audio conference): a conference is offered on text channels.
  const channel = contexts.get(iid)?.interaction.channel;
  const mixable = channel !== "voice" && channel !== "callback";
  const rows = parts.map(([id, role]) => role === "consult"
    ? h("div", { class: "row consulting", "data-testid": "consulting", "data-agent": id },
      h("span", {}, "Consulting ", h("strong", {}, agentName(id))), h("span", { class: "spacer" }),
      h("button", { class: "btn small primary", type: "button", onclick: () =>
        act("Transfer", () => api("POST", `/api/v1/interactions/${iid}/transfer`, { to_agent_id: id })) }, `Transfer to ${agentName(id)}`),
      mixable ? h("button", { class: "btn small", type: "button", onclick: () =>
        act("Conference", () => api("POST", `/api/v1/interactions/${iid}/conference`, { target_agent_id: id })) }, "Conference") : null,
      h("button", { class: "btn small bad", type: "button", onclick: () =>
        act("End consultation", () => api("POST", `/api/v1/interactions/${iid}/end-consult`, { target_agent_id: id })) }, "End consultation"))
    : h("div", { class: "row", "data-testid": "conference-member", "data-agent": id },
      h("span", {}, "In the conference: ", h("strong", {}, agentName(id)))));
  const sel = h("select", { id: `consult-${iid}`, class: "compact", "aria-label": "Consult an agent" },
    h("option", { value: "" }, "— consult an agent —"),
    presence.filter((p) => p.agent_id !== ME && p.state === "available").map((p) => h("option", { value: p.agent_id }, p.name)));
  sel.addEventListener("focus", () => loadPresence().then(() => {
    const keep = sel.value;
    sel.replaceChildren(h("option", { value: "" }, "— consult an agent —"),
      ...presence.filter((p) => p.agent_id !== ME && p.state === "available").map((p) => h("option", { value: p.agent_id }, p.name)));
    sel.value = keep;
  }), { once: true });
  const go = h("button", { class: "btn small", type: "button", onclick: () => {
    if (!sel.value) { sel.focus(); return; }
    act("Consult", () => api("POST", `/api/v1/interactions/${iid}/consult`, { target_agent_id: sel.value }));
  } }, "Consult");
  return h("div", {}, ...rows, h("div", { class: "row" }, sel, go));
}

function participantCard(iid) {
  // This agent was brought in by the owner: a consultation (private) or a conference.
  const c = contexts.get(iid);
  const r = roles.get(iid);
  const role = r?.participants?.[ME] ?? "consult";
  const channel = c?.interaction.channel ?? "chat";
  const what = role === "consult" ? "Consultation" : "Conference";
  return h("article", { class: "icard participant", "data-testid": "participant", "data-interaction": iid, "data-role": role },
    h("header", {}, h("h2", {}, `${what} · ${CHANNEL[channel] ?? channel} with ${c?.customer?.name ?? "unknown caller"}`),
      h("span", { class: "muted", "data-testid": "owner" }, `for ${agentName(r?.owner ?? "")}`)),
    h("div", { class: "body" }, customerPanel(iid, { editable: false }), h("div", {}, notesPanel(iid))),
    h("div", { class: "actions" },
      h("span", { class: "muted" }, role === "consult"
        ? "The customer does not hear you. The owner transfers the customer to you, makes it a conference or ends the consultation."
        : "You are in the conference with the customer."),
      h("span", { class: "spacer" }),
      h("button", { class: "btn bad", type: "button", onclick: () =>
        act("Leave", () => api("POST", `/api/v1/interactions/${iid}/leave`, {})) }, "Leave")));
}

// A phone call held by the PBX (it has a call_id) rings the agent's phones and is taken by
// answering one of them; other voice work (the demo's simulated calls, calls from an
// integration) is taken with Accept.
const onPhone = (c) => Boolean(c?.interaction.attributes?.call_id);

function voiceBanner(c) {
  // Say who calls (ANI) and which number they dialled (DNIS), and how to take the call.
  const a = c?.interaction.attributes ?? {};
  const phone = onPhone(c);
  return h("div", { class: "ringing", role: "status", "data-testid": "ringing" },
    h("span", { class: "ring-icon", "aria-hidden": "true" }, "☎"),
    h("div", {}, h("strong", {}, phone ? "Your phone is ringing" : "Incoming call"),
      h("div", { class: "muted" }, phone ? "Pick up the phone to take the call." : "Press Accept to take the call.")),
    h("dl", { class: "kv compact" },
      h("dt", {}, "Caller"), h("dd", { class: "num", "data-testid": "ani" }, a.ani ?? c?.customer?.phone ?? "unknown"),
      h("dt", {}, "Dialled"), h("dd", { class: "num", "data-testid": "offer-dnis" }, a.dnis ?? "–")));
}

function offerCard(iid) {
  const c = contexts.get(iid);
  const o = offerOf(iid);
  const channel = c?.interaction.channel ?? o?.channel ?? "chat";
  const pop = popped.has(iid) ? "" : " pop";
  popped.add(iid);
  return h("article", { class: `icard offer${channel === "voice" ? " voice" : ""}${pop}`, "data-testid": "offer", "data-interaction": iid,
    "data-channel": channel, "aria-label": `Incoming ${CHANNEL[channel]?.toLowerCase() ?? channel}` },
    h("header", {}, h("h2", {}, `Incoming ${CHANNEL[channel]?.toLowerCase() ?? channel}`),
      h("span", { class: "muted" }, queueName(c?.interaction.queue_id ?? o?.queue_id)),
      h("span", { class: "spacer" }),
      o ? h("span", { class: "countdown num", "data-expires": o.expires_at, "data-testid": "offer-countdown" }, "") : null),
    o ? h("div", { class: "countdown-bar" }, h("span", { "data-expires-bar": o.expires_at, "data-total": o.timeout_seconds })) : null,
    channel === "voice" ? voiceBanner(c) : null,
    h("div", { class: "body" }, customerPanel(iid, { editable: false }), h("div", {})),
    h("div", { class: "actions" },
      onPhone(c) ? h("span", { class: "muted", "data-testid": "answer-on-phone" }, "Answer on your phone")
        : h("button", { class: "btn ok", type: "button", "aria-keyshortcuts": "Alt+A", onclick: () => accept(iid) }, "Accept ", h("kbd", {}, "Alt A")),
      h("button", { class: "btn bad", type: "button", "aria-keyshortcuts": "Alt+R", onclick: () => reject(iid) }, "Reject ", h("kbd", {}, "Alt R"))));
}

function activeCard(iid) {
  if (!owns(iid)) return participantCard(iid);
  const c = contexts.get(iid);
  const held = onHold.get(iid);
  const channel = c?.interaction.channel ?? "chat";
  const since = acceptedAt(iid);
  const outbound = c?.interaction.direction === "outbound";
  const who = c?.customer?.name ?? (outbound ? c?.interaction.attributes?.to : null) ?? "unknown caller";
  // A call the agent placed stays on their phone: it cannot go to another agent or queue
  // (yet); any call on a phone can be put through to a number.
  const movable = !(outbound && onPhone(c));
  const phoneCall = channel === "voice" && onPhone(c);
  return h("article", { class: "icard", "data-testid": "interaction", "data-interaction": iid, "data-channel": channel,
    "data-direction": outbound ? "outbound" : "inbound" },
    h("header", {}, h("h2", {}, outbound ? `Outbound ${CHANNEL[channel]?.toLowerCase() ?? channel} to ${who}` : `${CHANNEL[channel] ?? channel} with ${who}`),
      c?.customer?.vip_tier ? h("span", { class: `badge vip ${c.customer.vip_tier}` }, `VIP ${c.customer.vip_tier}`) : null,
      held ? h("span", { class: "pill", dataset: { state: "break" } }, "On hold") : null,
      h("span", { class: "spacer" }),
      since ? h("span", { class: "num timer", "data-since": since.toISOString(), "data-testid": "talk-timer", title: "Time connected" }, "") : null),
    h("div", { class: "body" }, customerPanel(iid, { editable: true }),
      h("div", {}, notesPanel(iid), movable ? [h("div", { class: "section-title" }, "Transfer"), transferPanel(iid)] : null,
        phoneCall ? [h("div", { class: "section-title" }, "Put through to a number"), numberTransferPanel(iid)] : null,
        phoneCall ? recordingPanel(iid) : null,
        movable ? [h("div", { class: "section-title" }, "Consult"), consultPanel(iid)] : null)),
    h("div", { class: "actions" },
      h("button", { class: "btn", type: "button", "aria-keyshortcuts": "Alt+H", onclick: () => holdToggle(iid) },
        held ? "Resume " : "Hold ", h("kbd", {}, "Alt H")),
      h("span", { class: "spacer" }),
      h("label", { class: "sr-only", for: `disp-${iid}` }, "Disposition"), dispositionSelect(`disp-${iid}`),
      h("button", { class: "btn primary", type: "button", "aria-keyshortcuts": "Alt+C", onclick: () => complete(iid) }, "Complete ", h("kbd", {}, "Alt C"))));
}

function wrapCard(iid) {
  const c = contexts.get(iid);
  const w = wrapOf(iid);
  const last = (c?.notes ?? []).filter((n) => n.kind === "wrapup").at(-1);
  const disp = dispositionSelect(`wdisp-${iid}`);
  if (last?.disposition) disp.value = last.disposition;
  const ta = h("textarea", { id: `wnote-${iid}`, "aria-label": "Wrap-up notes", placeholder: "What was agreed, what happens next…", rows: 3 });
  return h("article", { class: "icard wrapup", "data-testid": "wrapup", "data-interaction": iid },
    h("header", {}, h("h2", {}, `Wrap-up · ${c?.customer?.name ?? "unknown caller"}`),
      h("span", { class: "spacer" }),
      w && w.seconds > 0 ? h("span", { class: "num timer", "data-until": new Date(w.at + w.seconds * 1000).toISOString(), "data-testid": "wrapup-timer", title: "Wrap-up time left" }, "")
        : w ? h("span", { class: "num timer", "data-since": new Date(w.at).toISOString(), "data-testid": "wrapup-timer" }, "") : null),
    h("div", { class: "body" }, h("div", {},
      h("label", { for: `wdisp-${iid}` }, "Disposition"), h("div", {}, disp),
      h("div", { style: "margin-top:.6rem" }, h("label", { for: ta.id }, "Wrap-up notes")), ta), customerPanel(iid, { editable: false })),
    surveyLinks.has(iid) ? h("div", { class: "body" }, h("label", {}, "Survey link for the customer",
      h("input", { readonly: true, value: surveyLinks.get(iid), "data-testid": "survey-link-url", onfocus: (e) => e.target.select() }))) : null,
    h("div", { class: "actions" },
      h("button", { class: "btn", type: "button", onclick: () => saveWrap(iid) }, "Save"),
      h("button", { class: "btn", type: "button", "data-testid": "survey-link", onclick: () => surveyLink(iid) }, "Survey link"),
      h("span", { class: "spacer" }),
      h("button", { class: "btn primary", type: "button", "aria-keyshortcuts": "Alt+W", onclick: () => endWrap(iid) }, "End wrap-up ", h("kbd", {}, "Alt W"))));
}

function render() {
  renderStatus();
  const focused = document.activeElement?.id;
  const cards = [];
  if (agent.offer) cards.push(offerCard(agent.offer));
  if (agent.interactions.length > 1) {
    cards.push(h("div", { class: "tabs", role: "tablist", "aria-label": "My interactions" }, agent.interactions.map((iid) =>
      h("button", { role: "tab", type: "button", "aria-selected": String(iid === selected), onclick: () => { selected = iid; render(); } },
        `${CHANNEL[contexts.get(iid)?.interaction.channel] ?? ""} · ${contexts.get(iid)?.customer?.name ?? "unknown"}`))));
  }
  if (selected) cards.push(activeCard(selected));
  for (const iid of agent.wrapups) cards.push(wrapCard(iid));
  if (!cards.length) {
    const msg = agent.state === "logged_out" ? "You are logged out. Log in to receive calls and chats."
      : agent.state === "break" ? `You are on break (${agent.reason}). Press Ready when you are back.`
      : "Ready — waiting for the next customer. Offers pop here.";
    cards.push(h("div", { class: "empty", "data-testid": "idle" }, msg));
  }
  work.replaceChildren(...cards);
  for (const [id, text] of drafts) { const el = $(id); if (el) el.value = text; }
  if (focused && $(focused)) $(focused).focus();
  renderQueues();
  tick();
}

function renderQueues() {
  if (!agent) return;
  const body = $("my-queues");
  const rows = queues.filter((q) => agent.queues.includes(q.queue_id));
  body.replaceChildren(...(rows.length ? rows.map((q) => h("tr", {}, h("td", {}, q.name), h("td", { class: "num" }, String(q.waiting)),
    h("td", { class: "num" }, duration(q.longest_wait_seconds)))) : [h("tr", {}, h("td", { colspan: 3, class: "muted" }, agent.state === "logged_out" ? "Log in to see your queues." : "No queue."))]));
}

function tick() {
  if (!agent) return;
  $("state-timer").textContent = duration(secondsInState());
  const now = serverClock.now();
  for (const el of document.querySelectorAll("[data-expires]")) {
    const left = (Date.parse(el.dataset.expires) - now) / 1000;
    el.textContent = `${Math.max(0, Math.ceil(left))} s`;
  }
  for (const el of document.querySelectorAll("[data-expires-bar]")) {
    const left = (Date.parse(el.dataset.expiresBar) - now) / 1000;
    el.style.width = `${Math.max(0, Math.min(100, (100 * left) / Number(el.dataset.total || 20)))}%`;
  }
  for (const el of document.querySelectorAll("[data-since]")) el.textContent = duration((now - Date.parse(el.dataset.since)) / 1000);
  for (const el of document.querySelectorAll("[data-until]")) el.textContent = `${duration((Date.parse(el.dataset.until) - now) / 1000)} left`;
}

// ---- actions ------------------------------------------------------------------------------

const body = (extra = {}) => ({ ...extra });
function accept(iid) { return act("Accept", () => api("POST", `/api/v1/interactions/${iid}/accept`, body())); }
function reject(iid) { return act("Reject", () => api("POST", `/api/v1/interactions/${iid}/reject`, body())); }
function holdToggle(iid) {
  return act(onHold.get(iid) ? "Resume" : "Hold", () => api("POST", `/api/v1/interactions/${iid}/${onHold.get(iid) ? "resume" : "hold"}`, body()));
}
function complete(iid) {
  const disposition = $(`disp-${iid}`)?.value || undefined;
  return act("Complete", async () => {
    await api("POST", `/api/v1/interactions/${iid}/complete`, body({ disposition }));
    if (disposition) await api("POST", `/api/v1/interactions/${iid}/notes`, { kind: "wrapup", disposition, text: "" });
    contexts.delete(iid);
  });
}
async function saveWrap(iid) {
  const disposition = $(`wdisp-${iid}`)?.value || null;
  const text = $(`wnote-${iid}`)?.value ?? "";
  if (!disposition && !text.trim()) return;
  await act("Wrap-up", () => api("POST", `/api/v1/interactions/${iid}/notes`, { kind: "wrapup", disposition, text }));
  drafts.delete(`wnote-${iid}`); contexts.delete(iid);
  toast("Wrap-up saved.");
}
// Survey links made in this wrap-up (the card shows the link until the wrap-up ends).
const surveyLinks = new Map();
async function surveyLink(iid) {
  const made = await act("Survey link", () => api("GET", `/api/v1/interactions/${iid}/survey-link`));
  if (!made) return;
  surveyLinks.set(iid, made.url);
  try { await navigator.clipboard.writeText(made.url); toast("Survey link copied: paste it into your reply to the customer."); }
  catch { toast("Survey link ready: copy it from the wrap-up card."); }
  render();
}
async function endWrap(iid) {
  const text = $(`wnote-${iid}`)?.value ?? "";
  const disposition = $(`wdisp-${iid}`)?.value || null;
  const last = (contexts.get(iid)?.notes ?? []).filter((n) => n.kind === "wrapup").at(-1);
  if (text.trim() || (disposition && disposition !== last?.disposition)) await saveWrap(iid);
  return act("End wrap-up", () => api("POST", `/api/v1/interactions/${iid}/wrapup-end`, body()));
}
function ready() { return act("Ready", () => api("POST", `/api/v1/agents/${ME}/state`, { state: "available" })); }
function takeBreak() {
  return act("Break", () => api("POST", `/api/v1/agents/${ME}/state`, { state: "break", reason: $("break-reason").value }));
}
function loginToggle() {
  return agent.state === "logged_out"
    ? act("Log in", () => api("POST", `/api/v1/agents/${ME}/login`))
    : act("Log out", () => api("POST", `/api/v1/agents/${ME}/logout`, {}));
}
// Click-to-dial: the platform rings this agent's phones, then dials the number as their
// extension would (the organisation's dial rules decide what may be called).
// For a logged-in agent the call is an outbound interaction: it shows as their work at once.
async function placeCall(number, customerId) {
  const to = String(number ?? "").trim();
  if (!to) { $("dial-number").focus(); return; }
  try {
    await api("POST", "/api/v1/telephony/calls", customerId ? { to, customer_id: customerId } : { to });
    refresh();
    toast(`Your phone is ringing: pick it up to call ${to}.`);
    $("dial-number").value = "";
  } catch (e) {
    toast(`Call ${to}: ${e.message}`, "error");
  }
}

async function loadPresence() { try { presence = await api("GET", "/api/v1/stats/presence"); } catch { presence = []; } }

$("btn-ready").addEventListener("click", ready);
$("btn-break").addEventListener("click", takeBreak);
$("btn-login").addEventListener("click", loginToggle);
$("dial").addEventListener("submit", (e) => { e.preventDefault(); placeCall($("dial-number").value); });
work.addEventListener("input", (e) => { if (e.target.id && e.target.tagName === "TEXTAREA") drafts.set(e.target.id, e.target.value); });

document.addEventListener("keydown", (e) => {
  if (!e.altKey || e.ctrlKey || e.metaKey || !agent) return;
  const key = e.key.toLowerCase();
  const current = selected;
  const handlers = {
    a: () => agent.offer && !onPhone(contexts.get(agent.offer)) && accept(agent.offer),
    r: () => agent.offer && reject(agent.offer),
    h: () => current && owns(current) && holdToggle(current),
    c: () => current && owns(current) && complete(current),
    w: () => agent.wrapups[0] && endWrap(agent.wrapups[0]),
    y: () => !$("btn-ready").disabled && ready(),
    b: () => !$("btn-break").disabled && takeBreak(),
    n: () => current && $(`note-${current}`)?.focus(),
    d: () => $("dial-number").focus(),
  };
  if (handlers[key]) { e.preventDefault(); handlers[key](); }
});

// ---- live ---------------------------------------------------------------------------------

document.addEventListener("sc:event", (e) => {
  const ev = e.detail;
  const p = ev.payload || {};
  if (ev.type === "interaction.offered" && p.agent_id === ME) offers.set(p.interaction_id, { ...p, offered_at: ev.time });
  if (ev.type === "interaction.accepted" && p.agent_id === ME) talkSince.set(p.interaction_id, new Date(ev.time));
  if (ev.type === "interaction.completed" && p.agent_id === ME) wraps.set(p.interaction_id, { seconds: p.wrapup_planned_seconds ?? p.wrapup_seconds, at: Date.parse(ev.time) });
  if (ev.type.startsWith("interaction.") || ev.type.startsWith("queue.")) refreshQueues();
  if (ev.type.startsWith("code.")) loadCodes();
  if (ev.type === "survey.answered" && p.agent_id === ME) loadToday();
  if (ev.type.startsWith("recording.") && p.recording?.interaction_id && mine(p.recording.interaction_id)) {
    const next = { "recording.started": "recording", "recording.resumed": "recording", "recording.paused": "paused", "recording.stopped": "off" }[ev.type];
    if (next) { recording.set(p.recording.interaction_id, next); render(); }
  }
  if (ev.type === "call.transfer_failed") {
    // Put through to a number (the desk or the phone's transfer key) did not work out.
    for (const [iid, c] of contexts) {
      if (owns(iid) && c?.interaction.attributes?.call_id === p.call_id)
        toast(`Put through to ${p.to} failed (${p.status}): the caller is still with you.`, "error");
    }
  }
  if (p.agent_id === ME || (p.interaction_id && mine(p.interaction_id))) {
    if (ev.type === "note.added" || ev.type.startsWith("customer.")) contexts.delete(p.interaction_id);
    refresh();
  } else if (ev.type === "customer.updated" || ev.type === "customer.created") {
    for (const [iid, c] of contexts) if (c?.customer?.id === p.customer_id || c?.interaction.customer_id === p.customer_id) contexts.delete(iid);
    refresh();
  }
});

async function loadCodes() {
  const all = await api("GET", "/api/v1/codes");
  codes = { reason: all.filter((c) => c.kind === "reason" && c.active), disposition: all.filter((c) => c.kind === "disposition" && c.active) };
  const sel = $("break-reason");
  const keep = sel.value;
  sel.replaceChildren(...codes.reason.map((c) => h("option", { value: c.code }, c.label)));
  if (keep) sel.value = keep;
}

setInterval(tick, 1000);
setInterval(loadToday, 15000);
await Promise.all([loadCodes(), loadQueues(), loadPresence()]);
await refreshNow();
root.dataset.ready = "true";
