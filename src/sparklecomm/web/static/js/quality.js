// Quality: evaluations of calls on scorecards. Supervisors review recorded calls (the player
// beside the form, the score computed as they answer), save drafts and submit; agents read
// the reviews of their calls, acknowledge them with a comment and evaluate themselves; both
// follow the month-by-month trend. Administrators also edit the scorecards (a scorecard in
// use gets a new version when saved). The server computes the stored score; the one shown
// while answering uses the same formula (docs/quality.md). Follows the event stream
// (quality.*).
import { api, ApiError } from "./api.js";
import { debounce, duration, h, showFieldErrors, toast } from "./dom.js";

const base = "/api/v1/quality";
const root = document.getElementById("quality");
const me = root.dataset.me;
const everyAgent = root.dataset.everyAgent === "true";
const editCards = root.dataset.editScorecards === "true";
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const $ = (id) => document.getElementById(id);
const SCALES = [["1-5", "1 to 5"], ["yes_no", "Yes / no"], ["1-3", "1 to 3"], ["1-4", "1 to 4"], ["0-10", "0 to 10"]];
const STATUS_LABEL = { draft: "Draft", submitted: "Submitted", acknowledged: "Acknowledged" };

let cards = new Map(); // scorecard id → scorecard (every version this user may read)
let people = new Map(); // user id → name (supervisors)
let evaluations = [];
let recordings = [];
let editing = null; // { id, kind, card } of the evaluation in the editor
let editingCard = null; // the scorecard in the admin form (null: a new one)

function problemText(err) {
  return err instanceof ApiError ? err.message : "the server could not be reached";
}

function personName(id) {
  if (id === me) return "You";
  return people.get(id) ?? (everyAgent ? id : "Your supervisor");
}

function bounds(scale) {
  if (scale === "yes_no") return [0, 1];
  const [lo, hi] = scale.split("-").map(Number);
  return [lo, hi];
}

// The formula of sparklecomm/quality/scoring.py: the weighted mean of the answers mapped to
// 0..1, not-applicable ones left out; a critical criterion at the bottom of its scale: 0.
function liveScore(card, answers) {
  let total = 0, weights = 0, failed = false;
  for (const c of card.criteria) {
    const v = answers[c.id]?.value;
    if (v === null || v === undefined) continue;
    const [lo, hi] = bounds(c.scale);
    total += c.weight * (v - lo) / (hi - lo);
    weights += c.weight;
    if (c.critical && v === lo) failed = true;
  }
  if (failed) return 0;
  return weights ? Math.round(1000 * total / weights) / 10 : null;
}

function scoreText(score) {
  return score === null || score === undefined ? "–" : score.toFixed(1);
}

function cardLabel(e) {
  return `${e.scorecard.name} v${e.scorecard.version}`;
}

// -- the list ------------------------------------------------------------------------------
function query() {
  const q = new URLSearchParams({ limit: "500" });
  const agent = $("ev-agent")?.value;
  if (agent) q.set("agent_id", agent);
  if ($("ev-kind").value) q.set("kind", $("ev-kind").value);
  if ($("ev-state").value) q.set("status", $("ev-state").value);
  return q.toString();
}

function row(e) {
  const when = new Date(e.submitted_at ?? e.created_at);
  const mine = e.evaluator_id === me && e.status === "draft";
  const toAck = e.agent_id === me && e.kind === "review" && e.status === "submitted";
  return h("tr", { "data-evaluation": e.id, "data-status": e.status },
    h("td", {}, h("time", { datetime: when.toISOString() }, when.toLocaleString())),
    h("td", {}, personName(e.agent_id)),
    h("td", {}, e.kind === "self" ? "Self-evaluation" : "Review"),
    h("td", {}, cardLabel(e)),
    h("td", { class: "num", "data-testid": "ev-score" }, scoreText(e.score),
      e.failed_critical?.length ? h("span", { class: "badge off", title: "A critical criterion failed" }, " auto-fail") : null),
    h("td", {}, h("span", { class: e.status === "draft" ? "badge off" : "badge", "data-testid": "ev-state" }, STATUS_LABEL[e.status] ?? e.status)),
    h("td", {}, mine
      ? h("button", { class: "btn small", type: "button", onclick: () => openDraft(e) }, "Continue")
      : h("button", { class: toAck ? "btn small primary" : "btn small", type: "button", onclick: () => showDetail(e) }, toAck ? "Read and acknowledge" : "View")));
}

function renderList() {
  const body = $("ev-body");
  if (!evaluations.length) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted", "data-testid": "evaluations-empty" }, "No evaluations.")));
  } else {
    body.replaceChildren(...evaluations.map(row));
  }
  const open = evaluations.filter((e) => e.agent_id === me && e.kind === "review" && e.status === "submitted").length;
  $("ev-status").textContent = `${evaluations.length} evaluation${evaluations.length === 1 ? "" : "s"}.`
    + (open ? ` ${open} to acknowledge.` : "");
}

async function loadList() {
  try {
    evaluations = await api("GET", `${base}/evaluations?${query()}`);
    renderList();
  } catch (err) {
    $("ev-status").textContent = `Evaluations could not be loaded: ${problemText(err)}.`;
  }
}

// -- one evaluation, read-only -------------------------------------------------------------
async function cardOf(e) {
  if (!cards.has(e.scorecard_id)) cards.set(e.scorecard_id, await api("GET", `${base}/scorecards/${encodeURIComponent(e.scorecard_id)}`));
  return cards.get(e.scorecard_id);
}

function answerText(c, a) {
  if (!a) return "not answered";
  if (a.value === null) return "N/A";
  if (c.scale === "yes_no") return a.value ? "Yes" : "No";
  return `${a.value} of ${bounds(c.scale)[1]}`;
}

async function showDetail(e) {
  closeEditor();
  let card;
  try { card = await cardOf(e); } catch (err) { toast(`The scorecard could not be loaded: ${problemText(err)}.`, "error"); return; }
  const sections = Object.entries(e.section_scores || {}).map(([s, v]) => `${s} ${scoreText(v)}`).join(" · ");
  $("detail-h").textContent = `${e.kind === "self" ? "Self-evaluation" : "Review"} of ${personName(e.agent_id) === "You" ? "your call" : personName(e.agent_id)}`;
  $("detail-body").replaceChildren(
    h("dl", { class: "kv" },
      h("dt", {}, "Score"), h("dd", { "data-testid": "detail-score" }, scoreText(e.score), e.failed_critical?.length ? " (a critical criterion failed)" : ""),
      h("dt", {}, "Sections"), h("dd", {}, sections || "–"),
      h("dt", {}, "Scorecard"), h("dd", {}, cardLabel(e)),
      h("dt", {}, "Status"), h("dd", {}, STATUS_LABEL[e.status] ?? e.status),
      h("dt", {}, "Comment"), h("dd", { "data-testid": "detail-comment" }, e.comment || "–"),
      e.agent_comment ? [h("dt", {}, "Agent's answer"), h("dd", {}, e.agent_comment)] : null),
    e.recording_id ? h("audio", { controls: true, preload: "none", src: `/api/v1/recordings/${encodeURIComponent(e.recording_id)}/audio`, "aria-label": "Recording of the evaluated call" }) : null,
    h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Section"), h("th", { scope: "col" }, "Criterion"), h("th", { scope: "col" }, "Answer"), h("th", { scope: "col" }, "Comment"))),
      h("tbody", {}, card.criteria.map((c) => h("tr", {},
        h("td", {}, c.section), h("td", {}, c.label, c.critical ? " (critical)" : ""),
        h("td", {}, answerText(c, e.answers[c.id])), h("td", {}, e.answers[c.id]?.comment || ""))))));
  const ack = $("ack-form");
  ack.hidden = !(e.agent_id === me && e.kind === "review" && e.status === "submitted");
  ack.dataset.evaluation = e.id;
  $("ack-comment").value = "";
  $("ev-detail").hidden = false;
  $("ev-detail").scrollIntoView({ block: "nearest" });
}

$("ack-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  try {
    const done = await api("POST", `${base}/evaluations/${encodeURIComponent(form.dataset.evaluation)}/acknowledge`, { comment: $("ack-comment").value });
    toast("Acknowledged.");
    await showDetail(done);
    loadList();
  } catch (err) {
    showFieldErrors(form, err);
    toast(`Could not acknowledge: ${problemText(err)}.`, "error");
  }
});
$("detail-close").addEventListener("click", () => { $("ev-detail").hidden = true; });

// -- the editor ----------------------------------------------------------------------------
function criterionField(c, answer) {
  const name = `ans-${c.id}`;
  const [lo, hi] = bounds(c.scale);
  const values = c.scale === "yes_no" ? [[1, "Yes"], [0, "No"]] : Array.from({ length: hi - lo + 1 }, (_, i) => [lo + i, String(lo + i)]);
  const radio = (value, label) => h("label", { class: "check" },
    h("input", { type: "radio", name, value: String(value), checked: answer !== undefined && String(answer.value ?? "") === String(value) }), label);
  return h("fieldset", { class: "field", "data-criterion": c.id },
    h("legend", {}, `${c.section} · ${c.label}`, c.critical ? " (critical)" : "", ` ×${c.weight}`),
    c.guidance ? h("p", { class: "muted" }, c.guidance) : null,
    h("div", { class: "row" }, values.map(([v, l]) => radio(v, l)), radio("", "N/A")),
    h("input", { name: `comment-${c.id}`, "aria-label": `Comment on ${c.label}`, placeholder: "Comment", maxlength: 1000, value: answer?.comment ?? "" }));
}

function answersOf(card) {
  const form = $("ev-form");
  const out = {};
  for (const c of card.criteria) {
    const picked = form.querySelector(`input[name="ans-${CSS.escape(c.id)}"]:checked`);
    const comment = form.elements[`comment-${c.id}`]?.value ?? "";
    if (!picked) continue;
    out[c.id] = { value: picked.value === "" ? null : Number(picked.value), comment };
  }
  return out;
}

function showLiveScore() {
  if (!editing?.card) { $("ev-live-score").textContent = "–"; return; }
  $("ev-live-score").textContent = scoreText(liveScore(editing.card, answersOf(editing.card)));
}

function renderCriteria(answers = {}) {
  $("ev-criteria").replaceChildren(...(editing?.card ? editing.card.criteria.map((c) => criterionField(c, answers[c.id])) : []));
  showLiveScore();
}

function showPlayer(recordingId) {
  const r = recordings.find((x) => x.id === recordingId);
  $("ev-player").replaceChildren(recordingId
    ? h("audio", { controls: true, preload: "metadata", src: `/api/v1/recordings/${encodeURIComponent(recordingId)}/audio`,
      "aria-label": r ? `Recording of the call from ${r.caller}` : "Recording of the evaluated call" })
    : h("span", { class: "muted" }, "Pick a recorded call to hear it here."));
}

function recordingLabel(r) {
  const who = everyAgent ? ` · ${personName(r.agent_id)}` : "";
  return `${new Date(r.started_at).toLocaleString()} · ${r.caller} · ${duration(r.seconds)}${who}`;
}

async function openEditor(kind) {
  $("ev-detail").hidden = true;
  const current = [...cards.values()].filter((c) => c.active);
  if (!current.length) { toast("There is no scorecard yet: an administrator creates one first.", "error"); return; }
  try {
    const all = await api("GET", "/api/v1/recordings?limit=500");
    recordings = all.filter((r) => (r.status === "complete" || r.status === "interrupted") && r.agent_id
      && (kind !== "self" || r.agent_id === me));
  } catch (err) {
    recordings = [];
    toast(`Recordings could not be loaded: ${problemText(err)}.`, "error");
  }
  if (!recordings.length) { toast(kind === "self" ? "You have no recorded calls to evaluate." : "There are no recorded calls to evaluate.", "error"); return; }
  $("ev-recording").replaceChildren(...recordings.map((r) => h("option", { value: r.id }, recordingLabel(r))));
  $("ev-scorecard").replaceChildren(...current.map((c) => h("option", { value: c.id }, `${c.name} v${c.version}`)));
  $("ev-recording").disabled = $("ev-scorecard").disabled = false;
  editing = { id: null, kind, card: cards.get($("ev-scorecard").value) };
  $("form-h").textContent = kind === "self" ? "Evaluate myself" : "New evaluation";
  $("ev-comment").value = "";
  $("ev-form-status").textContent = "";
  showFieldErrors($("ev-form"), null);
  renderCriteria();
  showPlayer($("ev-recording").value);
  $("ev-editor").hidden = false;
  $("ev-editor").scrollIntoView({ block: "nearest" });
}

async function openDraft(e) {
  $("ev-detail").hidden = true;
  let card;
  try { card = await cardOf(e); } catch (err) { toast(`The scorecard could not be loaded: ${problemText(err)}.`, "error"); return; }
  editing = { id: e.id, kind: e.kind, card };
  recordings = e.recording_id ? [{ id: e.recording_id, caller: "the evaluated call", started_at: e.created_at, seconds: null, agent_id: e.agent_id }] : [];
  $("ev-recording").replaceChildren(...(e.recording_id ? [h("option", { value: e.recording_id }, `Call of ${personName(e.agent_id)}`)] : [h("option", { value: "" }, "No recording")]));
  $("ev-scorecard").replaceChildren(h("option", { value: card.id }, `${card.name} v${card.version}`));
  $("ev-recording").disabled = $("ev-scorecard").disabled = true;
  $("form-h").textContent = e.kind === "self" ? "Evaluate myself" : `Evaluation of ${personName(e.agent_id)}`;
  $("ev-comment").value = e.comment || "";
  $("ev-form-status").textContent = "Draft.";
  showFieldErrors($("ev-form"), null);
  renderCriteria(e.answers);
  showPlayer(e.recording_id);
  $("ev-editor").hidden = false;
  $("ev-editor").scrollIntoView({ block: "nearest" });
}

function closeEditor() {
  $("ev-editor").hidden = true;
  $("ev-player").replaceChildren();
  editing = null;
}

async function save() {
  const answers = answersOf(editing.card);
  const comment = $("ev-comment").value;
  const saved = editing.id
    ? await api("PATCH", `${base}/evaluations/${encodeURIComponent(editing.id)}`, { answers, comment })
    : await api("POST", `${base}/evaluations`, {
      scorecard_id: editing.card.id, kind: editing.kind, recording_id: $("ev-recording").value || null, answers, comment,
    });
  editing.id = saved.id;
  $("ev-recording").disabled = $("ev-scorecard").disabled = true;
  return saved;
}

$("ev-recording").addEventListener("change", () => showPlayer($("ev-recording").value));
$("ev-scorecard").addEventListener("change", () => {
  editing.card = cards.get($("ev-scorecard").value);
  renderCriteria();
});
$("ev-criteria").addEventListener("change", showLiveScore);
$("ev-save").addEventListener("click", async () => {
  const form = $("ev-form");
  try {
    const saved = await save();
    showFieldErrors(form, null);
    $("ev-form-status").textContent = `Draft saved (score so far ${scoreText(saved.score)}).`;
    loadList();
  } catch (err) {
    showFieldErrors(form, err, $("ev-form-status"));
  }
});
$("ev-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  try {
    await save();
    const done = await api("POST", `${base}/evaluations/${encodeURIComponent(editing.id)}/submit`);
    toast(`Submitted: score ${scoreText(done.score)}.`);
    closeEditor();
    loadList();
    loadTrends();
  } catch (err) {
    showFieldErrors(form, err, $("ev-form-status"));
    if (editing?.id) $("ev-form-status").textContent ||= "Saved as a draft; not submitted.";
    loadList();
  }
});
$("ev-cancel").addEventListener("click", closeEditor);
$("ev-new")?.addEventListener("click", () => openEditor("review"));
$("ev-self").addEventListener("click", () => openEditor("self"));

// -- trends --------------------------------------------------------------------------------
function change(x) {
  if (x === null || x === undefined) return "–";
  return x > 0 ? `+${x.toFixed(1)}` : x < 0 ? `−${Math.abs(x).toFixed(1)}` : "±0.0";
}

async function loadTrends() {
  const q = new URLSearchParams({ months: "6", timezone: zone });
  if ($("tr-agent")?.value) q.set("agent_id", $("tr-agent").value);
  try {
    const t = await api("GET", `${base}/trends?${q}`);
    $("tr-body").replaceChildren(...t.months.slice().reverse().map((m) => {
      const [y, mo] = m.month.split("-").map(Number);
      const label = new Date(y, mo - 1, 1).toLocaleDateString(undefined, { year: "numeric", month: "long" });
      return h("tr", { "data-month": m.month },
        h("td", {}, label),
        h("td", { class: "num", "data-testid": "trend-average" }, scoreText(m.review.average)),
        h("td", { class: "num", "data-testid": "trend-count" }, String(m.review.count)),
        h("td", { class: "num" }, change(m.review.change)),
        h("td", { class: "num" }, scoreText(m.self.average)),
        h("td", { class: "num" }, String(m.self.count)),
        h("td", { class: "num" }, change(m.self_gap)));
    }));
  } catch (err) {
    $("tr-body").replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted" }, `Trends could not be loaded: ${problemText(err)}.`)));
  }
}

// -- scorecards (administrators) -----------------------------------------------------------
function criterionRow(c = { section: "", label: "", weight: 1, scale: "1-5", critical: false }) {
  const tr = h("tr", { "data-id": c.id ?? "" });
  const named = (el, what) => { el.dataset.what = what; return el; };
  tr.append(
    h("td", {}, named(h("input", { name: "section", value: c.section, maxlength: 60, placeholder: "Etiquette" }), "Section")),
    h("td", {}, named(h("input", { name: "label", value: c.label, maxlength: 200, placeholder: "Greets the caller by name" }), "Criterion")),
    h("td", {}, named(h("input", { name: "weight", type: "number", min: 1, max: 10, step: 1, value: c.weight, class: "compact" }), "Weight")),
    h("td", {}, named(h("select", { name: "scale", class: "compact" }, SCALES.map(([v, l]) => h("option", { value: v, selected: v === c.scale }, l))), "Scale")),
    h("td", {}, named(h("input", { name: "critical", type: "checkbox", checked: c.critical }), "Critical")),
    h("td", {}, h("button", { class: "btn small", type: "button", "data-what": "Remove", onclick: () => { tr.remove(); numberRows(); } }, "Remove")));
  return tr;
}

// Each input of a criterion row is named with its row's number ("Weight of criterion 2").
function numberRows() {
  [...$("sc-criteria").children].forEach((tr, i) => {
    for (const el of tr.querySelectorAll("[data-what]")) {
      const what = el.dataset.what;
      el.setAttribute("aria-label", what === "Remove" ? `Remove criterion ${i + 1}` : `${what} of criterion ${i + 1}`);
    }
  });
}

function resetCardForm(card = null) {
  editingCard = card;
  $("sc-form-h").textContent = card ? `Edit ${card.name} (version ${card.version})` : "New scorecard";
  $("sc-name").value = card?.name ?? "";
  $("sc-description").value = card?.description ?? "";
  $("sc-criteria").replaceChildren(...(card ? card.criteria.map((c) => criterionRow(c)) : [criterionRow()]));
  numberRows();
  $("sc-status").textContent = "";
  showFieldErrors($("sc-form"), null);
}

function renderCards() {
  if (!editCards) return;
  const current = [...cards.values()].filter((c) => c.active);
  $("sc-body").replaceChildren(...(current.length ? current.map((c) => h("tr", { "data-scorecard": c.id },
    h("td", {}, c.name), h("td", { class: "num" }, String(c.version)), h("td", { class: "num" }, String(c.criteria.length)),
    h("td", {},
      h("button", { class: "btn small", type: "button", onclick: () => resetCardForm(c) }, "Edit"), " ",
      h("button", { class: "btn small bad", type: "button", onclick: () => archive(c) }, "Archive"))))
    : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No scorecards yet."))]));
}

async function archive(c) {
  if (!confirm(`Archive the scorecard ${c.name}? Its evaluations stay; no new ones can use it.`)) return;
  try {
    await api("POST", `${base}/scorecards/${encodeURIComponent(c.id)}/archive`);
    toast(`Archived ${c.name}.`);
    await loadCards();
  } catch (err) {
    toast(`Could not archive: ${problemText(err)}.`, "error");
  }
}

async function saveCard(ev) {
  ev.preventDefault();
  const form = $("sc-form");
  const criteria = [...$("sc-criteria").children].map((tr) => {
    const get = (n) => tr.querySelector(`[name="${n}"]`);
    const c = {
      section: get("section").value.trim() || "General", label: get("label").value,
      weight: Number(get("weight").value), scale: get("scale").value, critical: get("critical").checked,
    };
    if (tr.dataset.id) c.id = tr.dataset.id;
    return c;
  });
  const body = { name: $("sc-name").value, description: $("sc-description").value, criteria };
  try {
    const saved = editingCard
      ? await api("PATCH", `${base}/scorecards/${encodeURIComponent(editingCard.id)}`, body)
      : await api("POST", `${base}/scorecards`, body);
    await loadCards();
    resetCardForm(saved);
    $("sc-status").textContent = editingCard && saved.version > 1 && saved.id !== editingCard?.id ? `Saved as version ${saved.version}.` : "Saved.";
  } catch (err) {
    showFieldErrors(form, err, $("sc-status"));
    // "criteria[2].weight": mark that input of that row.
    for (const f of Object.keys(err?.fieldErrors ?? {})) {
      const m = /^criteria\[(\d+)\]\.(\w+)$/.exec(f);
      const input = m && $("sc-criteria").children[Number(m[1])]?.querySelector(`[name="${m[2]}"]`);
      input?.setAttribute("aria-invalid", "true");
    }
  }
}

if (editCards) {
  $("sc-add").addEventListener("click", () => { $("sc-criteria").append(criterionRow()); numberRows(); });
  $("sc-reset").addEventListener("click", () => resetCardForm(null));
  $("sc-form").addEventListener("submit", saveCard);
  resetCardForm(null);
}

async function loadCards() {
  try {
    const all = await api("GET", `${base}/scorecards?include_retired=true`);
    cards = new Map(all.map((c) => [c.id, c]));
    renderCards();
  } catch (err) {
    toast(`Scorecards could not be loaded: ${problemText(err)}.`, "error");
  }
}

async function loadPeople() {
  if (!everyAgent) return;
  try {
    const users = await api("GET", "/api/v1/users");
    people = new Map(users.map((u) => [u.id, u.display_name || u.username]));
    for (const id of ["ev-agent", "tr-agent"]) {
      const select = $(id);
      const value = select.value;
      select.replaceChildren(select.options[0], ...users.filter((u) => u.role === "agent" || u.role === "supervisor")
        .map((u) => h("option", { value: u.id }, u.display_name || u.username)));
      select.value = value;
    }
  } catch (err) {
    toast(`Names could not be loaded: ${problemText(err)}.`, "error");
  }
}

for (const id of ["ev-agent", "ev-kind", "ev-state"]) $(id)?.addEventListener("change", debounce(() => loadList(), 150));
$("ev-filters").addEventListener("submit", (e) => { e.preventDefault(); loadList(); });
$("tr-agent")?.addEventListener("change", () => loadTrends());
// frame.js follows the event stream and hands every event on as "sc:event".
document.addEventListener("sc:event", (e) => {
  const type = e.detail?.type ?? "";
  if (type === "quality.scorecard_changed") loadCards();
  if (type.startsWith("quality.evaluation_")) { loadList(); loadTrends(); }
});

await Promise.all([loadPeople(), loadCards()]);
loadList();
loadTrends();
