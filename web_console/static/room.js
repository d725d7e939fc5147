// The exam-room page: sitting selector, candidate tiles, alert feed, model health banner,
// and the console WebSocket that keeps all of them live.

import { ApiError, apiFetch, clearSession, getToken, getUser, onUnauthorized } from "./api.js";
import { AlertFeed, isOpen } from "./alerts.js";
import { CandidatePanel } from "./candidate.js";
import {
  ALERT_TYPES,
  alertTypeLabel,
  formatClock,
  formatDateTime,
  formatDuration,
  formatShortDateTime,
  setTimeZone,
  HANDLING_REASONS,
  healthProblems,
  parseTime,
  roleLabel,
  SNOOZE_REASONS,
  sittingKindLabel,
  tickEpisodes,
} from "./labels.js";
import { CriticalNotifier } from "./notify.js";
import { ReconnectingSocket, socketUrl } from "./socket.js";
import { HandoverPanel } from "./handover.js";
import { RequestsPanel } from "./requests.js";
import { FILTERS, ORDERS, PAGE_SIZES, TileGrid } from "./tiles.js";
import { LiveView } from "./live.js";

const $ = (id) => document.getElementById(id);

const els = {
  staffName: $("staff-name"),
  logout: $("logout-button"),
  sittingSelect: $("sitting-select"),
  roomSelect: $("room-select"),
  roomStaff: $("room-staff"),
  recordLink: $("record-link"),
  staffRole: $("staff-role"),
  filters: $("filters"),
  filterEmpty: $("filter-empty"),
  showHandled: $("show-handled"),
  handleDialog: $("handle-dialog"),
  handleForm: $("handle-form"),
  handleTitle: $("handle-title"),
  handleWhat: $("handle-what"),
  handleReasons: $("handle-reasons"),
  handleReason: $("handle-reason"),
  handleError: $("handle-error"),
  handleCancel: $("handle-cancel"),
  handleSubmit: $("handle-submit"),
  connStatus: $("connection-status"),
  connText: $("connection-text"),
  healthBanner: $("health-banner"),
  healthList: $("health-list"),
  loadError: $("load-error"),
  grid: $("tile-grid"),
  tileTemplate: $("tile-template"),
  candidatesEmpty: $("candidates-empty"),
  candidateSummary: $("candidate-summary"),
  alertFeed: $("alert-feed"),
  alertsEmpty: $("alerts-empty"),
  alertCount: $("alert-count"),
  announcer: $("announcer"),
  dialog: $("evidence-dialog"),
  dialogImage: $("evidence-image"),
  dialogCaption: $("evidence-caption"),
  dialogLink: $("evidence-link"),
  dialogClose: $("evidence-close"),
  typeFilters: $("alert-type-filters"),
  snoozesBox: $("snoozes-box"),
  snoozeList: $("snooze-list"),
  snoozeCount: $("snooze-count"),
  showSnoozed: $("show-snoozed"),
  snoozedAlertCount: $("snoozed-alert-count"),
  snoozeDialog: $("snooze-dialog"),
  snoozeForm: $("snooze-form"),
  snoozeWhat: $("snooze-what"),
  snoozeMinutes: $("snooze-minutes"),
  snoozeReasons: $("snooze-reasons"),
  snoozeReason: $("snooze-reason"),
  snoozeError: $("snooze-error"),
  snoozeCancel: $("snooze-cancel"),
  snoozeSubmit: $("snooze-submit"),
  phraseDialog: $("phrase-dialog"),
  phraseWhat: $("phrase-what"),
  phrasePicks: $("phrase-picks"),
  phraseError: $("phrase-error"),
  phraseCancel: $("phrase-cancel"),
  shortcutHelp: $("shortcut-help"),
  shortcutClose: $("shortcut-close"),
  shortcutsButton: $("shortcuts-button"),
  criticalToggle: $("critical-toggle"),
  criticalStatus: $("critical-status"),
};

const SITTING_KEY = "proctor.console.sitting";
const ROOM_KEY = "proctor.console.room";
const FILTER_KEY = "proctor.console.filter";
const TYPE_FILTER_KEY = "proctor.console.alertTypes";
const HEALTH_POLL_MS = 60000;
const SITTINGS_RETRY_MS = 5000;
let sittingsRetryTimer = null;
let sittingRetryTimer = null;

const state = {
  sittings: /** @type {any[]} */ ([]),
  sittingId: /** @type {string|null} */ (null),
  roomId: /** @type {string|null} */ (null), // null: every room the invigilator has
  rooms: /** @type {any[]} */ ([]),
  generation: 0, // bumps on every sitting switch; stale answers are dropped
  rosterLoaded: false, // candidates of the current sitting arrived at least once
  changes: 0, // alerts and snoozes applied; a list fetched meanwhile may be older
  leaving: false,
};

// ---- session ---------------------------------------------------------------------------

function goToLogin(reason) {
  if (state.leaving) return;
  state.leaving = true;
  socket.stop();
  tiles.stopThumbnails();
  clearSession();
  window.location.replace(`index.html${reason ? `?${reason}=1` : ""}`);
}

// A 401 means the session ended, or this tab never logged in (no token kept).
onUnauthorized(() => goToLogin(getToken() ? "expired" : null));

function showStaffName() {
  const user = getUser();
  const name = user && (user.display_name || user.username);
  els.staffName.textContent = name || "—";
  if (user && user.role) {
    els.staffName.title = `${user.username || ""} (${user.role})`;
    els.staffRole.textContent = `${roleLabel(user.role)}:`;
  }
}

els.logout.addEventListener("click", async () => {
  els.logout.disabled = true;
  try {
    await apiFetch("/api/staff/logout", { method: "POST", timeoutMs: 5000 });
  } catch {
    /* leaving anyway */
  }
  goToLogin("logout");
});

// ---- feedback --------------------------------------------------------------------------

function showLoadError(message) {
  els.loadError.textContent = message || "";
  els.loadError.hidden = !message;
}

// The alert list's empty line: "No open alerts" only once the alerts were loaded; before
// that "Loading", and while they cannot be loaded it says so (issue 22: never a false
// "No open alerts").
const noAlertsLine = [...els.alertsEmpty.childNodes];
const ALERTS_LINE = {
  loading: ["Loading alerts… ", "正在加载告警…"],
  error: ["Alerts could not be loaded — retrying. ", "无法加载告警，正在重试。"],
};
function setAlertsLine(what) {
  if ((els.alertsEmpty.dataset.state || null) === what) return;
  if (what) {
    els.alertsEmpty.dataset.state = what;
    const [en, zh] = ALERTS_LINE[what];
    const zhEl = document.createElement("span");
    zhEl.lang = "zh";
    zhEl.textContent = zh;
    els.alertsEmpty.replaceChildren(en, zhEl);
  } else {
    delete els.alertsEmpty.dataset.state;
    els.alertsEmpty.replaceChildren(...noAlertsLine);
  }
}

let announceTimer = null;
const pendingAnnouncements = [];
function announce(text) {
  // Batch bursts into one message so a screen reader is not flooded.
  pendingAnnouncements.push(text);
  if (announceTimer) return;
  announceTimer = window.setTimeout(() => {
    const items = pendingAnnouncements.splice(0);
    announceTimer = null;
    els.announcer.textContent =
      items.length > 3 ? `${items.length} new alerts 条新告警. ${items[0]}` : items.join(". ");
  }, 400);
}

function updateTitle(openAlerts) {
  const base = "Exam room 考场监控 · Proctor";
  document.title = openAlerts > 0 ? `(${openAlerts}) ${base}` : base;
}

// ---- tiles and feed ---------------------------------------------------------------------

const tiles = new TileGrid(els.grid, els.tileTemplate, {
  sendDanmaku: (candidateId, text) =>
    apiFetch(`/api/console/candidates/${encodeURIComponent(candidateId)}/danmaku`, {
      method: "POST",
      body: { text },
    }),
  openCandidate: (candidateId, opener) => {
    tiles.setPaused(true); // the grid is behind the opened candidate
    panel.open(candidateId, opener);
  },
  zoomCandidate: (candidateId, opener) => zoom.open(candidateId, opener),
  onChange: (summary) => {
    renderPager(summary);
    els.candidatesEmpty.hidden = summary.total > 0 || !state.rosterLoaded;
    els.filterEmpty.hidden = summary.total === 0 || summary.shown > 0;
    els.candidateSummary.textContent = summary.total
      ? `${summary.total} candidates 考生 · ${summary.connected} fully connected 已连接 · ` +
        `${summary.withAlerts} with open alerts 有告警`
      : "";
    renderFilterCounts(summary.counts);
    updateTitle(summary.openAlerts);
  },
});

const feed = new AlertFeed(els.alertFeed, {
  emptyEl: els.alertsEmpty,
  countEl: els.alertCount,
  nameFor: (candidateId) => tiles.candidateName(candidateId),
  onCandidate: (candidateId) => tiles.focusTile(candidateId),
  onOpenEvidence: openEvidence,
  onHandle: openHandleDialog,
  onSnooze: openSnoozeDialog,
  onChange: () => renderFeedTools(),
});

els.showHandled.addEventListener("change", () => feed.setShowHandled(els.showHandled.checked));
els.showSnoozed.addEventListener("change", () => feed.setShowSnoozed(els.showSnoozed.checked));

const notifier = new CriticalNotifier({
  toggle: els.criticalToggle,
  status: els.criticalStatus,
  onActivate: (alert) => feed.select(alert.id),
});

const requests = new RequestsPanel({
  list: $("request-list"),
  empty: $("requests-empty"),
  count: $("request-count"),
  dialog: $("identity-dialog"),
  announce,
  onCandidate: (candidateId) => tiles.focusTile(candidateId),
});

const handover = new HandoverPanel();

const panel = new CandidatePanel({
  onEvidence: (alert, opener) => openEvidence(alert, opener),
  onClose: () => tiles.setPaused(false),
});

/** An alert arrived (new, or its status changed): feed, tile counters, announcement;
 *  a critical one (new, or become critical) chimes and notifies when switched on.
 *  An alert raised while its candidate's type is snoozed counts nowhere. */
function applyAlert(incoming, { markNew }) {
  state.changes += 1;
  const { isNew, was } = feed.add(incoming, { markNew });
  const alert = feed.get(incoming.id) || incoming; // a late, older copy changes nothing
  const open = isOpen(alert) && !feed.isSnoozed(alert);
  const wasOpen = was ? isOpen(was) && !feed.isSnoozed(was) : false;
  if (open && markNew && alert.severity === "critical" && (isNew || was?.severity !== "critical")) {
    notifier.critical(alert, alert.candidate_name || tiles.candidateName(alert.candidate_id));
  }
  if (isNew && open) {
    tiles.alertRaised(alert.candidate_id, alert.severity);
    return true;
  }
  if (wasOpen && !open) tiles.alertClosed(alert.candidate_id, was.severity);
  return false;
}

// ---- alert types, snoozes ------------------------------------------------------------------

const typeButtons = new Map();

function rememberTypes() {
  try {
    window.sessionStorage.setItem(TYPE_FILTER_KEY, JSON.stringify([...feed.types]));
  } catch {
    /* ignore */
  }
}

function typeButton(type, words) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "filter type-filter";
  button.dataset.type = type;
  const label = document.createElement("span");
  label.textContent = words;
  const count = document.createElement("span");
  count.className = "filter-count";
  button.append(label, " ", count);
  button.addEventListener("click", () => {
    if (type === "") feed.setTypes([]);
    else {
      const types = new Set(feed.types);
      if (types.has(type)) types.delete(type);
      else types.add(type);
      feed.setTypes([...types]);
    }
    rememberTypes();
  });
  typeButtons.set(type, button);
  return button;
}

/** Type filter chips (the types present in the feed, and any chosen), the snoozes box. */
function renderFeedTools() {
  const counts = feed.typeCounts();
  const known = Object.keys(ALERT_TYPES);
  const present = [...new Set([...known, ...Object.keys(counts)])].filter(
    (t) => counts[t] || feed.types.has(t),
  );
  const wanted = ["", ...present];
  const current = [...typeButtons.keys()];
  if (wanted.join("|") !== current.join("|")) {
    typeButtons.clear();
    els.typeFilters.replaceChildren(
      ...wanted.map((t) => typeButton(t, t === "" ? "All types 全部类型" : alertTypeLabel(t))),
    );
  }
  let total = 0;
  for (const [type, button] of typeButtons) {
    const open = type === "" ? null : counts[type]?.open ?? 0;
    if (open !== null) total += open;
    button.setAttribute("aria-pressed", String(type === "" ? feed.types.size === 0 : feed.types.has(type)));
    button.querySelector(".filter-count").textContent = String(open ?? 0);
  }
  typeButtons.get("")?.querySelector(".filter-count").replaceChildren(String(total));
  els.typeFilters.hidden = present.length === 0;
  renderSnoozes();
}

function renderSnoozes() {
  const active = feed.activeSnoozes();
  tiles.setSnoozes(active);
  const snoozedAlerts = feed.snoozedCount();
  els.snoozesBox.hidden = active.length === 0 && snoozedAlerts === 0;
  els.snoozeCount.textContent = String(active.length);
  els.snoozedAlertCount.textContent = String(snoozedAlerts);
  const key = active.map((s) => s.id).join(",");
  if (els.snoozeList.dataset.key !== key) {
    els.snoozeList.dataset.key = key;
    els.snoozeList.replaceChildren(
      ...active.map((s) => {
        const li = document.createElement("li");
        li.className = "snooze-item";
        li.dataset.snoozeId = String(s.id);
        li.dataset.candidateId = String(s.candidate_id);
        li.dataset.type = s.type;
        const who = document.createElement("strong");
        who.textContent = tiles.candidateName(s.candidate_id) || `#${s.candidate_id}`;
        const what = document.createElement("span");
        what.textContent = alertTypeLabel(s.type);
        const left = document.createElement("span");
        left.className = "snooze-left";
        const by = document.createElement("span");
        by.className = "muted";
        by.textContent = `${s.staff_name || ""} · until 至 ${formatClock(parseTime(s.until))}`;
        const end = document.createElement("button");
        end.type = "button";
        end.className = "button small snooze-end";
        end.textContent = "End 结束静音";
        end.addEventListener("click", () => endSnooze(s, end));
        const reason = document.createElement("span");
        reason.className = "snooze-reason";
        reason.textContent = s.reason;
        li.append(who, what, left, by, end, reason);
        return li;
      }),
    );
  }
  tickSnoozes();
}

function tickSnoozes() {
  const now = Date.now();
  let expired = false;
  for (const li of els.snoozeList.children) {
    const s = feed.snoozes.get(li.dataset.snoozeId);
    const until = parseTime(s?.until)?.getTime() ?? 0;
    if (until <= now) expired = true;
    li.querySelector(".snooze-left").textContent = formatDuration((until - now) / 1000);
  }
  if (expired) renderSnoozes();
}
window.setInterval(() => {
  tickSnoozes();
  feed.tick();
}, 1000);

async function endSnooze(snooze, button) {
  button.disabled = true;
  try {
    const body = await apiFetch(`/api/console/snoozes/${encodeURIComponent(snooze.id)}/end`, {
      method: "POST",
      body: { reason: "" },
    });
    state.changes += 1;
    feed.upsertSnooze(body);
    announce("Snooze ended 已结束静音");
  } catch (err) {
    announce(err.message);
    button.disabled = false;
  }
}

let snoozeTarget = null;
let snoozeOpener = null;

function openSnoozeDialog(alert, opener) {
  snoozeTarget = alert;
  snoozeOpener = opener;
  const name = alert.candidate_name || tiles.candidateName(alert.candidate_id) || "";
  els.snoozeWhat.textContent = `${alertTypeLabel(alert.type)} — ${name}`;
  const running = feed.activeSnooze(alert.candidate_id, alert.type);
  els.snoozeError.textContent = running
    ? `Already snoozed until ${formatClock(parseTime(running.until))} 已在静音中`
    : "";
  els.snoozeError.hidden = !running;
  els.snoozeReason.value = "";
  els.snoozeReasons.replaceChildren(
    ...SNOOZE_REASONS.map((reason) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "reason-pick";
      b.textContent = reason;
      b.addEventListener("click", () => {
        els.snoozeReason.value = reason;
        els.snoozeReason.focus();
      });
      return b;
    }),
  );
  els.snoozeDialog.showModal();
  els.snoozeReason.focus();
}

els.snoozeCancel.addEventListener("click", () => els.snoozeDialog.close());
els.snoozeDialog.addEventListener("close", () => {
  if (snoozeOpener && snoozeOpener.isConnected) snoozeOpener.focus();
  snoozeOpener = null;
});
submitOnEnter(els.snoozeReason, els.snoozeForm);
els.snoozeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = els.snoozeReason.value.trim();
  if (reason.length < 2) {
    els.snoozeError.textContent = "Give a reason. 请填写理由。";
    els.snoozeError.hidden = false;
    els.snoozeReason.focus();
    return;
  }
  const alert = snoozeTarget;
  els.snoozeSubmit.disabled = true;
  try {
    const snooze = await apiFetch(
      `/api/console/candidates/${encodeURIComponent(alert.candidate_id)}/snoozes`,
      { method: "POST", body: { type: alert.type, minutes: Number(els.snoozeMinutes.value), reason } },
    );
    state.changes += 1;
    feed.upsertSnooze(snooze);
    els.snoozeDialog.close();
    announce(`Snoozed 已静音: ${alertTypeLabel(alert.type)}`);
  } catch (err) {
    els.snoozeError.textContent = err.message;
    els.snoozeError.hidden = false;
  } finally {
    els.snoozeSubmit.disabled = false;
  }
});

/** Enter saves a one-line reason (Shift+Enter: a new line). */
function submitOnEnter(textarea, form) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

// ---- saved phrases (keyboard: p, then 1-9) -------------------------------------------------

let phrases = null;
let phraseCandidate = null;

async function openPhraseDialog(candidateId) {
  phraseCandidate = candidateId;
  els.phraseWhat.textContent = `To 发送给: ${tiles.candidateName(candidateId) || `#${candidateId}`}`;
  els.phraseError.hidden = true;
  els.phrasePicks.replaceChildren();
  els.phraseDialog.showModal();
  try {
    phrases = await apiFetch("/api/console/phrases"); // phrases saved since are included
  } catch (err) {
    if (!phrases) {
      els.phraseError.textContent = err.message;
      els.phraseError.hidden = false;
      return;
    }
  }
  els.phrasePicks.replaceChildren(
    ...phrases.slice(0, 9).map((p, i) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "reason-pick phrase-pick";
      b.dataset.index = String(i + 1);
      const key = document.createElement("kbd");
      key.textContent = String(i + 1);
      b.append(key, " ", p.text);
      b.addEventListener("click", () => sendPhrase(i));
      li.append(b);
      return li;
    }),
  );
  els.phrasePicks.querySelector("button")?.focus();
}

async function sendPhrase(index) {
  const phrase = phrases?.[index];
  if (!phrase || phraseCandidate === null) return;
  try {
    const sent = await apiFetch(
      `/api/console/candidates/${encodeURIComponent(phraseCandidate)}/danmaku`,
      { method: "POST", body: { text: phrase.text } },
    );
    els.phraseDialog.close();
    announce(
      sent.pending
        ? `Saved, delivered once the message service is back 已保存，恢复后送达: ${phrase.text}`
        : `Sent 已发送: ${phrase.text}`,
    );
  } catch (err) {
    els.phraseError.textContent = err.message;
    els.phraseError.hidden = false;
  }
}

els.phraseCancel.addEventListener("click", () => els.phraseDialog.close());
els.phraseDialog.addEventListener("keydown", (event) => {
  if (/^[1-9]$/.test(event.key)) {
    event.preventDefault();
    sendPhrase(Number(event.key) - 1);
  }
});

// ---- keyboard triage -------------------------------------------------------------------------

els.shortcutsButton.addEventListener("click", () => els.shortcutHelp.showModal());
els.shortcutClose.addEventListener("click", () => els.shortcutHelp.close());

function typing(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
  );
}

function selectedOrFirst() {
  return feed.selected() || feed.step(1);
}

function onShortcut(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event.target)) return;
  if (document.querySelector("dialog[open]")) return; // a dialog has the keyboard
  const key = event.key;
  const act = (fn) => {
    event.preventDefault();
    fn();
  };
  switch (key) {
    case "?":
      return act(() => els.shortcutHelp.showModal());
    case "j":
    case "ArrowDown":
      if (key === "ArrowDown" && !els.alertFeed.contains(event.target)) return;
      return act(() => feed.step(1));
    case "k":
    case "ArrowUp":
      if (key === "ArrowUp" && !els.alertFeed.contains(event.target)) return;
      return act(() => feed.step(-1));
    case "Escape":
      return act(() => feed.select(null));
    default:
      break;
  }
  if (!["a", "d", "s", "o", "Enter", "p", "e"].includes(key)) return;
  // Enter opens only from an alert itself (on a button, Enter presses the button)
  if (key === "Enter" && !event.target.matches?.("#alert-feed li.alert")) return;
  const alert = selectedOrFirst();
  if (!alert) return;
  const item = els.alertFeed.querySelector(`li.alert[data-alert-id="${CSS.escape(String(alert.id))}"]`);
  act(() => {
    if ((key === "a" || key === "d") && isOpen(alert)) {
      openHandleDialog({ alert }, key === "a" ? "acknowledge" : "dismiss", item, {
        prefill: true,
      });
    } else if (key === "s" && isOpen(alert)) openSnoozeDialog(alert, item);
    else if (key === "o" || key === "Enter") {
      tiles.setPaused(true);
      panel.open(alert.candidate_id, item);
    } else if (key === "p") openPhraseDialog(alert.candidate_id);
    else if (key === "e" && alert.evidence_url) openEvidence(alert, item);
  });
}

document.addEventListener("keydown", onShortcut);

// ---- filters -----------------------------------------------------------------------------

const filterButtons = new Map();
function renderFilters() {
  els.filters.replaceChildren();
  for (const [name, [words]] of Object.entries(FILTERS)) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "filter";
    button.dataset.filter = name;
    button.setAttribute("aria-pressed", String(tiles.filter === name));
    const label = document.createElement("span");
    label.textContent = words;
    const count = document.createElement("span");
    count.className = "filter-count";
    button.append(label, " ", count);
    button.addEventListener("click", () => {
      tiles.setFilter(name);
      for (const [other, b] of filterButtons) b.setAttribute("aria-pressed", String(other === name));
      try {
        window.sessionStorage.setItem(FILTER_KEY, name);
      } catch {
        /* ignore */
      }
    });
    filterButtons.set(name, button);
    els.filters.append(button);
  }
}

function renderFilterCounts(counts) {
  for (const [name, button] of filterButtons) {
    button.querySelector(".filter-count").textContent = String(counts?.[name] ?? 0);
  }
}

// ---- acknowledge / dismiss with a reason -------------------------------------------------

/** The ready-made reason that also records the alert as a violation. */
const VIOLATION_REASON = HANDLING_REASONS.acknowledge.find((r) => r.startsWith("Recorded as a violation"));
let handleTarget = null;
let handleOpener = null;

function openHandleDialog(target, action, opener, { prefill = false } = {}) {
  handleTarget = { ...target, action };
  handleOpener = opener;
  const acknowledge = action === "acknowledge";
  els.handleTitle.textContent = acknowledge
    ? "Acknowledge 确认告警"
    : "Dismiss 排除告警";
  els.handleWhat.textContent = target.alert
    ? `${alertTypeLabel(target.alert.type)} — ${target.alert.candidate_name || tiles.candidateName(target.alert.candidate_id) || ""}`
    : `All open alerts of 全部未处理告警: ${tiles.candidateName(target.candidateId) || ""}`;
  els.handleReason.value = "";
  els.handleError.hidden = true;
  // acknowledging may also keep the alert as a violation record (违纪记录)
  const violation = $("handle-record-violation");
  violation.checked = false;
  $("handle-violation").hidden = !acknowledge;
  els.handleReasons.replaceChildren(
    ...HANDLING_REASONS[action].map((reason) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "reason-pick";
      b.textContent = reason;
      b.addEventListener("click", () => {
        els.handleReason.value = reason;
        if (reason === VIOLATION_REASON) $("handle-record-violation").checked = true;
        els.handleReason.focus();
      });
      return b;
    }),
  );
  els.handleDialog.showModal();
  if (prefill) {
    // from the keyboard: the first usual reason, selected (type over it, or Enter saves)
    els.handleReason.value = HANDLING_REASONS[action][0];
    els.handleReason.select();
  }
  els.handleReason.focus();
}

els.handleCancel.addEventListener("click", () => els.handleDialog.close());
submitOnEnter(els.handleReason, els.handleForm);
els.handleDialog.addEventListener("close", () => {
  if (handleOpener && handleOpener.isConnected) handleOpener.focus();
  handleOpener = null;
});
els.handleForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = els.handleReason.value.trim();
  if (reason.length < 2) {
    els.handleError.textContent = "Give a reason. 请填写理由。";
    els.handleError.hidden = false;
    els.handleReason.focus();
    return;
  }
  const target = handleTarget;
  const path = target.alert
    ? `/api/console/alerts/${encodeURIComponent(target.alert.id)}/handle`
    : `/api/console/candidates/${encodeURIComponent(target.candidateId)}/alerts/handle`;
  els.handleSubmit.disabled = true;
  try {
    const recordViolation =
      target.action === "acknowledge" && $("handle-record-violation").checked;
    const result = await apiFetch(path, {
      method: "POST",
      body: { action: target.action, reason, record_violation: recordViolation },
    });
    for (const alert of Array.isArray(result) ? result : [result]) {
      applyAlert(alert, { markNew: false });
    }
    els.handleDialog.close();
    announce(target.action === "acknowledge" ? "Acknowledged 已确认" : "Dismissed 已排除");
  } catch (err) {
    els.handleError.textContent = err.message;
    els.handleError.hidden = false;
  } finally {
    els.handleSubmit.disabled = false;
  }
});

// ---- evidence dialog ---------------------------------------------------------------------

let evidenceOpener = null;

function openEvidence(alert, opener) {
  evidenceOpener = opener;
  const name = alert.candidate_name || tiles.candidateName(alert.candidate_id) || "";
  const when = parseTime(alert.raised_at);
  els.dialogCaption.textContent =
    `${alertTypeLabel(alert.type)} — ${name}${when ? ` — ${formatDateTime(when)}` : ""}`;
  els.dialogImage.src = alert.evidence_url;
  els.dialogImage.alt = `Evidence screenshot 证据截图: ${alertTypeLabel(alert.type)}, ${name}`;
  els.dialogLink.href = alert.evidence_url;
  if (typeof els.dialog.showModal === "function") els.dialog.showModal();
  else els.dialog.setAttribute("open", "");
  els.dialogClose.focus();
}

els.dialogClose.addEventListener("click", () => els.dialog.close());
els.dialog.addEventListener("click", (event) => {
  if (event.target === els.dialog) els.dialog.close(); // click on the backdrop
});
els.dialog.addEventListener("close", () => {
  els.dialogImage.removeAttribute("src");
  if (evidenceOpener && evidenceOpener.isConnected) evidenceOpener.focus();
  evidenceOpener = null;
});

// ---- health banner -----------------------------------------------------------------------

let lastHealthKey = null;

function renderHealth(health) {
  const problems = healthProblems(health);
  const key = JSON.stringify(problems);
  if (key === lastHealthKey) return; // unchanged: do not re-announce the banner
  lastHealthKey = key;
  els.healthList.replaceChildren(
    ...problems.map((problem) => {
      const li = document.createElement("li");
      li.className = "health-item";
      li.dataset.key = problem.key;
      li.dataset.level = problem.level;
      li.append(problem.text);
      if (problem.zh) {
        const zh = document.createElement("span");
        zh.lang = "zh";
        zh.className = "health-zh";
        zh.textContent = `（${problem.zh}）`;
        li.append(" ", zh);
      }
      return li;
    }),
  );
  els.healthBanner.hidden = problems.length === 0;
}

async function loadHealth() {
  // /health may answer 503 with the same body when degraded: read the body either way.
  try {
    const response = await fetch("/health", {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    });
    const body = await response.json();
    if (body && (body.detectors || body.models || body.status)) renderHealth(body);
  } catch {
    /* server unreachable: the connection indicator already says so */
  }
}

// ---- sittings ----------------------------------------------------------------------------

function pickDefaultSitting(sittings) {
  const fromUrl = new URLSearchParams(window.location.search).get("sitting");
  let remembered = null;
  try {
    remembered = window.sessionStorage.getItem(SITTING_KEY);
  } catch {
    /* ignore */
  }
  for (const wanted of [fromUrl, remembered, state.sittingId]) {
    if (wanted && sittings.some((s) => String(s.id) === wanted)) return wanted;
  }
  const now = Date.now();
  const running = sittings.find((s) => {
    const start = parseTime(s.starts_at);
    const end = parseTime(s.ends_at);
    return start && end && start.getTime() <= now && now <= end.getTime();
  });
  if (running) return String(running.id);
  // else the next one to start, else the first listed
  const upcoming = sittings
    .filter((s) => (parseTime(s.starts_at)?.getTime() ?? 0) > now)
    .sort((a, b) => parseTime(a.starts_at) - parseTime(b.starts_at));
  if (upcoming.length) return String(upcoming[0].id);
  return sittings.length ? String(sittings[0].id) : null;
}

function pickDefaultRoom(sittingId) {
  if (!sittingId) return null;
  const fromUrl = new URLSearchParams(window.location.search).get("room");
  if (fromUrl) return fromUrl;
  try {
    return window.sessionStorage.getItem(ROOM_KEY);
  } catch {
    return null;
  }
}

function renderSittings() {
  const select = els.sittingSelect;
  select.replaceChildren();
  if (!state.sittings.length) {
    const option = new Option("No sittings 暂无场次", "");
    select.append(option);
    select.disabled = true;
    return;
  }
  for (const sitting of state.sittings) {
    const start = parseTime(sitting.starts_at);
    const parts = [sitting.name || `#${sitting.id}`];
    if (sitting.kind) parts.push(sittingKindLabel(sitting.kind));
    if (start) parts.push(formatShortDateTime(start));
    select.append(new Option(parts.join(" · "), String(sitting.id)));
  }
  select.disabled = false;
  if (state.sittingId) select.value = state.sittingId;
}

async function loadSittings() {
  try {
    const sittings = await apiFetch("/api/console/sittings");
    state.sittings = Array.isArray(sittings) ? sittings : [];
    const chosen = pickDefaultSitting(state.sittings);
    renderSittings();
    showLoadError(null);
    if (chosen !== state.sittingId) selectSitting(chosen, pickDefaultRoom(chosen));
    else if (chosen) await loadSittingData();
    else tiles.clear();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // redirecting
    showLoadError(
      `Could not load the sittings 无法加载场次: ${err.message} — retrying 正在重试…`,
    );
    window.clearTimeout(sittingsRetryTimer);
    sittingsRetryTimer = window.setTimeout(loadSittings, SITTINGS_RETRY_MS);
  }
}

function selectSitting(sittingId, roomId = null) {
  state.sittingId = sittingId || null;
  // the sitting's times, not the browser's (issue 23)
  setTimeZone(state.sittings.find((s) => String(s.id) === String(sittingId))?.time_zone);
  state.roomId = roomId || null;
  state.rooms = [];
  state.generation += 1;
  if (els.sittingSelect.value !== (sittingId || "")) els.sittingSelect.value = sittingId || "";
  try {
    if (sittingId) window.sessionStorage.setItem(SITTING_KEY, sittingId);
  } catch {
    /* ignore */
  }
  rememberPlace();
  state.rosterLoaded = false;
  setAlertsLine(sittingId ? "loading" : null);
  panel.close();
  tiles.clear();
  feed.clear();
  renderRooms();
  requests.setPlace(state.sittingId, state.roomId);
  handover.setRoom(state.roomId);
  if (sittingId) {
    loadRooms();
    loadSittingData();
    socket.restart();
  } else {
    socket.stop();
    showConnection("idle");
  }
}

function rememberPlace() {
  const url = new URL(window.location.href);
  if (state.sittingId) url.searchParams.set("sitting", state.sittingId);
  else url.searchParams.delete("sitting");
  if (state.roomId) url.searchParams.set("room", state.roomId);
  else url.searchParams.delete("room");
  window.history.replaceState(null, "", url);
  try {
    if (state.roomId) window.sessionStorage.setItem(ROOM_KEY, state.roomId);
    else window.sessionStorage.removeItem(ROOM_KEY);
  } catch {
    /* ignore */
  }
  const record = new URL("record.html", window.location.href);
  if (state.sittingId) record.searchParams.set("sitting", state.sittingId);
  if (state.roomId) record.searchParams.set("room", state.roomId);
  els.recordLink.href = record.pathname + record.search;
}

els.sittingSelect.addEventListener("change", () => selectSitting(els.sittingSelect.value));

function selectRoom(roomId) {
  if ((roomId || null) === state.roomId) return;
  selectSitting(state.sittingId, roomId || null);
}

els.roomSelect.addEventListener("change", () => selectRoom(els.roomSelect.value));

function renderRooms() {
  const select = els.roomSelect;
  const rooms = state.rooms;
  select.replaceChildren(new Option(rooms.length > 1 ? "All my rooms 全部考场" : "—", ""));
  for (const room of rooms) {
    select.append(new Option(`${room.name} (${room.seated}/${room.capacity})`, String(room.id)));
  }
  select.disabled = rooms.length === 0;
  select.value = state.roomId || "";
  // several rooms on one screen: each tile names its room
  els.grid.dataset.multiRoom = String(!state.roomId && rooms.length > 1);
  const shown = state.roomId ? rooms.filter((r) => String(r.id) === state.roomId) : rooms;
  const staff = [...new Set(shown.flatMap((r) => r.invigilators.map((i) => i.display_name)))];
  const short = shown.filter((r) => r.understaffed);
  els.roomStaff.textContent = staff.length
    ? `${staff.join(", ")}${short.length ? " · understaffed 监考不足" : ""}`
    : "";
  els.roomStaff.dataset.understaffed = String(short.length > 0);
}

async function loadRooms() {
  const sittingId = state.sittingId;
  const generation = state.generation;
  try {
    const rooms = await apiFetch(`/api/console/rooms?sitting_id=${encodeURIComponent(sittingId)}`);
    if (generation !== state.generation) return;
    state.rooms = Array.isArray(rooms) ? rooms : [];
    if (state.roomId && !state.rooms.some((r) => String(r.id) === state.roomId)) {
      selectSitting(sittingId, null); // that room is not (or no longer) theirs
      return;
    }
    if (!state.roomId && state.rooms.length === 1) {
      state.roomId = String(state.rooms[0].id); // one room: name it
      rememberPlace();
      handover.setRoom(state.roomId);
    }
    renderRooms();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    state.rooms = [];
    renderRooms();
  }
}

function placeQuery() {
  const params = new URLSearchParams({ sitting_id: state.sittingId });
  if (state.roomId) params.set("room_id", state.roomId);
  return params.toString();
}

/** (Re)load candidates and alerts of the current sitting and merge them in. */
async function loadSittingData({ afterReconnect = false } = {}) {
  const sittingId = state.sittingId;
  if (!sittingId) return;
  const generation = state.generation;
  const changes = state.changes;
  const query = placeQuery();
  try {
    const [candidates, alerts, snoozes] = await Promise.all([
      apiFetch(`/api/console/candidates?${query}`),
      apiFetch(`/api/console/alerts?${query}&limit=300`),
      apiFetch(`/api/console/snoozes?${query}`),
    ]);
    if (generation !== state.generation) return; // the invigilator switched sittings
    state.rosterLoaded = true;
    tiles.setCandidates(Array.isArray(candidates) ? candidates : []);
    feed.setSnoozes(Array.isArray(snoozes) ? snoozes : []);
    // an alert handled (or a snooze set) while these lists were on their way: the tiles'
    // counts may be older than the feed; fetch again
    if (state.changes !== changes) scheduleRosterReload(300);
    const opened = panel.candidateId;
    if (opened !== null) {
      const fresh = (candidates || []).find((c) => String(c.id) === String(opened));
      if (fresh) panel.update(fresh);
    }
    // After a reconnect, alerts we had not seen were raised while we were away: show them.
    const added = feed
      .merge(Array.isArray(alerts) ? alerts : [], { markNew: afterReconnect })
      .filter((a) => !feed.isSnoozed(a));
    if (afterReconnect && added.length) {
      const critical = added.find((a) => isOpen(a) && a.severity === "critical");
      if (critical) notifier.critical(critical, tiles.candidateName(critical.candidate_id));
      for (const alert of added) tiles.flash(alert.candidate_id);
      announce(`${added.length} alert(s) received after reconnecting 重连后收到告警`);
    }
    showLoadError(null);
    setAlertsLine(null);
  } catch (err) {
    if (generation !== state.generation) return;
    if (err instanceof ApiError && err.status === 401) return; // redirecting
    if (err instanceof ApiError && err.code === "not_your_room") {
      showLoadError(`${err.message}`);
      return;
    }
    showLoadError(
      `Could not load this sitting 无法加载场次数据: ${err.message} — retrying 正在重试…`,
    );
    setAlertsLine("error");
    window.clearTimeout(sittingRetryTimer);
    sittingRetryTimer = window.setTimeout(() => {
      if (generation === state.generation) loadSittingData({ afterReconnect });
    }, SITTINGS_RETRY_MS);
  }
}

// ---- console socket -----------------------------------------------------------------------

// The server subscribes the socket to one sitting (?sitting_id=), so a new sitting means a
// new connection. The HTTP-only session cookie authenticates it; the token goes into the
// URL (where access logs may keep it) only if cookie-only attempts keep being refused.
const socket = new ReconnectingSocket(() =>
  socketUrl("/ws/console", {
    sitting_id: state.sittingId,
    room_id: state.roomId,
    token: socket.failuresInARow >= 2 ? getToken() : null,
  }),
);

const CONNECTION_TEXT = {
  connecting: "Connecting… 连接中",
  open: "Live 实时连接",
  closed: "Offline 已断开",
  idle: "Not connected (no sitting) 未连接",
};

function showConnection(connState, retryInMs) {
  els.connStatus.dataset.state = connState;
  let text = CONNECTION_TEXT[connState] || connState;
  if (connState === "closed" && retryInMs !== undefined) {
    const seconds = Math.max(1, Math.round(retryInMs / 1000));
    text = `Offline, retrying in ${seconds} s 已断开，${seconds} 秒后重连`;
  }
  els.connText.textContent = text;
  els.connStatus.title = text;
}

socket.addEventListener("state", (event) => {
  if (state.leaving) return;
  showConnection(event.detail.state, event.detail.retryInMs);
});

socket.addEventListener("open", (event) => {
  // Every (re)connection: fetch what may have happened while we were not listening.
  loadSittingData({ afterReconnect: event.detail.reconnect });
  requests.scheduleReload(0);
});

let lastSessionCheck = 0;
socket.addEventListener("close", () => {
  // A refused socket may mean the session ended: ask the API, which redirects on 401.
  if (Date.now() - lastSessionCheck < 10000) return;
  lastSessionCheck = Date.now();
  apiFetch("/api/console/sittings", { timeoutMs: 5000 }).catch(() => {});
});

let rosterReloadTimer = null;
function scheduleRosterReload(delayMs = 1000) {
  if (rosterReloadTimer) return;
  rosterReloadTimer = window.setTimeout(() => {
    rosterReloadTimer = null;
    loadSittingData();
  }, delayMs);
}

function belongsToSitting(item) {
  if (!state.sittingId) return false;
  if (item.sitting_id !== undefined && item.sitting_id !== null) {
    return String(item.sitting_id) === state.sittingId;
  }
  return tiles.has(item.candidate_id);
}

socket.addEventListener("message", (event) => {
  const msg = event.detail;
  if (panel.candidateId !== null) panel.onMessage(msg);
  requests.onMessage(msg);
  handover.onMessage(msg);
  switch (msg.type) {
    case "alert": {
      const alert = msg.alert;
      if (!alert || !belongsToSitting(alert)) return;
      if (!tiles.has(alert.candidate_id)) scheduleRosterReload(); // a candidate we lack
      if (applyAlert(alert, { markNew: true })) {
        const name = alert.candidate_name || tiles.candidateName(alert.candidate_id) || "";
        announce(`New alert 新告警: ${name} — ${alertTypeLabel(alert.type)}`);
        scheduleRosterReload(2000); // the escalation ladder starts
      }
      return;
    }
    case "alert_update": {
      // an ongoing alert's episode moved on (last seen, severity, worst moment) or closed
      const alert = msg.alert;
      if (!alert || !belongsToSitting(alert)) return;
      // keep what the console knows of its handling (the update does not carry it)
      const known = feed.get(alert.id);
      applyAlert(known ? { ...known, ...alert, handling: known.handling } : alert, { markNew: false });
      return;
    }
    case "snooze":
      if (msg.snooze && belongsToSitting(msg.snooze)) {
        state.changes += 1;
        feed.upsertSnooze(msg.snooze);
      }
      return;
    case "connection":
      // The socket carries this sitting's events only, so an unknown id is a new candidate.
      if (tiles.has(msg.candidate_id)) {
        tiles.setConnection(msg.candidate_id, msg.view, msg.connected, msg.at, msg.ended);
        const c = tiles.candidate(msg.candidate_id);
        if (c && String(panel.candidateId) === String(msg.candidate_id)) panel.update(c);
      } else {
        scheduleRosterReload();
      }
      return;
    case "thumbnails":
      tiles.thumbnailsChanged(msg.thumbnails); // fetched only when changed (issue 22)
      return;
    case "danmaku":
      if (msg.danmaku) tiles.upsertDanmaku(msg.danmaku);
      if (msg.danmaku && !msg.danmaku.delivered_at) scheduleRosterReload(2000); // ladder
      return;
    case "action": {
      const kind = msg.action?.kind;
      if (["hint", "voice_started", "voice_ended"].includes(kind) && !msg.action.data?.seen_at) {
        if (kind !== "hint" || !msg.action.data?.delivered_at) scheduleRosterReload(1500);
      }
      return;
    }
    case "page_event":
      // the candidate page's own events: leaving it is counted on the tile (issue 18)
      if (msg.screen_left && tiles.has(msg.candidate_id)) {
        tiles.patch(msg.candidate_id, { screen_left: msg.screen_left });
      }
      return;
    case "flow":
      // the exam flow moved a candidate on (issue 3): step, progress, time left
      if (tiles.has(msg.candidate_id)) scheduleRosterReload(1500);
      return;
    case "extension":
      // time given back by the exam flow: the candidates' ends move
      scheduleRosterReload(500);
      return;
    case "rooms":
      loadRooms();
      scheduleRosterReload(500);
      return;
    case "overflow":
      loadSittingData();
      return;
    case "health":
      renderHealth(msg.health && typeof msg.health === "object" ? msg.health : msg);
      return;
    default:
      return; // unknown message types are ignored (forward compatible)
  }
});

// ---- tile size -------------------------------------------------------------------------------

const TILE_SIZE_KEY = "proctor.console.tileSize";
const tileSize = $("tile-size");
function applyTileSize(size) {
  if (!["s", "m", "l"].includes(size)) size = "m";
  els.grid.dataset.size = size;
  tileSize.value = size;
}
try {
  applyTileSize(window.localStorage.getItem(TILE_SIZE_KEY) || "m");
} catch {
  applyTileSize("m");
}
tileSize.addEventListener("change", () => {
  applyTileSize(tileSize.value);
  try {
    window.localStorage.setItem(TILE_SIZE_KEY, tileSize.value);
  } catch {
    /* ignore */
  }
});

// ---- order, pages, zoom (issue 23: a grid for 30) --------------------------------------------

const ORDER_KEY = "proctor.console.order";
const PAGE_SIZE_KEY = "proctor.console.perPage";
const tileOrder = $("tile-order");
const pageSize = $("tile-page-size");
const pager = $("tile-pager");
const pageInfo = $("page-info");
const pagePrev = $("page-prev");
const pageNext = $("page-next");

function remembered(key, fallback) {
  try {
    return window.localStorage.getItem(key) ?? fallback;
  } catch {
    return fallback;
  }
}

function remember(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    /* ignore */
  }
}

function renderPager(summary) {
  const { page, pages, perPage, shown } = summary;
  pager.hidden = !perPage || pages <= 1;
  pager.dataset.page = String(page + 1);
  pager.dataset.pages = String(pages);
  const from = perPage ? page * perPage + 1 : 1;
  const to = perPage ? Math.min(shown, (page + 1) * perPage) : shown;
  pageInfo.textContent = `Page 第 ${page + 1} / ${pages} 页 · ${from}–${to} of ${shown}`;
  pagePrev.disabled = page <= 0;
  pageNext.disabled = page >= pages - 1;
}

tileOrder.value = ORDERS.includes(remembered(ORDER_KEY, "")) ? remembered(ORDER_KEY, "") : "urgency";
tiles.setOrder(tileOrder.value);
tileOrder.addEventListener("change", () => {
  tiles.setOrder(tileOrder.value);
  remember(ORDER_KEY, tileOrder.value);
});
{
  const size = Number(remembered(PAGE_SIZE_KEY, "0"));
  pageSize.value = String(PAGE_SIZES.includes(size) ? size : 0);
}
tiles.setPageSize(pageSize.value);
pageSize.addEventListener("change", () => {
  tiles.setPageSize(pageSize.value);
  remember(PAGE_SIZE_KEY, pageSize.value);
});
pagePrev.addEventListener("click", () => tiles.setPage(tiles.page - 1));
pageNext.addEventListener("click", () => tiles.setPage(tiles.page + 1));

/** One tile zoomed over the grid: both views large, side by side, live (WebRTC). */
const zoom = {
  dialog: $("tile-zoom"),
  views: [],
  candidateId: null,
  opener: null,
  open(candidateId, opener) {
    const c = tiles.candidate(candidateId);
    if (!c) return;
    this.stopViews();
    this.candidateId = candidateId;
    this.opener = opener;
    $("zoom-seat").textContent = c.room ? String(c.room.seat).padStart(2, "0") : "";
    $("zoom-seat").hidden = !c.room;
    $("zoom-name").textContent = c.name || `#${c.id}`;
    $("zoom-room").textContent = c.room ? c.room.name : "";
    const alerts = $("zoom-alerts");
    const open = tiles.tiles.get(String(candidateId))?.openAlerts ?? (Number(c.open_alerts) || 0);
    alerts.dataset.count = String(open);
    alerts.textContent = `${open} ${open === 1 ? "alert" : "alerts"} 告警`;
    this.dialog.dataset.candidateId = String(candidateId);
    tiles.setPaused(true); // the grid is behind the zoomed tile
    if (!this.dialog.open) this.dialog.showModal();
    this.views = [
      new LiveView(candidateId, "first", $("zoom-first")),
      new LiveView(candidateId, "second", $("zoom-second")),
    ];
    for (const view of this.views) view.start();
  },
  stopViews() {
    for (const view of this.views) view.stop();
    this.views = [];
  },
  close() {
    this.stopViews();
    if (this.dialog.open) this.dialog.close();
  },
};
zoom.dialog.addEventListener("close", () => {
  zoom.stopViews();
  if (!$("candidate-panel").open) tiles.setPaused(false);
  if (zoom.opener?.isConnected) zoom.opener.focus({ preventScroll: true });
});
$("zoom-close").addEventListener("click", () => zoom.close());
$("zoom-open").addEventListener("click", () => {
  const id = zoom.candidateId;
  const opener = zoom.opener;
  zoom.close();
  tiles.setPaused(true);
  panel.open(id, opener);
});
// a click on the backdrop (outside the box) closes it too
zoom.dialog.addEventListener("click", (event) => {
  if (event.target === zoom.dialog) zoom.close();
});

// ---- start ---------------------------------------------------------------------------------

showStaffName();
renderFilters();
try {
  const remembered = window.sessionStorage.getItem(FILTER_KEY);
  if (remembered && FILTERS[remembered]) filterButtons.get(remembered).click();
} catch {
  /* ignore */
}
try {
  const types = JSON.parse(window.sessionStorage.getItem(TYPE_FILTER_KEY) || "[]");
  if (Array.isArray(types) && types.length) feed.setTypes(types);
} catch {
  /* ignore */
}
loadHealth();
// The socket pushes health on connect; polling as well catches a detector that fails later.
window.setInterval(loadHealth, HEALTH_POLL_MS);
window.setInterval(() => tickEpisodes(), 1000); // ongoing alerts' running durations
loadSittings();
tiles.startThumbnails(); // the socket starts once a sitting is chosen
window.addEventListener("pagehide", () => socket.stop());
window.addEventListener("pageshow", (event) => {
  // back from the bfcache: reconnect and catch up
  if (event.persisted && !state.leaving && state.sittingId) socket.restart();
});
