// The real-time contract: fetch the initial state, then follow the event stream over a
// WebSocket, resuming from the last event id seen after any disconnect (no gaps, no dups).
import { api } from "./api.js";

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
    this.ws = ws;
    this.onStatus("connecting");
    ws.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      if (data.op === "hello") { this.retry = 500; this.onStatus("live"); return; }
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
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    };
  }

  close() { this.closed = true; this.ws?.close(); }
}
