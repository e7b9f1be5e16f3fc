// Admin › Phones: the organisation's extensions, whose agent each rings for, and the two
// switches an administrator flips most (do-not-disturb, auto-answer); errors next to the field.
import { api, ApiError } from "./api.js";
import { h, showFieldErrors, toast } from "./dom.js";

const body = document.getElementById("phones-body");
const form = document.getElementById("phone-form");
const statusEl = document.getElementById("phone-status");
let users = [];

function userName(id) {
  const u = users.find((x) => x.id === id);
  return u ? `${u.display_name || u.username} (${u.username})` : id;
}

function switchBox(ext, setting, label, checked) {
  const box = h("input", { type: "checkbox", "aria-label": `${label} for ${ext.number}` });
  box.checked = checked;
  box.addEventListener("change", async () => {
    try {
      await api("PUT", `/api/v1/telephony/extensions/${encodeURIComponent(ext.number)}/call-settings`, { [setting]: box.checked });
      toast(`${label} ${box.checked ? "on" : "off"} for ${ext.number}.`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      box.checked = !box.checked;
      toast(`${label}: ${e.message}`, "error");
    }
  });
  return box;
}

async function load() {
  const [phones, people] = await Promise.all([api("GET", "/api/v1/telephony/extensions"), api("GET", "/api/v1/users")]);
  users = people;
  const select = form.elements.user_id;
  const keep = select.value;
  select.replaceChildren(h("option", { value: "" }, "Nobody (a shared phone)"),
    ...users.map((u) => h("option", { value: u.id }, `${u.display_name || u.username} (${u.username})`)));
  select.value = keep;
  const settings = await Promise.all(phones.map((p) =>
    api("GET", `/api/v1/telephony/extensions/${encodeURIComponent(p.number)}/call-settings`)));
  body.replaceChildren(...phones.map((p, i) => h("tr", { "data-extension": p.number },
    h("td", {}, h("code", {}, p.number)), h("td", {}, p.display_name || ""),
    h("td", {}, p.user_id ? userName(p.user_id) : h("span", { class: "muted" }, "shared")),
    h("td", {}, switchBox(p, "dnd", "Do not disturb", settings[i].dnd)),
    h("td", {}, switchBox(p, "auto_answer", "Auto-answer", settings[i].auto_answer)),
    h("td", {}, h("button", { class: "btn small bad", type: "button", onclick: () => remove(p) }, "Delete")))));
  if (!phones.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No phone yet.")));
}

async function remove(p) {
  if (!confirm(`Delete extension ${p.number}? Its phones can no longer log in.`)) return;
  try { await api("DELETE", `/api/v1/telephony/extensions/${encodeURIComponent(p.number)}`); }
  catch (e) { if (!(e instanceof ApiError)) throw e; toast(e.message, "error"); }
  load();
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const d = Object.fromEntries(new FormData(form));
  const payload = { number: d.number.trim(), password: d.password, display_name: d.display_name.trim() || null, user_id: d.user_id || null };
  try {
    await api("POST", "/api/v1/telephony/extensions", payload);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    showFieldErrors(form, err, statusEl);
    return;
  }
  showFieldErrors(form, null, statusEl);
  form.reset();
  statusEl.textContent = `Added extension ${payload.number}.`;
  load();
});

load();
