// The real-time contract: fetch the initial state, then follow the event stream over a
// WebSocket, resuming from the last event id seen after any disconnect (no gaps, no dups).
import { api } from "./api.js";

// The server's clock as this page sees it: timers (offer countdown, time in state, talk and
// wrap-up time) are computed from server timestamps, so they must not use the browser's own
// clock, which may be off by seconds. The skew comes from the hello frame's server_time.
export const serverClock = {
  skew: 0,
  now() { return Date.now() + this.skew; },
  sync(serverMs, sentAt, receivedAt) {
    // Half the round trip is the best guess of when the server stamped it.
    this.skew = serverMs - (sentAt + receivedAt) / 2;
  },
};

export class EventClient {
  constructor({ onEvent = () => {}, onStatus = () => {} } = {}) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.lastEventId = null;
    this.state = null;
    this.retry = 500;
    this.closed = false;
  }

  async start() {
    const snapshot = await api("GET", "/api/v1/events/state");
    this.state = snapshot.state;
    this.lastEventId = snapshot.last_event_id;
    this.connect();
    return snapshot;
  }

  connect() {
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/api/v1/events/ws?last_event_id=${this.lastEventId}`;
    const ws = new WebSocket(url);
    const openedAt = Date.now();
    this.ws = ws;
    this.onStatus("connecting");
    ws.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      if (data.op === "hello") {
        if (typeof data.server_time === "number") serverClock.sync(data.server_time, Math.max(openedAt, Date.now() - 1000), Date.now());
        this.retry = 500; this.onStatus("live"); return;
      }
      const batch = data.op === "event" ? [data.event] : data.op === "events" ? data.events : [];
      for (const ev of batch) {
        if (ev.id <= this.lastEventId) continue;
        this.lastEventId = ev.id;
        this.onEvent(ev);
      }
    };
    ws.onclose = (e) => {
      this.onStatus("offline");
      if (this.closed || e.code === 4401) return;
      // 4429: this page fell too far behind the live stream; the server closed it after the
      // last event it delivered. Reconnect at once: the missed events come from the database.
      if (e.code === 4429) { this.connect(); return; }
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    };
  }

  close() { this.closed = true; this.ws?.close(); }
}
