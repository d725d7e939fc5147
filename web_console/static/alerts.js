// The alert feed: one list across every candidate of the invigilator's rooms, sorted by
// severity (critical first), then time (newest first); open alerts above handled ones.
// Filters by alert type; alerts raised while their candidate's type was snoozed (静音) are
// kept apart (shown on request). One alert can be selected (keyboard triage: next,
// acknowledge, dismiss, snooze, open the candidate, send a phrase). Each item shows its
// evidence screenshot (opens larger on click or Enter), severity by colour AND by words.
//
// The feed sorts and filters by type, severity and time only; anything else an alert
// carries is shown when present (e.g. an episode's `ongoing`, `last_seen_at`,
// `peak_score`), so a richer alert object needs no change here. A reload after a
// reconnect merges without duplicates.

import {
  alertTypeLabel,
  formatClock,
  formatDateTime,
  formatDuration,
  parseTime,
  severityLabel,
  viewLabel,
} from "./labels.js";

const STATUS_WORDS = {
  open: "open 未处理",
  acknowledged: "acknowledged 已确认",
  confirmed: "confirmed 已确认",
  dismissed: "dismissed 已排除",
  closed: "closed 已关闭",
};
export const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
const NEW_MS = 8000; // how long a fresh alert stays highlighted

/** When the alert was raised (ms since the epoch; 0 when unknown). */
export function alertTime(alert) {
  const raised = parseTime(alert.raised_at) || parseTime(alert.started_at);
  return raised ? raised.getTime() : 0;
}

export function isOpen(alert) {
  return !alert.status || alert.status === "open";
}

/** The feed's order: open first, then severity (critical first), then newest, then id. */
export function compareAlerts(a, b) {
  return (
    (isOpen(a) ? 0 : 1) - (isOpen(b) ? 0 : 1) ||
    (SEVERITY_RANK[a.severity] ?? 3) - (SEVERITY_RANK[b.severity] ?? 3) ||
    alertTime(b) - alertTime(a) ||
    Number(b.id) - Number(a.id)
  );
}

export class AlertFeed {
  /**
   * @param {HTMLOListElement} list #alert-feed
   * @param {{emptyEl?: HTMLElement, countEl?: HTMLElement, maxItems?: number,
   *          nameFor?: (candidateId: any) => string|null,
   *          onOpenEvidence: (alert: any, opener: HTMLElement) => void,
   *          onCandidate: (candidateId: any) => void,
   *          onHandle?: (target: {alert?: any, candidateId?: any}, action: string,
   *                      opener: HTMLElement) => void,
   *          onSnooze?: (alert: any, opener: HTMLElement) => void,
   *          onChange?: (feed: AlertFeed) => void}} options
   */
  constructor(list, options) {
    this.list = list;
    this.options = options;
    this.maxItems = options.maxItems ?? 300;
    /** @type {Map<string, {alert: any, el: HTMLLIElement}>} */
    this.items = new Map();
    /** running and recent snoozes by id (server bodies) */
    this.snoozes = new Map();
    this.showHandled = false;
    this.showSnoozed = false;
    /** alert types shown; empty: every type */
    this.types = new Set();
    this.selectedId = null;
    this.list.dataset.showHandled = "false";
    this.updateChrome();
    this.ready = true; // onChange from now on (the page is still being set up before)
  }

  has(alertId) {
    return this.items.has(String(alertId));
  }

  get(alertId) {
    return this.items.get(String(alertId))?.alert ?? null;
  }

  get size() {
    return this.items.size;
  }

  /** Open alerts of a candidate that are not snoozed. */
  openAlertsOf(candidateId) {
    return [...this.items.values()]
      .map((i) => i.alert)
      .filter(
        (a) =>
          String(a.candidate_id) === String(candidateId) && isOpen(a) && !this.isSnoozed(a),
      );
  }

  clear() {
    this.items.clear();
    this.snoozes.clear();
    this.selectedId = null;
    this.list.replaceChildren();
    this.updateChrome();
  }

  // ---- what is shown ----------------------------------------------------------------------

  setShowHandled(show) {
    this.showHandled = Boolean(show);
    this.list.dataset.showHandled = String(this.showHandled);
    this.refresh();
  }

  setShowSnoozed(show) {
    this.showSnoozed = Boolean(show);
    this.list.dataset.showSnoozed = String(this.showSnoozed);
    this.refresh();
  }

  /** Show only these alert types (an empty list: every type). */
  setTypes(types) {
    this.types = new Set(types || []);
    this.refresh();
  }

  /** The snooze that covers an alert: the server's mark, or a known snooze of the alert's
   *  candidate and type during which it was raised (an alert pushed just as the snooze
   *  began). */
  snoozeOf(alert) {
    if (alert.snooze) return alert.snooze;
    const raised = alertTime(alert);
    for (const s of this.snoozes.values()) {
      if (String(s.candidate_id) !== String(alert.candidate_id) || s.type !== alert.type) continue;
      const from = parseTime(s.created_at)?.getTime() ?? 0;
      const to = (parseTime(s.ended_at) || parseTime(s.until))?.getTime() ?? 0;
      const seen = parseTime(alert.last_seen_at)?.getTime();
      if (from <= raised && raised < to && !(seen && seen > to)) return s;
    }
    return null;
  }

  isSnoozed(alert) {
    return this.snoozeOf(alert) !== null;
  }

  visible(alert) {
    if (!isOpen(alert) && !this.showHandled) return false;
    if (this.isSnoozed(alert) && !this.showSnoozed) return false;
    return this.types.size === 0 || this.types.has(alert.type);
  }

  /** Alerts shown, in the feed's order. */
  shownAlerts() {
    return [...this.list.children]
      .filter((li) => !li.hidden)
      .map((li) => this.items.get(li.dataset.alertId)?.alert)
      .filter(Boolean);
  }

  /** Per alert type: open (not snoozed) alerts, and all alerts held. */
  typeCounts() {
    const counts = {};
    for (const { alert } of this.items.values()) {
      const c = (counts[alert.type] ??= { open: 0, all: 0 });
      c.all += 1;
      if (isOpen(alert) && !this.isSnoozed(alert)) c.open += 1;
    }
    return counts;
  }

  /** Open alerts recorded while snoozed. */
  snoozedCount() {
    return [...this.items.values()].filter((i) => isOpen(i.alert) && this.isSnoozed(i.alert))
      .length;
  }

  // ---- snoozes ------------------------------------------------------------------------------

  setSnoozes(snoozes) {
    this.snoozes.clear();
    for (const s of snoozes || []) this.snoozes.set(String(s.id), s);
    this.refresh();
  }

  upsertSnooze(snooze) {
    if (!snooze || snooze.id === undefined) return;
    this.snoozes.set(String(snooze.id), snooze);
    this.refresh();
  }

  /** Running snoozes (not ended, not past `until`), soonest end first. */
  activeSnoozes(now = Date.now()) {
    return [...this.snoozes.values()]
      .filter((s) => !s.ended_at && (parseTime(s.until)?.getTime() ?? 0) > now)
      .sort((a, b) => parseTime(a.until) - parseTime(b.until));
  }

  /** The running snooze of a candidate's alert type, if any. */
  activeSnooze(candidateId, type) {
    return (
      this.activeSnoozes().find(
        (s) => String(s.candidate_id) === String(candidateId) && s.type === type,
      ) || null
    );
  }

  // ---- adding -------------------------------------------------------------------------------

  /**
   * Add or refresh many alerts (from GET /api/console/alerts).
   * @returns {any[]} the alerts that were not shown before
   */
  merge(alerts, { markNew = false } = {}) {
    const added = [];
    for (const alert of alerts || []) {
      if (this.put(alert, markNew)) added.push(alert);
    }
    this.trim();
    this.refresh();
    return added;
  }

  /** Add or refresh one alert. @returns {{isNew: boolean, was: any|null}} */
  add(alert, { markNew = true } = {}) {
    const was = this.get(alert?.id);
    const isNew = this.put(alert, markNew);
    this.trim();
    this.refresh();
    return { isNew, was };
  }

  // ---- selection (keyboard triage) ------------------------------------------------------

  selected() {
    return this.selectedId === null ? null : this.get(this.selectedId);
  }

  /** Select an alert (or none); it is scrolled into view and, if asked, focused. */
  select(alertId, { focus = true } = {}) {
    const previous = this.selectedId && this.items.get(this.selectedId);
    if (previous) {
      previous.el.classList.remove("is-selected");
      previous.el.removeAttribute("aria-current");
    }
    this.selectedId = alertId === null || alertId === undefined ? null : String(alertId);
    const item = this.selectedId && this.items.get(this.selectedId);
    if (!item) {
      this.selectedId = null;
      this.list.dataset.selected = "";
      return null;
    }
    item.el.classList.add("is-selected");
    item.el.setAttribute("aria-current", "true");
    this.list.dataset.selected = this.selectedId;
    item.el.scrollIntoView({ block: "nearest" });
    if (focus) item.el.focus({ preventScroll: true });
    return item.alert;
  }

  /** The next (step 1) or previous (-1) shown alert after the selected one. */
  step(delta) {
    const shown = this.shownAlerts();
    if (!shown.length) return this.select(null);
    const at = shown.findIndex((a) => String(a.id) === this.selectedId);
    let next;
    if (at < 0) next = delta > 0 ? 0 : shown.length - 1;
    else next = Math.min(shown.length - 1, Math.max(0, at + delta));
    return this.select(shown[next].id);
  }

  /** Running durations of ongoing alerts (call every second). */
  tick() {
    for (const { alert, el } of this.items.values()) {
      if (alert.ongoing !== true || el.hidden) continue;
      const facts = el.querySelector(".alert-facts");
      const fresh = episodeFacts(alert);
      if (facts && fresh) facts.textContent = fresh.textContent;
    }
  }

  // ---- internals --------------------------------------------------------------------------

  put(alert, markNew) {
    if (!alert || alert.id === undefined || alert.id === null) return false;
    const key = String(alert.id);
    const existing = this.items.get(key);
    if (existing) {
      if (isStale(alert, existing.alert)) return false;
      const fresh = this.render(alert);
      for (const cls of ["is-new", "is-selected"]) {
        if (existing.el.classList.contains(cls)) fresh.classList.add(cls);
      }
      if (existing.el.hasAttribute("aria-current")) fresh.setAttribute("aria-current", "true");
      const hadFocus = existing.el.contains(document.activeElement);
      existing.el.replaceWith(fresh);
      existing.el = fresh;
      existing.alert = alert;
      if (hadFocus) fresh.focus({ preventScroll: true });
      return false;
    }
    const el = this.render(alert);
    this.items.set(key, { alert, el });
    this.list.append(el); // placed by refresh()
    if (markNew) {
      el.classList.add("is-new");
      window.setTimeout(() => el.classList.remove("is-new"), NEW_MS);
    }
    return true;
  }

  /** Order, visibility and per-candidate counts of every item; then the chrome. */
  refresh() {
    const ordered = [...this.items.values()].sort((a, b) => compareAlerts(a.alert, b.alert));
    const current = [...this.list.children];
    if (!ordered.every((item, i) => current[i] === item.el)) {
      const focused = document.activeElement;
      for (const item of ordered) this.list.append(item.el);
      if (focused && focused !== document.activeElement && focused.isConnected) {
        focused.focus({ preventScroll: true });
      }
    }
    const openPer = new Map();
    for (const { alert } of ordered) {
      if (isOpen(alert) && !this.isSnoozed(alert)) {
        const k = String(alert.candidate_id);
        openPer.set(k, (openPer.get(k) || 0) + 1);
      }
    }
    for (const { alert, el } of ordered) {
      el.hidden = !this.visible(alert);
      const snooze = this.snoozeOf(alert);
      el.dataset.snoozed = String(Boolean(snooze));
      const mark = el.querySelector(".alert-snoozed");
      if (mark) {
        mark.hidden = !snooze;
        mark.textContent = snooze ? snoozeWords(snooze) : "";
      }
      const all = el.querySelector(".alert-ack-all");
      if (all) {
        const n = openPer.get(String(alert.candidate_id)) || 0;
        all.hidden = n < 2;
        all.textContent = `Ack all ${n} 全部确认`;
        all.dataset.count = String(n);
      }
    }
    if (this.selectedId && (!this.items.has(this.selectedId) ||
        this.items.get(this.selectedId).el.hidden)) {
      this.select(null);
    }
    this.updateChrome();
  }

  trim() {
    if (this.items.size <= this.maxItems) return;
    // drop the oldest handled alerts first, then the oldest of all
    const byAge = [...this.items.values()].sort((a, b) => alertTime(a.alert) - alertTime(b.alert));
    const victims = [
      ...byAge.filter((i) => !isOpen(i.alert)),
      ...byAge.filter((i) => isOpen(i.alert)),
    ];
    for (const item of victims) {
      if (this.items.size <= this.maxItems) break;
      this.items.delete(String(item.alert.id));
      item.el.remove();
    }
  }

  updateChrome() {
    const open = [...this.items.values()].filter(
      (i) => isOpen(i.alert) && !this.isSnoozed(i.alert),
    ).length;
    const shown = [...this.items.values()].filter((i) => !i.el.hidden).length;
    if (this.options.emptyEl) this.options.emptyEl.hidden = shown > 0;
    if (this.options.countEl) {
      this.options.countEl.textContent = String(open);
      this.options.countEl.setAttribute("aria-label", `${open} open alerts 条未处理告警`);
    }
    if (this.ready) this.options.onChange?.(this);
  }

  button(words, cls, onClick, title = "") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `button small ${cls}`;
    button.textContent = words;
    if (title) button.title = title;
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      onClick(button);
    });
    return button;
  }

  render(alert) {
    const li = document.createElement("li");
    const severity = alert.severity || "info";
    li.className = "alert";
    li.tabIndex = -1;
    li.dataset.alertId = String(alert.id);
    li.dataset.type = alert.type || "";
    li.dataset.candidateId = String(alert.candidate_id ?? "");
    li.dataset.severity = severity;
    li.dataset.status = alert.status || "open";
    if (alert.view) li.dataset.view = alert.view;
    li.addEventListener("click", () => this.select(alert.id, { focus: false }));

    const main = document.createElement("div");
    main.className = "alert-main";

    const head = document.createElement("div");
    head.className = "alert-head";
    const raised = parseTime(alert.raised_at) || parseTime(alert.started_at);
    const time = document.createElement("time");
    time.className = "alert-time";
    if (alert.raised_at) time.dateTime = alert.raised_at;
    time.textContent = formatClock(raised);
    const started = parseTime(alert.started_at);
    time.title = started
      ? `Started 开始 ${formatDateTime(started)} · raised 告警 ${formatDateTime(raised)}`
      : formatDateTime(raised);
    const sev = document.createElement("span");
    sev.className = "alert-severity";
    sev.dataset.severity = severity;
    sev.textContent = severityLabel(severity);
    const type = document.createElement("strong");
    type.className = "alert-type";
    type.textContent = alertTypeLabel(alert.type);
    head.append(time, " ", sev, " ", type);

    const who = document.createElement("div");
    who.className = "alert-who";
    const name =
      alert.candidate_name ||
      (this.options.nameFor && this.options.nameFor(alert.candidate_id)) ||
      `#${alert.candidate_id}`;
    const candidate = document.createElement("button");
    candidate.type = "button";
    candidate.className = "alert-candidate linklike";
    candidate.textContent = name;
    candidate.title = "Show this candidate 定位到该考生";
    candidate.addEventListener("click", () => this.options.onCandidate(alert.candidate_id));
    who.append(candidate);
    if (alert.view) {
      const view = document.createElement("span");
      view.className = "alert-view muted";
      view.textContent = ` · ${viewLabel(alert.view)}`;
      who.append(view);
    }
    if (alert.status && alert.status !== "open") {
      const status = document.createElement("span");
      status.className = "alert-status";
      status.textContent = ` · ${STATUS_WORDS[alert.status] || alert.status}`;
      who.append(status);
    }
    const snoozed = document.createElement("span");
    snoozed.className = "alert-snoozed";
    snoozed.hidden = true;
    who.append(" ", snoozed);

    main.append(head, who);
    const facts = episodeFacts(alert);
    if (facts) main.append(facts);
    if (alert.message) {
      const message = document.createElement("p");
      message.className = "alert-message";
      message.textContent = alert.message;
      main.append(message);
    }
    if (alert.handling) {
      const h = alert.handling;
      const handled = document.createElement("p");
      handled.className = "alert-handling";
      const at = parseTime(h.at);
      handled.textContent =
        `${h.action === "dismiss" ? "Dismissed 排除" : "Acknowledged 确认"} · ${h.by_name || ""}` +
        `${at ? ` · ${formatClock(at)}` : ""} — ${h.reason || ""}`;
      main.append(handled);
    }
    if (isOpen(alert) && this.options.onHandle) {
      const actions = document.createElement("div");
      actions.className = "alert-actions";
      actions.append(
        this.button("Acknowledge 确认", "alert-ack", (b) =>
          this.options.onHandle({ alert }, "acknowledge", b),
        ),
        this.button("Dismiss 排除", "alert-dismiss", (b) =>
          this.options.onHandle({ alert }, "dismiss", b),
        ),
      );
      if (this.options.onSnooze) {
        actions.append(
          this.button(
            "Snooze 静音…",
            "alert-snooze",
            (b) => this.options.onSnooze(alert, b),
            "Snooze this candidate's alerts of this type 暂停推送该考生此类告警",
          ),
        );
      }
      const all = this.button(
        "Ack all 全部确认",
        "alert-ack-all",
        (b) => this.options.onHandle({ candidateId: alert.candidate_id }, "acknowledge", b),
        "Acknowledge every open alert of this candidate 确认该考生全部未处理告警",
      );
      all.hidden = true;
      actions.append(all);
      main.append(actions);
    }
    li.append(main);

    if (alert.evidence_url) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "alert-evidence";
      button.setAttribute(
        "aria-label",
        `Open evidence screenshot larger: ${alertTypeLabel(alert.type)}, ${name} 放大证据截图`,
      );
      const img = document.createElement("img");
      img.className = "alert-evidence-img";
      img.alt = "";
      img.loading = "lazy";
      img.decoding = "async";
      img.src = alert.evidence_url;
      img.addEventListener("error", () => {
        button.classList.add("broken");
        button.dataset.broken = "true";
      });
      button.append(img);
      button.addEventListener("click", (event) => {
        event.stopPropagation();
        this.options.onOpenEvidence(alert, button);
      });
      li.append(button);
    }
    return li;
  }
}

/** An older copy of an alert we hold (e.g. a list fetched before it was acknowledged that
 *  arrives after the acknowledgement): handling never goes back to open, and an alert
 *  updated while it lasts is never replaced by an earlier update. */
function isStale(incoming, held) {
  if (isOpen(incoming) && !isOpen(held)) return true;
  const seenIn = parseTime(incoming.last_seen_at)?.getTime();
  const seenHeld = parseTime(held.last_seen_at)?.getTime();
  return seenIn !== undefined && seenHeld !== undefined && seenIn < seenHeld;
}

function snoozeWords(snooze) {
  const until = parseTime(snooze.ended_at) || parseTime(snooze.until);
  return `Raised while snoozed 静音期间 (until 至 ${formatClock(until)}${
    snooze.by_name || snooze.staff_name ? `, ${snooze.by_name || snooze.staff_name}` : ""
  })`;
}

/** What an alert that lasts carries (shown when present): ongoing since, last seen,
 *  running or total duration, peak score. */
function episodeFacts(alert) {
  const parts = [];
  const started = parseTime(alert.started_at);
  const lastSeen = parseTime(alert.last_seen_at);
  if (alert.ongoing === true && started) {
    parts.push(`ongoing since 持续自 ${formatClock(started)} (${formatDuration((Date.now() - started) / 1000)})`);
  } else if (alert.ongoing === false && started && lastSeen) {
    parts.push(`lasted 持续 ${formatDuration((lastSeen - started) / 1000)}`);
  }
  if (lastSeen) parts.push(`last seen 最近 ${formatClock(lastSeen)}`);
  if (typeof alert.peak_score === "number") {
    parts.push(`peak 峰值 ${alert.peak_score.toFixed(2)}`);
  }
  if (!parts.length) return null;
  const p = document.createElement("p");
  p.className = "alert-facts muted";
  if (alert.ongoing === true) p.dataset.ongoing = "true";
  if (started) p.dataset.since = String(started.getTime());
  p.textContent = parts.join(" · ");
  return p;
}
