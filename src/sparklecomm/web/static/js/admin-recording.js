// Admin › Call recording: the organisation's recording policy (all calls, the queues and
// extensions whose calls are recorded, how many days recordings are kept). Problems the
// server finds (an unknown extension) appear next to their field.
import { api, ApiError } from "./api.js";
import { h, showFieldErrors, toast } from "./dom.js";

const form = document.getElementById("policy-form");
const statusEl = document.getElementById("policy-status");
const allCalls = document.getElementById("pol-all");
const queueBox = document.getElementById("pol-queues");
const queuesEmpty = document.getElementById("pol-queues-empty");
const extensions = document.getElementById("pol-extensions");
const retention = document.getElementById("pol-retention");

function problemText(err) {
  if (err instanceof ApiError) return err.message;
  return "the server could not be reached";
}

function show(policy, queues) {
  allCalls.checked = policy.all_calls;
  for (const el of queueBox.querySelectorAll(".check")) el.remove();
  const known = new Set(queues.map((q) => q.queue_id));
  const ids = [...queues.map((q) => [q.queue_id, q.name || q.queue_id]),
    ...policy.queues.filter((id) => !known.has(id)).map((id) => [id, id])];
  queuesEmpty.textContent = ids.length ? "" : "No queues yet.";
  const error = queueBox.querySelector(".field-error");
  for (const [id, name] of ids) {
    const box = h("input", { type: "checkbox", name: "queue", value: id, "data-queue": id });
    box.checked = policy.queues.includes(id);
    queueBox.insertBefore(h("label", { class: "check" }, box, ` ${name}`), error);
  }
  extensions.value = policy.extensions.join(", ");
  retention.value = String(policy.retention_days);
}

async function load() {
  try {
    const [policy, queues] = await Promise.all([api("GET", "/api/v1/recording-policy"), api("GET", "/api/v1/queues")]);
    show(policy, queues);
  } catch (err) {
    statusEl.textContent = `The policy could not be loaded: ${problemText(err)}.`;
  }
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  statusEl.textContent = "";
  const days = Number(retention.value === "" ? "0" : retention.value);
  const body = {
    all_calls: allCalls.checked,
    queues: [...queueBox.querySelectorAll("input[name=queue]:checked")].map((b) => b.value),
    extensions: extensions.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean),
    retention_days: Number.isInteger(days) ? days : -1,
  };
  try {
    const saved = await api("PUT", "/api/v1/recording-policy", body);
    showFieldErrors(form, null, null);
    extensions.value = saved.extensions.join(", ");
    statusEl.textContent = "Saved.";
    toast("Recording policy saved.");
  } catch (err) {
    showFieldErrors(form, err, statusEl);
  }
});

// Another administrator's change shows here too.
document.addEventListener("sc:event", (e) => {
  if (e.detail?.type === "recording.policy_changed") load();
});

load();
