// What the list pages share (recordings, survey answers): the filters' query (agent, queue,
// the user's local days), one load at a time, and the names of queues and agents for the
// filter menus and the rows.
import { api, ApiError } from "./api.js";
import { h, toast } from "./dom.js";

export const problemText = (err) => (err instanceof ApiError ? err.message : "the server could not be reached");

// The query of a listing: up to 500 rows, the chosen agent and queue, and the dates as the
// user's local days: from the start of "From" to the end of "To".
export function filterQuery({ agent, queue, since, until }) {
  const q = new URLSearchParams({ limit: "500" });
  if (agent?.value) q.set("agent_id", agent.value);
  if (queue.value) q.set("queue_id", queue.value);
  if (since.value) q.set("since", new Date(`${since.value}T00:00:00`).toISOString());
  if (until.value) {
    const end = new Date(`${until.value}T00:00:00`);
    end.setDate(end.getDate() + 1);
    q.set("until", end.toISOString());
  }
  return q.toString();
}

// ``run`` one call at a time: a call arriving meanwhile (an event) runs it once more after.
export function oneAtATime(run) {
  let loading = null;
  let again = false;
  return async function load() {
    if (loading) { again = true; return loading; }
    loading = (async () => { do { again = false; await run(); } while (again); })();
    try { await loading; } finally { loading = null; }
  };
}

function fill(select, allLabel, entries) {
  if (!select) return;
  const value = select.value;
  select.replaceChildren(h("option", { value: "" }, allLabel),
    ...[...entries].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]) => h("option", { value: id }, name)));
  select.value = value;
}

// Queue names (always) and people's names (``agent`` given: supervisors and administrators),
// filled into the filter menus: ``{queues, people}``, maps of id → name.
export async function loadNames({ queue, agent }) {
  let queues = new Map();
  let people = new Map();
  try {
    const qs = await api("GET", "/api/v1/queues");
    queues = new Map(qs.map((q) => [q.queue_id, q.name || q.queue_id]));
    fill(queue, "All queues", queues);
    if (agent) {
      const users = await api("GET", "/api/v1/users");
      people = new Map(users.map((u) => [u.id, u.display_name || u.username]));
      fill(agent, "All agents", people);
    }
  } catch (err) {
    toast(`Names could not be loaded: ${problemText(err)}.`, "error");
  }
  return { queues, people };
}
