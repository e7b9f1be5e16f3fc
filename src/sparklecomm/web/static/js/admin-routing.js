// Admin › queues, agents (skills, proficiency, capacity) and codes; errors next to the field.
import { api, ApiError } from "./api.js";
import { h, showFieldErrors, toast } from "./dom.js";

const section = document.getElementById("admin-routing").dataset.section;
const rows = document.getElementById("rows");
const form = document.getElementById("form");
const status = document.getElementById("status");

async function guarded(fn, target = form) {
  try { await fn(); return true; }
  catch (e) {
    if (!(e instanceof ApiError)) throw e;
    if (target) showFieldErrors(target, e, status); else toast(e.message, "error");
    return false;
  }
}

// ---- queues -------------------------------------------------------------------------------
let editing = null;
// Business hours (Admin › Phone numbers & hours) and queues to pick from.
function fillSelect(name, values, first) {
  const select = form.elements[name];
  const keep = select.value;
  select.replaceChildren(h("option", { value: "" }, first), ...values.map(([v, label]) => h("option", { value: v }, label)));
  select.value = keep;
}
async function loadQueues() {
  const live = await api("GET", "/api/v1/queues");
  const configs = await Promise.all(live.map((q) => api("GET", `/api/v1/queues/${encodeURIComponent(q.queue_id)}/config`)));
  let hours = [];
  try { hours = await api("GET", "/api/v1/telephony/business-hours"); } catch { hours = []; }
  fillSelect("hours", hours.map((x) => [x.name, x.name]), "Always open");
  fillSelect("closed_queue", configs.map((c) => [c.id, c.name]), "Nowhere (turned away)");
  fillSelect("max_wait_queue", configs.map((c) => [c.id, c.name]), "Out of the queue");
  rows.replaceChildren(...configs.map((c) => h("tr", { "data-queue": c.id },
    h("td", {}, h("code", {}, c.id)), h("td", {}, c.name), h("td", {}, c.strategy), h("td", {}, (c.channels || []).join(", ")),
    h("td", { class: "num" }, String(c.service_level_seconds)), h("td", { class: "num" }, String(c.wrapup_seconds)),
    h("td", {}, c.hours ?? h("span", { class: "muted" }, "always open")),
    h("td", { class: "num" }, `${(c.members || []).length}${c.member_expression ? ` + ${c.member_expression}` : ""}`),
    h("td", {}, h("div", { class: "row" },
      h("button", { class: "btn small", type: "button", onclick: () => edit(c) }, "Edit"),
      h("button", { class: "btn small bad", type: "button", onclick: () => remove(c) }, "Delete"))))));
  if (!configs.length) rows.replaceChildren(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No queue yet.")));
}
function edit(c) {
  editing = c;
  document.getElementById("form-title").textContent = `Edit queue ${c.id}`;
  for (const k of ["id", "name", "strategy", "service_level_seconds", "offer_timeout_seconds", "wrapup_seconds", "member_expression"])
    form.elements[k].value = c[k] ?? "";
  form.elements.channels.value = (c.channels || []).join(", ");
  form.elements.hours.value = c.hours ?? "";
  form.elements.closed_queue.value = c.on_closed?.queue_id ?? "";
  form.elements.closed_divert.value = c.on_closed?.divert_to ?? "";
  form.elements.max_wait_seconds.value = c.max_wait_seconds ?? "";
  form.elements.max_wait_queue.value = c.on_max_wait?.queue_id ?? "";
  form.elements.max_wait_divert.value = c.on_max_wait?.divert_to ?? "";
  form.elements.music_on_hold.value = c.waiting?.music_on_hold ? "on" : "";
  form.elements.announce_every_seconds.value = c.waiting?.announce_every_seconds ?? "";
  form.elements.callback_key.value = c.waiting?.callback_key ?? "";
  form.elements.survey_scale.value = c.survey?.enabled ? String(c.survey.max_score) : "";
  form.elements.survey_question.value = c.survey?.question ?? "";
  form.elements.id.disabled = true;
  form.elements.name.focus();
}
async function remove(c) {
  if (!confirm(`Delete queue ${c.name}?`)) return;
  await guarded(() => api("DELETE", `/api/v1/queues/${encodeURIComponent(c.id)}`), null);
  loadQueues();
}
function queueBody() {
  const d = Object.fromEntries(new FormData(form));
  // Editing starts from the whole configuration, so what this form does not show (members,
  // relaxation, diversions, callbacks, priority rules...) is kept as it is.
  const body = { ...(editing ?? {}), name: d.name, strategy: d.strategy,
    channels: d.channels.split(",").map((x) => x.trim()).filter(Boolean) };
  for (const k of ["service_level_seconds", "offer_timeout_seconds", "wrapup_seconds"]) body[k] = d[k] === "" ? undefined : Number(d[k]);
  body.member_expression = d.member_expression || undefined;
  body.hours = d.hours || undefined;
  body.on_closed = { ...(editing?.on_closed ?? {}), queue_id: d.closed_queue || null, divert_to: d.closed_divert.trim() || null };
  body.max_wait_seconds = d.max_wait_seconds === "" ? null : Number(d.max_wait_seconds);
  body.on_max_wait = { ...(editing?.on_max_wait ?? {}), queue_id: d.max_wait_queue || null, divert_to: d.max_wait_divert.trim() || null };
  body.waiting = { ...(editing?.waiting ?? {}), music_on_hold: d.music_on_hold === "on",
    announce_every_seconds: d.announce_every_seconds === "" ? null : Number(d.announce_every_seconds),
    callback_key: d.callback_key.trim() || null };
  // The post-call survey: off, or a scale (the question is optional: empty names the scale).
  body.survey = { ...(editing?.survey ?? {}), enabled: d.survey_scale !== "",
    max_score: d.survey_scale === "" ? (editing?.survey?.max_score ?? 5) : Number(d.survey_scale),
    question: d.survey_question.trim() };
  return [d, body];
}

// ---- agents -------------------------------------------------------------------------------
function skillsText(skills) { return Object.entries(skills || {}).map(([k, v]) => `${k}:${v}`).join(", "); }
function parseSkills(text) {
  const out = {};
  for (const part of text.split(",").map((x) => x.trim()).filter(Boolean)) {
    const [name, level] = part.split(":").map((x) => x.trim());
    out[name] = level === undefined ? 3 : Number(level);
  }
  return out;
}
function agentRows() {
  const people = JSON.parse(document.getElementById("agent-configs").textContent);
  rows.replaceChildren(...people.map((p) => {
    const c = p.config || { skills: {}, capacity: { voice: 1, chat: 1, email: 1 } };
    const f = h("form", { class: "row", novalidate: true, "data-agent": p.username });
    const input = (name, value, label, type = "text") => h("div", { class: "field" },
      h("label", { class: "sr-only", for: `${p.id}-${name}` }, `${label} of ${p.name}`),
      h("input", { id: `${p.id}-${name}`, name, value: value ?? "", type, class: "compact", form: `f-${p.id}` }),
      h("p", { class: "field-error", "data-for": name }));
    const tr = h("tr", {}, h("td", {}, h("strong", {}, p.name), h("div", { class: "muted" }, p.username, p.config ? "" : " · not yet an agent")),
      h("td", {}, input("skills", skillsText(c.skills), "Skills")),
      h("td", {}, input("voice", c.capacity?.voice ?? 1, "Voice capacity", "number")),
      h("td", {}, input("chat", c.capacity?.chat ?? 1, "Chat capacity", "number")),
      h("td", {}, input("email", c.capacity?.email ?? 1, "E-mail capacity", "number")),
      h("td", {}, f, h("button", { class: "btn small primary", type: "submit", form: `f-${p.id}` }, "Save")));
    f.id = `f-${p.id}`;
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      const val = (n) => document.getElementById(`${p.id}-${n}`).value;
      const body = { skills: parseSkills(val("skills")), attributes: c.attributes || {},
        capacity: { ...(c.capacity || {}), voice: Number(val("voice")), chat: Number(val("chat")), email: Number(val("email")) } };
      const ok = await guarded(async () => {
        p.config = await api("PUT", `/api/v1/agents/${p.id}`, body);
      }, tr);
      if (ok) { showFieldErrors(tr, null); toast(`Saved ${p.name}.`); }
    });
    return tr;
  }));
}

// ---- codes --------------------------------------------------------------------------------
async function loadCodes() {
  const codes = await api("GET", "/api/v1/codes");
  rows.replaceChildren(...codes.map((c) => h("tr", { "data-code": `${c.kind}:${c.code}` },
    h("td", {}, c.kind), h("td", {}, h("code", {}, c.code)), h("td", {}, c.label),
    h("td", {}, h("span", { class: c.active ? "badge" : "badge off" }, c.active ? "active" : "inactive")),
    h("td", {}, h("div", { class: "row" },
      h("button", { class: "btn small", type: "button", onclick: async () => {
        await guarded(() => api("PUT", `/api/v1/codes/${c.kind}/${c.code}`, { label: c.label, active: !c.active }), null); loadCodes();
      } }, c.active ? "Deactivate" : "Activate"),
      h("button", { class: "btn small bad", type: "button", onclick: async () => {
        await guarded(() => api("DELETE", `/api/v1/codes/${c.kind}/${c.code}`), null); loadCodes();
      } }, "Delete"))))));
}

if (section === "queues") {
  form.addEventListener("reset", () => { editing = null; form.elements.id.disabled = false; document.getElementById("form-title").textContent = "Add a queue"; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const [d, body] = queueBody();
    const ok = await guarded(() => editing
      ? api("PUT", `/api/v1/queues/${encodeURIComponent(editing.id)}`, body)
      : api("POST", "/api/v1/queues", { ...body, id: d.id || undefined }));
    if (ok) { showFieldErrors(form, null, status); status.textContent = "Saved."; form.reset(); loadQueues(); }
  });
  loadQueues();
} else if (section === "agents") {
  agentRows();
} else {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = Object.fromEntries(new FormData(form));
    const ok = await guarded(() => api("PUT", `/api/v1/codes/${d.kind}/${encodeURIComponent(d.code || "-")}`, { label: d.label }));
    if (ok) { showFieldErrors(form, null, status); status.textContent = `Saved ${d.code}.`; form.reset(); loadCodes(); }
  });
  loadCodes();
}
