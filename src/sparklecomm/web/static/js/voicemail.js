// Voicemail: the messages in the boxes this user may open, newest first. Each plays in the
// page (the session cookie authenticates the recording's URL), is marked heard when playback
// starts (or by its button) and can be deleted. New messages appear when the event stream
// says one was left (voicemail.left); heard and deleted ones from other windows follow too.
import { api, ApiError } from "./api.js";
import { duration, h, toast } from "./dom.js";

const base = "/api/v1/telephony/voicemail";
const body = document.getElementById("vm-body");
const statusEl = document.getElementById("vm-status");
const boxSelect = document.getElementById("vm-box"); // supervisors and administrators only
let messages = [];
let loading = null;
let again = false;

function problemText(err) {
  if (err instanceof ApiError) return err.message;
  return "the server could not be reached";
}

function from(m) {
  return m.caller_name ? `${m.caller_name} (${m.caller})` : m.caller;
}

function heardBadge(m) {
  return m.heard
    ? h("span", { class: "badge off", "data-testid": "heard" }, "Heard")
    : h("span", { class: "badge", "data-testid": "new" }, "New");
}

function row(m) {
  const when = new Date(m.created_at);
  const audio = h("audio", {
    controls: true, preload: "none", src: `${base}/${encodeURIComponent(m.id)}/audio`,
    "aria-label": `Message from ${from(m)}`,
  });
  audio.addEventListener("playing", () => { if (!m.heard) markHeard(m, true); });
  audio.addEventListener("error", () => toast(`The recording of the message from ${from(m)} could not be loaded.`, "error"));
  return h("tr", { "data-message": m.id, "data-box": m.box, "data-heard": m.heard ? "true" : "false" },
    h("td", {}, m.caller_name ? [h("strong", {}, m.caller_name), " ", h("span", {}, m.caller)] : m.caller),
    h("td", {}, h("code", {}, m.box)),
    h("td", {}, h("time", { datetime: m.created_at }, when.toLocaleString())),
    h("td", { class: "num" }, duration(m.seconds)),
    h("td", {}, heardBadge(m)),
    h("td", {}, audio),
    h("td", {}, h("div", { class: "row" },
      m.heard ? null : h("button", { class: "btn small", type: "button", onclick: () => markHeard(m, false) }, "Mark as heard"),
      h("button", { class: "btn small bad", type: "button", onclick: () => remove(m) }, "Delete"))));
}

function render() {
  const box = boxSelect?.value ?? "";
  if (boxSelect) {
    const boxes = [...new Set(messages.map((m) => m.box))].sort();
    if (box && !boxes.includes(box)) boxes.push(box);
    boxSelect.replaceChildren(h("option", { value: "" }, "All boxes"),
      ...boxes.map((b) => h("option", { value: b }, `Box ${b}`)));
    boxSelect.value = box;
  }
  const shown = box ? messages.filter((m) => m.box === box) : messages;
  if (!shown.length) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted", "data-testid": "voicemail-empty" }, "No messages.")));
  } else {
    // Keep a row whose recording is playing: replacing it would stop the playback.
    const playing = new Map([...body.querySelectorAll("tr[data-message]")]
      .filter((tr) => { const a = tr.querySelector("audio"); return a && !a.paused; })
      .map((tr) => [tr.dataset.message, tr]));
    body.replaceChildren(...shown.map((m) => {
      const tr = playing.get(m.id);
      if (!tr) return row(m);
      const fresh = row(m);
      fresh.replaceChild(tr.querySelector("audio").closest("td"), fresh.children[5]);
      return fresh;
    }));
  }
  const fresh = shown.filter((m) => !m.heard).length;
  statusEl.textContent = shown.length ? `${shown.length} message${shown.length === 1 ? "" : "s"}, ${fresh} new.` : "";
}

// One load at a time; an event arriving meanwhile loads once more afterwards.
async function load() {
  if (loading) { again = true; return loading; }
  loading = (async () => {
    do {
      again = false;
      try {
        messages = await api("GET", base);
        render();
      } catch (err) {
        statusEl.textContent = `Messages could not be loaded: ${problemText(err)}.`;
        toast(`Messages could not be loaded: ${problemText(err)}.`, "error");
      }
    } while (again);
  })();
  try { await loading; } finally { loading = null; }
}

async function markHeard(m, byPlaying) {
  try {
    const updated = await api("POST", `${base}/${encodeURIComponent(m.id)}/heard`);
    Object.assign(m, updated);
    render();
    if (!byPlaying) toast(`Marked the message from ${from(m)} as heard.`);
  } catch (err) {
    toast(`Could not mark the message as heard: ${problemText(err)}.`, "error");
  }
}

async function remove(m) {
  if (!confirm(`Delete the message from ${from(m)}? Its recording is deleted too.`)) return;
  try {
    await api("DELETE", `${base}/${encodeURIComponent(m.id)}`);
    messages = messages.filter((x) => x.id !== m.id);
    render();
    toast(`Deleted the message from ${from(m)}.`);
  } catch (err) {
    toast(`Could not delete the message: ${problemText(err)}.`, "error");
    load();
  }
}

document.getElementById("vm-refresh").addEventListener("click", () => load());
boxSelect?.addEventListener("change", render);
// frame.js follows the event stream and hands every event on as "sc:event".
document.addEventListener("sc:event", (e) => {
  if (e.detail?.type?.startsWith("voicemail.")) load();
});

load();
