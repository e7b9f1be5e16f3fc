// Admin › Phone numbers & hours: business hours (a week and dated exceptions, in a time
// zone) and which hours each inbound number (DID) follows, with where it goes when closed.
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
  const hoursSel = h("select", { class: "compact", "aria-label": `Business hours of ${d.number}` },
    h("option", { value: "" }, "always open"),
    hoursList.map((x) => h("option", { value: x.name, selected: x.name === d.hours }, x.name)));
  const closed = h("input", { class: "compact", value: d.closed_destination ?? "", placeholder: "480 (closed)",
    "aria-label": `Where ${d.number} goes when closed` });
  const status = h("span", { class: "field-error", role: "status" });
  const save = h("button", { class: "btn small", type: "button", onclick: async () => {
    status.textContent = "";
    try {
      await api("PATCH", `/api/v1/telephony/dids/${encodeURIComponent(d.number)}`,
        { hours: hoursSel.value, closed_destination: hoursSel.value ? closed.value.trim() : "" });
      await load();
      document.querySelector(`tr[data-did="${CSS.escape(d.number)}"] [data-testid="did-status"]`)?.replaceChildren("Saved.");
    } catch (e) { status.textContent = e.message; closed.setAttribute("aria-invalid", "true"); }
  } }, "Save");
  status.dataset.testid = "did-status";
  return h("tr", { "data-did": d.number },
    h("td", { class: "num" }, d.number), h("td", {}, d.destination),
    h("td", {}, hoursSel), h("td", {}, closed), h("td", {}, save, " ", status));
}

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
