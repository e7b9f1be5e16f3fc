// Admin › Users: list, add (errors shown next to the field), change role, (de)activate.
import { api, ApiError } from "./api.js";

const body = document.getElementById("users-body");
const form = document.getElementById("new-user");
const statusEl = document.getElementById("new-user-status");

function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

async function load() {
  const users = await api("GET", "/api/v1/users");
  body.replaceChildren(...users.map(row));
}

function row(u) {
  const tr = document.createElement("tr");
  tr.dataset.username = u.username;
  const role = document.createElement("select");
  role.setAttribute("aria-label", `Role of ${u.username}`);
  for (const r of ["agent", "supervisor", "admin"]) role.add(new Option(r, r, false, r === u.role));
  role.addEventListener("change", () => update(u, { role: role.value }, role));
  const roleTd = document.createElement("td"); roleTd.append(role);
  const st = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = u.is_active ? "badge" : "badge off";
  badge.textContent = u.is_active ? "active" : "deactivated";
  st.append(badge);
  const act = document.createElement("td");
  const btn = document.createElement("button");
  btn.className = "btn small"; btn.type = "button";
  btn.textContent = u.is_active ? "Deactivate" : "Reactivate";
  btn.addEventListener("click", () => update(u, { is_active: !u.is_active }, btn));
  act.append(btn);
  tr.append(cell(u.username), cell(u.display_name), roleTd, st, act);
  return tr;
}

async function update(u, patch, control) {
  try { await api("PATCH", `/api/v1/users/${u.id}`, patch); }
  catch (e) { alert(e.message); }
  await load();
  control?.focus?.();
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  const data = Object.fromEntries(new FormData(form));
  for (const k of ["display_name", "email"]) if (!data[k]) delete data[k];
  try {
    const u = await api("POST", "/api/v1/users", data);
    statusEl.textContent = `Added ${u.username}.`;
    form.reset();
    await load();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    statusEl.textContent = "";
    const fields = err.fieldErrors;
    if (!Object.keys(fields).length) statusEl.textContent = err.message;
    for (const [f, msg] of Object.entries(fields)) {
      const p = form.querySelector(`.field-error[data-for="${f}"]`);
      if (p) { p.textContent = msg; form.elements[f]?.setAttribute("aria-invalid", "true"); }
      else statusEl.textContent = msg;
    }
  }
});

document.addEventListener("sc:event", (e) => { if (e.detail.type.startsWith("user.")) load(); });
load();
