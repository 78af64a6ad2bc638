// The console's live event stream (Server-Sent Events from /api/live/events).
// EventSource reconnects by itself after a network drop and sends Last-Event-ID, so the
// server replays what was missed; an HTTP error (an ended session) closes it for good,
// which is when the app checks the session and shows the login form if needed.

export class Feed {
  constructor(onClosed) {
    this.onClosed = onClosed;
    this.handlers = {incident: new Set(), cameras: new Set(), reset: new Set(), state: new Set()};
    this.cameras = [];
    this.connected = false;
    this.source = null;
    this.retry = null;
  }

  on(type, handler) {
    this.handlers[type].add(handler);
    return () => this.handlers[type].delete(handler);
  }

  emit(type, data) {
    for (const handler of this.handlers[type]) {
      try { handler(data); } catch (err) { console.error(`feed ${type} handler failed`, err); }
    }
  }

  setConnected(connected) {
    if (this.connected === connected) return;
    this.connected = connected;
    this.emit("state", connected);
  }

  start() {
    this.stop();
    const source = new EventSource("/api/live/events");
    this.source = source;
    source.onopen = () => this.setConnected(true);
    source.addEventListener("incident", (e) => this.emit("incident", JSON.parse(e.data)));
    source.addEventListener("cameras", (e) => {
      this.cameras = JSON.parse(e.data).cameras;
      this.setConnected(true);
      this.emit("cameras", this.cameras);
    });
    source.addEventListener("reset", () => this.emit("reset", null));
    source.onerror = () => {
      this.setConnected(false);
      if (source.readyState === EventSource.CLOSED) {
        this.source = null;
        this.retry = setTimeout(() => this.onClosed(), 2000);
      }
    };
  }

  stop() {
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
    this.setConnected(false);
  }
}
