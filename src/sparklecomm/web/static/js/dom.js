// Tiny DOM helpers shared by the pages (no framework, no build step).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

export function percent(x) { return x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`; }

export function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

export function toast(message, kind = "") {
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  document.body.append(el);
  setTimeout(() => el.remove(), 4000);
}

export const STATE_LABEL = {
  available: "Ready", reserved: "Offered", busy: "Busy", wrap_up: "Wrap-up",
  break: "Break", logged_out: "Logged out",
};

export function statePill(state, reason) {
  const label = STATE_LABEL[state] ?? state;
  // Reserved by a colleague's consultation: the agent's phone rings for it, no offer.
  const text = state === "break" && reason ? `${label} · ${reason}`
    : state === "reserved" && reason === "consult" ? "Consult ringing" : label;
  return h("span", { class: "pill", dataset: { state } }, text);
}

// Field errors of an RFC 9457 problem next to the inputs of a form (name = field).
export function showFieldErrors(form, err, statusEl) {
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  const fields = err?.fieldErrors ?? {};
  let shown = false;
  for (const [f, msg] of Object.entries(fields)) {
    // The field itself ("on_closed.divert_to"), else the form field it is part of
    // ("weekly.mon[0]", "exceptions[1].date").
    const key = f.split(/[.[]/)[0];
    const p = form.querySelector(`.field-error[data-for="${f}"]`) ?? form.querySelector(`.field-error[data-for="${key}"]`);
    if (p) {
      p.textContent = msg;
      const input = form.elements[key] ?? p.closest(".field")?.querySelector("input, select, textarea");
      input?.setAttribute("aria-invalid", "true");
      shown = true;
    }
  }
  if (statusEl) statusEl.textContent = shown ? "" : (err?.message ?? "");
}
