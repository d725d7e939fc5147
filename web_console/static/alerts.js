// The alert feed, grouped per candidate: one group per candidate (most urgent first: worst
// open severity, then newest), its alerts newest first, each with its evidence screenshot
// (opens larger on click or Enter), severity shown by colour AND by words, and buttons to
// acknowledge or dismiss (with a reason, asked by the page) one alert or all open alerts
// of the candidate. A reload after a reconnect merges without duplicates.

import {
  alertTypeLabel,
  episodeText,
  formatClock,
  formatDateTime,
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
const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
const NEW_MS = 8000; // how long a fresh alert stays highlighted

function timeOf(alert) {
  const raised = parseTime(alert.raised_at) || parseTime(alert.started_at);
  return raised ? raised.getTime() : 0;
}

/** true when a should be shown above b (newer first; ties: higher id first). */
function newer(a, b) {
  const ka = timeOf(a);
  const kb = timeOf(b);
  if (ka !== kb) return ka > kb;
  return Number(a.id) > Number(b.id);
}

function isOpen(alert) {
  return !alert.status || alert.status === "open";
}

export class AlertFeed {
  /**
   * @param {HTMLOListElement} list #alert-feed
   * @param {{emptyEl?: HTMLElement, countEl?: HTMLElement, maxItems?: number,
   *          nameFor?: (candidateId: any) => string|null,
   *          onOpenEvidence: (alert: any, opener: HTMLElement) => void,
   *          onCandidate: (candidateId: any) => void,
   *          onHandle?: (target: {alert?: any, candidateId?: any}, action: string,
   *                      opener: HTMLElement) => void}} options
   */
  constructor(list, options) {
    this.list = list;
    this.options = options;
    this.maxItems = options.maxItems ?? 300;
    /** @type {Map<string, {alert: any, el: HTMLLIElement}>} */
    this.items = new Map();
    /** @type {Map<string, {el: HTMLLIElement, head: any, alerts: HTMLOListElement}>} */
    this.groups = new Map();
    this.showHandled = false;
    this.list.dataset.showHandled = "false";
    this.updateChrome();
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

  openAlertsOf(candidateId) {
    return [...this.items.values()]
      .map((i) => i.alert)
      .filter((a) => String(a.candidate_id) === String(candidateId) && isOpen(a));
  }

  clear() {
    this.items.clear();
    this.groups.clear();
    this.list.replaceChildren();
    this.updateChrome();
  }

  setShowHandled(show) {
    this.showHandled = Boolean(show);
    this.list.dataset.showHandled = String(this.showHandled);
    for (const key of this.groups.keys()) this.refreshGroup(key);
    this.updateChrome();
  }

  /**
   * Add or refresh many alerts (from GET /api/console/alerts).
   * @returns {any[]} the alerts that were not shown before
   */
  merge(alerts, { markNew = false } = {}) {
    const added = [];
    const touched = new Set();
    for (const alert of alerts || []) {
      if (this.put(alert, markNew)) added.push(alert);
      if (alert) touched.add(String(alert.candidate_id));
    }
    this.trim();
    for (const key of touched) this.refreshGroup(key);
    this.updateChrome();
    return added;
  }

  /** Add or refresh one alert. @returns {{isNew: boolean, was: any|null}} */
  add(alert, { markNew = true } = {}) {
    const was = this.get(alert?.id);
    const isNew = this.put(alert, markNew);
    this.trim();
    if (alert) this.refreshGroup(String(alert.candidate_id));
    this.updateChrome();
    return { isNew, was };
  }

  // ---- internals -----------------------------------------------------------------------

  group(candidateId, nameHint) {
    const key = String(candidateId);
    let group = this.groups.get(key);
    if (group) return group;
    const el = document.createElement("li");
    el.className = "alert-group";
    el.dataset.candidateId = key;
    const head = document.createElement("div");
    head.className = "group-head";
    const who = document.createElement("button");
    who.type = "button";
    who.className = "group-candidate linklike";
    who.title = "Show this candidate 定位到该考生";
    who.addEventListener("click", () => this.options.onCandidate(candidateId));
    const count = document.createElement("span");
    count.className = "group-count";
    const actions = document.createElement("span");
    actions.className = "group-actions";
    for (const [action, words] of [
      ["acknowledge", "Ack all 全部确认"],
      ["dismiss", "Dismiss all 全部排除"],
    ]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = `button small group-${action}`;
      button.textContent = words;
      button.addEventListener("click", () =>
        this.options.onHandle?.({ candidateId }, action, button),
      );
      actions.append(button);
    }
    head.append(who, " ", count, actions);
    const alerts = document.createElement("ol");
    alerts.className = "group-alerts";
    el.append(head, alerts);
    group = { el, who, count, actions, alerts, name: nameHint };
    this.groups.set(key, group);
    this.list.append(el);
    return group;
  }

  /** Group header, visibility and position (worst open severity, then newest). */
  refreshGroup(key) {
    const group = this.groups.get(key);
    if (!group) return;
    const alerts = [...group.alerts.children].map((li) => this.items.get(li.dataset.alertId));
    if (!alerts.length) {
      group.el.remove();
      this.groups.delete(key);
      return;
    }
    const open = alerts.filter((i) => isOpen(i.alert));
    const worst = open
      .map((i) => i.alert.severity || "info")
      .sort((a, b) => (SEVERITY_RANK[a] ?? 3) - (SEVERITY_RANK[b] ?? 3))[0];
    const name =
      alerts[0].alert.candidate_name ||
      (this.options.nameFor && this.options.nameFor(key)) ||
      `#${key}`;
    group.who.textContent = name;
    group.count.textContent = open.length
      ? `${open.length} open 未处理`
      : `${alerts.length} handled 已处理`;
    group.el.dataset.open = String(open.length);
    group.el.dataset.worst = worst || "none";
    group.actions.hidden = open.length === 0;
    group.el.hidden = !this.showHandled && open.length === 0;
    group.newest = Math.max(...alerts.map((i) => timeOf(i.alert)));
    this.sortGroups();
  }

  /** Groups with open alerts first, by worst open severity, then the newest alert. */
  sortGroups() {
    const rank = (g) => [
      Number(g.el.dataset.open) > 0 ? 0 : 1,
      SEVERITY_RANK[g.el.dataset.worst] ?? 3,
      -(g.newest || 0),
    ];
    const desired = [...this.groups.values()].sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      return ra[0] - rb[0] || ra[1] - rb[1] || ra[2] - rb[2];
    });
    const current = [...this.list.children];
    if (desired.every((g, i) => current[i] === g.el)) return;
    for (const g of desired) this.list.append(g.el);
  }

  put(alert, markNew) {
    if (!alert || alert.id === undefined || alert.id === null) return false;
    const key = String(alert.id);
    const existing = this.items.get(key);
    if (existing) {
      const fresh = this.render(alert);
      if (existing.el.classList.contains("is-new")) fresh.classList.add("is-new");
      existing.el.replaceWith(fresh);
      existing.el = fresh;
      existing.alert = alert;
      return false;
    }
    const group = this.group(alert.candidate_id, alert.candidate_name);
    const el = this.render(alert);
    this.items.set(key, { alert, el });
    let before = null;
    for (const child of group.alerts.children) {
      const other = this.items.get(child.dataset.alertId);
      if (other && newer(alert, other.alert)) {
        before = child;
        break;
      }
    }
    group.alerts.insertBefore(el, before);
    if (markNew) {
      el.classList.add("is-new");
      window.setTimeout(() => el.classList.remove("is-new"), NEW_MS);
    }
    return true;
  }

  trim() {
    if (this.items.size <= this.maxItems) return;
    // drop the oldest handled alerts first, then the oldest of all
    const byAge = [...this.items.values()].sort((a, b) => timeOf(a.alert) - timeOf(b.alert));
    const victims = [...byAge.filter((i) => !isOpen(i.alert)), ...byAge.filter((i) => isOpen(i.alert))];
    for (const item of victims) {
      if (this.items.size <= this.maxItems) break;
      this.items.delete(String(item.alert.id));
      item.el.remove();
      this.refreshGroup(String(item.alert.candidate_id));
    }
  }

  updateChrome() {
    const open = [...this.items.values()].filter((i) => isOpen(i.alert)).length;
    const shown = this.showHandled ? this.items.size : open;
    if (this.options.emptyEl) this.options.emptyEl.hidden = shown > 0;
    if (this.options.countEl) {
      this.options.countEl.textContent = String(open);
      this.options.countEl.setAttribute("aria-label", `${open} open alerts 条未处理告警`);
    }
  }

  render(alert) {
    const li = document.createElement("li");
    const severity = alert.severity || "info";
    li.className = "alert";
    li.dataset.alertId = String(alert.id);
    li.dataset.type = alert.type || "";
    li.dataset.candidateId = String(alert.candidate_id ?? "");
    li.dataset.severity = severity;
    li.dataset.status = alert.status || "open";
    if (alert.view) li.dataset.view = alert.view;

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

    main.append(head, who);
    const episode = episodeText(alert);
    if (episode) {
      // an episode: its running duration (ticked by tickEpisodes) or how long it lasted
      const span = document.createElement("p");
      span.className = "alert-episode";
      span.dataset.episodeOngoing = String(Boolean(alert.ongoing));
      span.dataset.startedAt = alert.started_at;
      span.textContent = episode;
      main.append(span);
    }
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
      for (const [action, words, cls] of [
        ["acknowledge", "Acknowledge 确认", "alert-ack"],
        ["dismiss", "Dismiss 排除", "alert-dismiss"],
      ]) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = `button small ${cls}`;
        button.textContent = words;
        button.addEventListener("click", () => this.options.onHandle({ alert }, action, button));
        actions.append(button);
      }
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
      button.addEventListener("click", () => this.options.onOpenEvidence(alert, button));
      li.append(button);
    }
    return li;
  }
}
