// Critical alerts made hard to miss (opt-in, remembered per browser): a short chime
// (Web Audio, no sound file) and a desktop notification while the page is open. Switched
// on by a click (browsers allow sound and ask for the notification permission only after
// a user gesture); after a reload the choice is remembered, and sound resumes at the next
// click or key press on the page if the browser held it back.

import { alertTypeLabel } from "./labels.js";

const STORAGE_KEY = "proctor.console.criticalAlerts";

export class CriticalNotifier {
  /**
   * @param {{toggle: HTMLButtonElement, status: HTMLElement,
   *          onActivate?: (alert: any) => void}} els
   */
  constructor({ toggle, status, onActivate }) {
    this.toggle = toggle;
    this.status = status;
    this.onActivate = onActivate;
    this.context = null;
    this.chimes = 0;
    this.notifications = 0;
    let remembered = null;
    try {
      remembered = window.localStorage.getItem(STORAGE_KEY);
    } catch {
      /* storage blocked: off */
    }
    this.enabled = remembered === "on";
    toggle.addEventListener("click", () => (this.enabled ? this.disable() : this.enable()));
    // sound needs a gesture on this page: the first click or key press after a reload
    const wake = () => {
      if (this.enabled) this.audio();
    };
    window.addEventListener("pointerdown", wake, { capture: true });
    window.addEventListener("keydown", wake, { capture: true });
    this.render();
  }

  get permission() {
    return "Notification" in window ? Notification.permission : "unsupported";
  }

  async enable() {
    this.enabled = true;
    this.remember();
    this.audio(); // inside the click: allowed to start
    if (this.permission === "default") {
      try {
        await Notification.requestPermission();
      } catch {
        /* an old browser: sound only */
      }
    }
    this.render();
  }

  disable() {
    this.enabled = false;
    this.remember();
    this.render();
  }

  remember() {
    try {
      window.localStorage.setItem(STORAGE_KEY, this.enabled ? "on" : "off");
    } catch {
      /* not remembered */
    }
  }

  render() {
    this.toggle.setAttribute("aria-pressed", String(this.enabled));
    this.toggle.dataset.enabled = String(this.enabled);
    this.toggle.textContent = this.enabled
      ? "Critical: chime + notify ON 严重告警提醒：开"
      : "Critical: chime + notify off 严重告警提醒：关";
    let words = "";
    if (this.enabled) {
      const permission = this.permission;
      if (permission === "granted") words = "Chime and desktop notification 提示音与桌面通知";
      else if (permission === "denied" || permission === "unsupported") {
        words = "Chime only: desktop notifications are blocked by the browser 仅提示音（浏览器已阻止桌面通知）";
      } else words = "Chime; allow notifications when the browser asks 提示音；请允许桌面通知";
    }
    this.status.textContent = words;
    this.status.dataset.permission = this.permission;
    this.status.dataset.chimes = String(this.chimes);
    this.status.dataset.notifications = String(this.notifications);
  }

  audio() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    if (!this.context) {
      try {
        this.context = new Context();
      } catch {
        return null;
      }
    }
    if (this.context.state === "suspended") this.context.resume().catch(() => {});
    return this.context;
  }

  /** Two short tones, 880 Hz then 660 Hz. */
  chime() {
    const ctx = this.audio();
    if (!ctx) return false;
    const t0 = ctx.currentTime + 0.01;
    for (const [i, freq] of [880, 660].entries()) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = freq;
      const start = t0 + i * 0.18;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.3, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.16);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start);
      osc.stop(start + 0.17);
    }
    return true;
  }

  /**
   * A critical alert was pushed as new (or an alert became critical): chime, notify.
   * @returns {boolean} whether anything was done
   */
  critical(alert, candidateName) {
    if (!this.enabled || !alert || alert.severity !== "critical") return false;
    if (this.chime()) this.chimes += 1;
    if (this.permission === "granted") {
      try {
        const n = new Notification(`严重告警 Critical alert: ${alertTypeLabel(alert.type)}`, {
          body: `${candidateName || `#${alert.candidate_id}`}${alert.message ? ` — ${alert.message}` : ""}`,
          tag: `proctor-alert-${alert.id}`,
          requireInteraction: false,
        });
        n.onclick = () => {
          window.focus();
          this.onActivate?.(alert);
          n.close();
        };
        this.notifications += 1;
      } catch {
        /* e.g. a page not allowed to construct notifications: the chime still sounded */
      }
    }
    this.status.dataset.chimes = String(this.chimes);
    this.status.dataset.notifications = String(this.notifications);
    this.status.dataset.lastAlert = String(alert.id);
    return true;
  }
}
