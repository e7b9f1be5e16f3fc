// Admin › Phone numbers & hours: business hours (a week and dated exceptions, in a time
// zone), voice menus (IVR: a prompt and where each key leads), and the inbound numbers
// (DIDs): where each goes, which hours it follows and where it goes when closed.
import { api, ApiError } from "./api.js";
import { h, showFieldErrors } from "./dom.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const hoursBody = document.getElementById("hours-body");
const didsBody = document.getElementById("dids-body");
const form = document.getElementById("hours-form");
const statusEl = document.getElementById("hours-status");
let editing = null; // the name of the business hours in the form, or null for a new one
let hoursList = [];

// "mon-fri 08:00-18:00", "sat 09:00-13:00,14:00-16:00", "sun closed" -> {mon: [...], ...};
// a malformed line is reported on the field, naming the line.
function parseWeek(text) {
  const weekly = {};
  text.split("\n").map((l) => l.trim()).filter(Boolean).forEach((line, i) => {
    const [days, ...rest] = line.split(/\s+/);
    const ranges = rest.join(" ");
    const span = [];
    for (const part of days.toLowerCase().split(",")) {
      const [first, last = first] = part.split("-");
      const a = DAYS.indexOf(first), b = DAYS.indexOf(last);
      if (a < 0 || b < 0) throw fieldError("weekly", `line ${i + 1}: "${days}" is not a day or days (mon … sun, mon-fri)`);
      for (let k = a; ; k = (k + 1) % 7) { span.push(DAYS[k]); if (k === b) break; }
    }
    if (!ranges) throw fieldError("weekly", `line ${i + 1}: give the days, then the hours, e.g. "mon-fri 08:00-18:00"`);
    for (const d of span) weekly[d] = ranges.toLowerCase() === "closed" ? [] : ranges.split(",").map((r) => r.trim()).filter(Boolean);
  });
  for (const d of Object.keys(weekly)) if (!weekly[d].length) delete weekly[d];
  return weekly;
}

// "2026-12-25 Christmas Day" (closed) or "2026-12-24 09:00-12:00[,13:00-15:00]" (special hours)
function parseExceptions(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const [date, ...rest] = line.split(/\s+/);
    const tail = rest.join(" ");
    return /^\d{1,2}:\d{2}\s*-/.test(tail)
      ? { date, hours: tail.split(",").map((r) => r.trim()).filter(Boolean) }
      : { date, name: tail };
  });
}

function fieldError(field, message) {
  return new ApiError({ status: 422, detail: message, errors: [{ field, message }] });
}

const weekText = (weekly) => {
  // Group days with the same ranges back into spans for display and editing.
  const lines = [];
  let i = 0;
  while (i < 7) {
    const ranges = (weekly[DAYS[i]] ?? []).join(",");
    let j = i;
    while (j + 1 < 7 && (weekly[DAYS[j + 1]] ?? []).join(",") === ranges) j++;
    if (ranges) lines.push(`${i === j ? DAYS[i] : `${DAYS[i]}-${DAYS[j]}`} ${ranges}`);
    i = j + 1;
  }
  return lines;
};
const exceptionText = (e) => `${e.date} ${e.hours.length ? e.hours.join(",") : (e.name || "closed")}`.trim();

function localTime(iso, zone) {
  if (!iso) return "";
  try {
    return new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: zone }).format(new Date(iso));
  } catch { return iso; }
}

function hoursRow(x) {
  const now = x.open_now ? "Open" : "Closed";
  const until = x.next_change ? ` until ${localTime(x.next_change, x.timezone)}` : "";
  return h("tr", { "data-hours": x.name },
    h("td", {}, x.name), h("td", {}, x.timezone),
    h("td", {}, ...weekText(x.weekly).map((l) => h("div", { class: "num" }, l))),
    h("td", {}, ...(x.exceptions.length ? x.exceptions.map((e) => h("div", { class: "num" }, exceptionText(e))) : [h("span", { class: "muted" }, "none")])),
    h("td", { "data-testid": "open-now" }, h("span", { class: x.open_now ? "badge" : "badge off" }, now), h("span", { class: "muted" }, until)),
    h("td", {},
      h("button", { class: "btn small", type: "button", "aria-label": `Edit ${x.name}`, onclick: () => edit(x) }, "Edit"), " ",
      h("button", { class: "btn small bad", type: "button", "aria-label": `Remove ${x.name}`, onclick: () => remove(x) }, "Remove")));
}

function didRow(d) {
  const dest = h("input", { class: "compact", value: d.destination, "aria-label": `Destination of ${d.number}`,
    "aria-describedby": "did-dest-help", autocomplete: "off" });
  const hoursSel = h("select", { class: "compact", "aria-label": `Business hours of ${d.number}` },
    h("option", { value: "" }, "always open"),
    hoursList.map((x) => h("option", { value: x.name, selected: x.name === d.hours }, x.name)));
  const closed = h("input", { class: "compact", value: d.closed_destination ?? "", placeholder: "480 (closed)",
    "aria-label": `Where ${d.number} goes when closed` });
  const status = h("span", { class: "field-error", role: "status" });
  const save = h("button", { class: "btn small", type: "button", onclick: async () => {
    status.textContent = "";
    for (const i of [dest, closed]) i.removeAttribute("aria-invalid");
    try {
      await api("PATCH", `/api/v1/telephony/dids/${encodeURIComponent(d.number)}`,
        { destination: dest.value.trim(), hours: hoursSel.value, closed_destination: hoursSel.value ? closed.value.trim() : "" });
      await load();
      document.querySelector(`tr[data-did="${CSS.escape(d.number)}"] [data-testid="did-status"]`)?.replaceChildren("Saved.");
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      status.textContent = e.message;
      (e.fieldErrors.destination ? dest : closed).setAttribute("aria-invalid", "true");
    }
  } }, "Save");
  const remove = h("button", { class: "btn small bad", type: "button", "aria-label": `Remove ${d.number}`, onclick: async () => {
    if (!confirm(`Remove the phone number ${d.number}? Its calls are no longer answered.`)) return;
    try { await api("DELETE", `/api/v1/telephony/dids/${encodeURIComponent(d.number)}`); await load(); }
    catch (e) { if (!(e instanceof ApiError)) throw e; status.textContent = e.message; }
  } }, "Remove");
  status.dataset.testid = "did-status";
  return h("tr", { "data-did": d.number },
    h("td", { class: "num" }, d.number), h("td", {}, dest),
    h("td", {}, hoursSel), h("td", {}, closed), h("td", {}, save, " ", remove, " ", status));
}

// ---- voice menus --------------------------------------------------------------------------
const ivrBody = document.getElementById("ivr-body");
const ivrForm = document.getElementById("ivr-form");
const ivrStatus = document.getElementById("ivr-status");
let ivrEditing = null; // the name of the voice menu in the form, or null for a new one

// "2 = queue:support" a line -> {"2": "queue:support"}; a malformed line is reported on the
// Options field, naming the line.
function parseOptions(text) {
  const options = {};
  text.split("\n").map((l) => l.trim()).filter(Boolean).forEach((line, i) => {
    const at = line.indexOf("=");
    const key = at < 0 ? "" : line.slice(0, at).trim();
    const dest = at < 0 ? "" : line.slice(at + 1).trim();
    if (!key || !dest) throw fieldError("options", `line ${i + 1}: write the key, "=" and where it leads, e.g. "2 = queue:support"`);
    if (key in options) throw fieldError("options", `line ${i + 1}: key ${key} is given twice`);
    options[key] = dest;
  });
  return options;
}
const optionsText = (options) => Object.entries(options).map(([k, v]) => `${k} = ${v}`);
const shorten = (text, n = 60) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

function menuRow(m) {
  return h("tr", { "data-menu": m.name },
    h("td", {}, h("code", {}, m.name)),
    h("td", { title: m.prompt }, shorten(m.prompt)),
    h("td", {}, ...Object.entries(m.options).map(([k, v]) => h("div", { class: "num" }, `${k} → ${v}`))),
    h("td", {}, m.default),
    h("td", {},
      h("button", { class: "btn small", type: "button", "aria-label": `Edit ${m.name}`, onclick: () => editMenu(m) }, "Edit"), " ",
      h("button", { class: "btn small bad", type: "button", "aria-label": `Delete ${m.name}`, onclick: () => deleteMenu(m) }, "Delete")));
}

async function loadMenus() {
  const menus = await api("GET", "/api/v1/telephony/ivr-menus");
  ivrBody.replaceChildren(...(menus.length ? menus.map(menuRow)
    : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No voice menus yet."))]));
}

function editMenu(m) {
  ivrEditing = m.name;
  showFieldErrors(ivrForm, null, ivrStatus);
  const el = ivrForm.elements;
  el.name.value = m.name;
  el.name.readOnly = true;
  el.prompt.value = m.prompt;
  el.options.value = optionsText(m.options).join("\n");
  el.default.value = m.default;
  el.timeout_seconds.value = m.timeout_seconds;
  el.attempts.value = m.attempts;
  el.invalid_prompt.value = m.invalid_prompt;
  document.getElementById("ivr-form-title").textContent = `Change voice menu ${m.name}`;
  el.prompt.focus();
}

async function deleteMenu(m) {
  if (!confirm(`Delete the voice menu ${m.name}?`)) return;
  try {
    await api("DELETE", `/api/v1/telephony/ivr-menus/${encodeURIComponent(m.name)}`);
    ivrStatus.textContent = `Deleted ${m.name}.`;
    if (ivrEditing === m.name) ivrForm.reset();
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    ivrStatus.textContent = `Not deleted: ${e.message}.`; // 409: a DID or another menu leads to it
  }
  await loadMenus();
}

ivrForm.addEventListener("reset", () => {
  ivrEditing = null;
  ivrForm.elements.name.readOnly = false;
  showFieldErrors(ivrForm, null, ivrStatus);
  document.getElementById("ivr-form-title").textContent = "Add a voice menu";
});
ivrForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  ivrStatus.textContent = "";
  const el = ivrForm.elements;
  const name = el.name.value.trim().toLowerCase();
  try {
    if (!name) throw fieldError("name", "give the menu a name, e.g. main");
    const body = { prompt: el.prompt.value.trim(), options: parseOptions(el.options.value), default: el.default.value.trim() || "reject" };
    if (el.timeout_seconds.value !== "") body.timeout_seconds = Number(el.timeout_seconds.value);
    if (el.attempts.value !== "") body.attempts = Number(el.attempts.value);
    if (el.invalid_prompt.value.trim()) body.invalid_prompt = el.invalid_prompt.value.trim();
    await api("PUT", `/api/v1/telephony/ivr-menus/${encodeURIComponent(name)}`, body);
    ivrForm.reset(); // clears the errors too
    ivrStatus.textContent = `Saved ${name}.`;
    await loadMenus();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    // "options.9": the Options field shows it, saying which key.
    for (const [f, msg] of Object.entries(err.fieldErrors)) {
      const key = f.startsWith("options.") ? f.slice("options.".length) : null;
      if (key && !msg.startsWith("key ")) err.fieldErrors[f] = `key ${key}: ${msg}`;
    }
    showFieldErrors(ivrForm, err, ivrStatus);
  }
});

// ---- adding a phone number ----------------------------------------------------------------
const didForm = document.getElementById("did-form");
const didFormStatus = document.getElementById("did-form-status");
didForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  didFormStatus.textContent = "";
  const number = didForm.elements.number.value.trim();
  try {
    await api("POST", "/api/v1/telephony/dids", { number, destination: didForm.elements.destination.value.trim() });
    showFieldErrors(didForm, null, didFormStatus);
    didForm.reset();
    didFormStatus.textContent = `Added ${number}.`;
    await load();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    showFieldErrors(didForm, err, didFormStatus);
  }
});

async function load() {
  hoursList = await api("GET", "/api/v1/telephony/business-hours");
  hoursBody.replaceChildren(...(hoursList.length ? hoursList.map(hoursRow)
    : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No business hours yet: every number is always open."))]));
  const dids = await api("GET", "/api/v1/telephony/dids");
  didsBody.replaceChildren(...(dids.length ? dids.map(didRow)
    : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No phone numbers yet (sparklecomm did add, or the API)."))]));
}

function edit(x) {
  editing = x.name;
  form.elements.name.value = x.name;
  form.elements.name.readOnly = true;
  form.elements.timezone.value = x.timezone;
  form.elements.weekly.value = weekText(x.weekly).join("\n");
  form.elements.exceptions.value = x.exceptions.map(exceptionText).join("\n");
  document.getElementById("hours-form-title").textContent = `Change ${x.name}`;
  form.elements.timezone.focus();
}

function reset() {
  editing = null;
  form.elements.name.readOnly = false;
  document.getElementById("hours-form-title").textContent = "Add business hours";
}

async function remove(x) {
  try { await api("DELETE", `/api/v1/telephony/business-hours/${encodeURIComponent(x.name)}`); statusEl.textContent = `Removed ${x.name}.`; }
  catch (e) { statusEl.textContent = e.message; }
  await load();
}

form.addEventListener("reset", reset);
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  statusEl.textContent = "";
  try {
    const body = {
      timezone: form.elements.timezone.value.trim(),
      weekly: parseWeek(form.elements.weekly.value),
      exceptions: parseExceptions(form.elements.exceptions.value),
    };
    if (editing) await api("PATCH", `/api/v1/telephony/business-hours/${encodeURIComponent(editing)}`, body);
    else await api("POST", "/api/v1/telephony/business-hours", { name: form.elements.name.value.trim(), ...body });
    showFieldErrors(form, null, null);
    statusEl.textContent = `Saved ${editing ?? form.elements.name.value.trim()}.`;
    form.reset();
    await load();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    showFieldErrors(form, err, statusEl);
  }
});

load();
loadMenus();
