// A WebSocket that keeps itself connected: exponential backoff with jitter, an immediate
// retry when the browser comes back online or the tab becomes visible, and (only if the
// server sends {"type": "ping"} messages) a watchdog that drops a silent connection.
//
// Events (EventTarget):
//   "state"   detail {state: "connecting"|"open"|"closed", retryInMs?, code?}
//   "open"    detail {reconnect: boolean}   every time a connection is established
//   "message" detail <parsed JSON object>   every server message that parses
//   "close"   detail {code, reason, wasOpen}

export class ReconnectingSocket extends EventTarget {
  /**
   * @param {() => string} urlFactory called before each attempt (token may change)
   * @param {{minDelayMs?: number, maxDelayMs?: number, stableAfterMs?: number,
   *          silenceMs?: number}} [options]
   */
  constructor(urlFactory, options = {}) {
    super();
    this.urlFactory = urlFactory;
    this.minDelayMs = options.minDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 15000;
    this.stableAfterMs = options.stableAfterMs ?? 5000;
    this.silenceMs = options.silenceMs ?? 45000;
    this.ws = null;
    this.state = "closed";
    this.attempt = 0;
    this.failuresInARow = 0; // attempts that closed before ever opening
    this.openedOnce = false;
    this.stopped = true;
    this.retryTimer = null;
    this.stableTimer = null;
    this.watchdogTimer = null;
    this.lastMessageAt = 0;
    this.sawPing = false;

    this.onOnline = () => this.retryNow();
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.retryNow();
    };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    document.addEventListener("visibilitychange", this.onVisible);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    document.removeEventListener("visibilitychange", this.onVisible);
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      this.detach(ws);
      try {
        ws.close(1000, "console closed");
      } catch {
        /* already closed */
      }
    }
    this.setState("closed");
  }

  /** Drop the current connection and start afresh (e.g. the URL now names another
   * sitting); the next "open" reports reconnect: false. */
  restart() {
    this.stop();
    this.attempt = 0;
    this.failuresInARow = 0;
    this.openedOnce = false;
    this.sawPing = false;
    this.start();
  }

  /** Skip the remaining backoff wait (e.g. the network is back). */
  retryNow() {
    if (this.stopped || this.ws) return;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  // ---- internals -----------------------------------------------------------------------

  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...extra } }));
  }

  clearTimers() {
    window.clearTimeout(this.retryTimer);
    window.clearTimeout(this.stableTimer);
    window.clearInterval(this.watchdogTimer);
    this.retryTimer = this.stableTimer = this.watchdogTimer = null;
  }

  detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }

  connect() {
    if (this.stopped) return;
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.urlFactory());
    } catch {
      this.scheduleRetry(0, false);
      return;
    }
    this.ws = ws;
    let wasOpen = false;

    ws.onopen = () => {
      wasOpen = true;
      this.failuresInARow = 0;
      const reconnect = this.openedOnce;
      this.openedOnce = true;
      this.lastMessageAt = Date.now();
      // Only forget the backoff once the connection has proved stable, so a server that
      // accepts and immediately closes is not hammered.
      this.stableTimer = window.setTimeout(() => {
        this.attempt = 0;
      }, this.stableAfterMs);
      this.watchdogTimer = window.setInterval(() => this.checkSilence(), 5000);
      this.setState("open");
      this.dispatchEvent(new CustomEvent("open", { detail: { reconnect } }));
    };

    ws.onmessage = (event) => {
      this.lastMessageAt = Date.now();
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return; // not JSON: ignore
      }
      if (!data || typeof data !== "object") return;
      if (data.type === "ping") {
        this.sawPing = true;
        return;
      }
      this.dispatchEvent(new CustomEvent("message", { detail: data }));
    };

    ws.onerror = () => {
      /* a close event always follows; handled there */
    };

    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.detach(ws);
      window.clearTimeout(this.stableTimer);
      window.clearInterval(this.watchdogTimer);
      this.stableTimer = this.watchdogTimer = null;
      if (!wasOpen) this.failuresInARow += 1;
      this.dispatchEvent(
        new CustomEvent("close", {
          detail: { code: event.code, reason: event.reason, wasOpen },
        }),
      );
      this.scheduleRetry(event.code, wasOpen);
    };
  }

  checkSilence() {
    // Without server pings silence is normal (a quiet exam), so only act if pings exist.
    if (!this.sawPing || !this.ws) return;
    if (Date.now() - this.lastMessageAt > this.silenceMs) {
      try {
        this.ws.close(4000, "no message from server");
      } catch {
        /* ignore */
      }
      // Some browsers delay onclose on a dead TCP connection: force the cycle now.
      const ws = this.ws;
      if (ws && ws.onclose) ws.onclose({ code: 4000, reason: "silent", wasClean: false });
    }
  }

  scheduleRetry(code, wasOpen) {
    if (this.stopped) return;
    const base = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this.attempt);
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.attempt = Math.min(this.attempt + 1, 16);
    this.setState("closed", { retryInMs: delay, code, wasOpen });
    this.retryTimer = window.setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }
}

/**
 * ws(s)://host/path?name=value…, adding token= when a bearer token is known (the cookie
 * works too). Parameters whose value is null/undefined/"" are left out.
 */
export function socketUrl(path, params = {}) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const url = new URL(path, `${scheme}//${window.location.host}`);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") {
      url.searchParams.set(name, String(value));
    }
  }
  return url.toString();
}
