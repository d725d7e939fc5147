// The alert feed: newest on top, one item per alert id (a reload after a reconnect merges
// without duplicates), severity shown by colour AND by words, evidence screenshot that
// opens larger on click or Enter.

import {
  alertTypeLabel,
  formatClock,
  formatDateTime,
  parseTime,
  severityLabel,
  viewLabel,
} from "./labels.js";

const STATUS_WORDS = {
  open: "open 未处理",
  confirmed: "confirmed 已确认",
  dismissed: "dismissed 已排除",
  closed: "closed 已关闭",
};

const NEW_MS = 8000; // how long a fresh alert stays highlighted

function sortKey(alert) {
  const raised = parseTime(alert.raised_at) || parseTime(alert.started_at);
  return raised ? raised.getTime() : 0;
}

/** true when a should be shown above b (newer first; ties: higher id first). */
function newer(a, b) {
  const ka = sortKey(a);
  const kb = sortKey(b);
  if (ka !== kb) return ka > kb;
  return Number(a.id) > Number(b.id);
}

export class AlertFeed {
  /**
   * @param {HTMLOListElement} list #alert-feed
   * @param {{emptyEl?: HTMLElement, countEl?: HTMLElement, maxItems?: number,
   *          nameFor?: (candidateId: any) => string|null,
   *          onOpenEvidence: (alert: any, opener: HTMLElement) => void,
   *          onCandidate: (candidateId: any) => void}} options
   */
  constructor(list, options) {
    this.list = list;
    this.options = options;
    this.maxItems = options.maxItems ?? 300;
    /** @type {Map<string, {alert: any, el: HTMLLIElement}>} */
    this.items = new Map();
    this.updateChrome();
  }

  has(alertId) {
    return this.items.has(String(alertId));
  }

  get size() {
    return this.items.size;
  }

  clear() {
    this.items.clear();
    this.list.replaceChildren();
    this.updateChrome();
  }

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
    this.updateChrome();
    return added;
  }

  /** Add or refresh one alert. @returns {boolean} true when it was not shown before. */
  add(alert, { markNew = true } = {}) {
    const isNew = this.put(alert, markNew);
    this.trim();
    this.updateChrome();
    return isNew;
  }

  // ---- internals -----------------------------------------------------------------------

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
    const el = this.render(alert);
    this.items.set(key, { alert, el });
    // Walk down to the first item that is older; live alerts are almost always at the top.
    let before = null;
    for (const child of this.list.children) {
      const other = this.items.get(child.dataset.alertId);
      if (other && newer(alert, other.alert)) {
        before = child;
        break;
      }
    }
    this.list.insertBefore(el, before);
    if (markNew) {
      el.classList.add("is-new");
      window.setTimeout(() => el.classList.remove("is-new"), NEW_MS);
    }
    return true;
  }

  trim() {
    while (this.items.size > this.maxItems && this.list.lastElementChild) {
      const last = this.list.lastElementChild;
      this.items.delete(last.dataset.alertId);
      last.remove();
    }
  }

  updateChrome() {
    const count = this.items.size;
    if (this.options.emptyEl) this.options.emptyEl.hidden = count > 0;
    if (this.options.countEl) {
      this.options.countEl.textContent = String(count);
      this.options.countEl.setAttribute("aria-label", `${count} alerts shown 条告警`);
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
    if (alert.view) li.dataset.view = alert.view;
    if (alert.status) li.dataset.status = alert.status;

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
    if (alert.message) {
      const message = document.createElement("p");
      message.className = "alert-message";
      message.textContent = alert.message;
      main.append(message);
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
