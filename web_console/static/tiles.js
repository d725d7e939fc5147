// The grid of candidate tiles: thumbnails of both views (fetched when the console socket
// says a view has a new one — about once a second —, never for a view without video),
// connection state per view (and for how long a view has been lost), second view paired
// or not, the exam flow's step / progress / time left (when the flow provides them), open
// alerts by severity, the next rung of the escalation ladder, a voice call under way, the
// danmaku form and its delivery state.
//
// Tiles are sorted by urgency (critical alerts, warnings, a view lost — longest first —,
// other alerts, phone missing, never connected, the rest; each group in seat order), or
// kept in seat order (room, then seat: tiles never move), as the invigilator chooses; they
// can be filtered by state and shown a page at a time (9, 16 or 30 tiles; hidden tiles
// fetch nothing). A click on a tile's pictures zooms it (both views large, live). Moving
// tiles keeps keyboard focus where it was.

import { ApiError } from "./api.js";
import {
  alertTypeLabel,
  DANMAKU_STATES,
  flowStepLabel,
  violationCategoryLabel,
  formatClock,
  formatDateTime,
  formatDuration,
  lastFour,
  maskIdNumber,
  parseTime,
  rungLabel,
  VIEWS,
} from "./labels.js";

const VIEW_NAMES = ["first", "second"];
const DANMAKU_RANK = { sent: 0, delivered: 1, seen: 2 };
const DANMAKU_KEEP = 3; // messages shown per tile
const TICK_MS = 250;
const CLOCK_MS = 1000; // "lost for" and "time left" counters
const REFRESH_MS = { first: 1000, second: 2000 }; // at most; second view is the small one
const LOAD_TIMEOUT_MS = 10000;
const FLASH_MS = 4000;
export const ORDERS = ["urgency", "seat"];
export const PAGE_SIZES = [9, 16, 30, 0]; // 0: every tile on one page

/** Filters of the room view: name → [words, predicate on a tile]. */
export const FILTERS = {
  all: ["All 全部", () => true],
  alerts: ["Open alerts 有告警", (t) => t.openAlerts > 0],
  lost: ["Connection lost 断线", (t) => VIEW_NAMES.some((v) => isLost(t, v))],
  phone: [
    "No second view 第二视角未连接",
    (t) => !t.refs.views.second.connected && !t.refs.views.second.ended && !isOver(t),
  ],
  absent: ["Not arrived 未到", (t) => !hasArrived(t)],
  answering: [flowStepLabel("answering"), (t) => t.data.flow?.step === "answering"],
  submitted: [flowStepLabel("submitted"), (t) => Boolean(t.data.flow?.ended)],
};

/** The candidate's exam is over (handed in, ended): their views ended, nothing is lost. */
function isOver(tile) {
  return Boolean(tile.data.flow?.ended);
}

function isLost(tile, view) {
  const state = tile.refs.views[view];
  // it had connected, then went away (not because the exam ended)
  return !state.connected && Boolean(state.since) && !state.ended && !isOver(tile);
}

function hasArrived(tile) {
  return (
    VIEW_NAMES.some((v) => tile.refs.views[v].connected || tile.refs.views[v].since) ||
    Boolean(tile.data.flow)
  );
}

function danmakuState(d) {
  if (d.seen_at) return "seen";
  if (d.delivered_at) return "delivered";
  return "sent";
}

function withCacheBuster(url) {
  return `${url}${url.includes("?") ? "&" : "?"}t=${Date.now()}`;
}

function focusSnapshot(container) {
  const active = document.activeElement;
  if (!active || active === document.body || !container.contains(active)) return null;
  const snap = { element: active, start: null, end: null };
  try {
    snap.start = active.selectionStart;
    snap.end = active.selectionEnd;
  } catch {
    /* not a text field */
  }
  return snap;
}

function restoreFocus(snap) {
  if (!snap || document.activeElement === snap.element || !snap.element.isConnected) return;
  snap.element.focus({ preventScroll: true });
  if (snap.start !== null && snap.start !== undefined) {
    try {
      snap.element.setSelectionRange(snap.start, snap.end);
    } catch {
      /* ignore */
    }
  }
}

function setChip(el, text, state = null, title = "") {
  el.hidden = !text;
  el.textContent = text || "";
  if (state) el.dataset.state = state;
  else delete el.dataset.state;
  el.title = title || "";
}

export class TileGrid {
  /**
   * @param {HTMLElement} grid container of the tiles
   * @param {HTMLTemplateElement} template the tile template
   * @param {{sendDanmaku: (candidateId: number|string, text: string) => Promise<any>,
   *          openCandidate?: (candidateId: number|string, opener: HTMLElement) => void,
   *          onChange?: (summary: {total: number, connected: number, withAlerts: number,
   *                                openAlerts: number, shown: number,
   *                                counts: Record<string, number>}) => void}} hooks
   */
  constructor(grid, template, hooks) {
    this.grid = grid;
    this.template = template;
    this.hooks = hooks;
    /** @type {Map<string, any>} */
    this.tiles = new Map();
    this.filter = "all";
    this.order = "urgency";
    this.perPage = 0;
    this.page = 0;
    this.pages = 1;
    this.ordered = []; // tiles in display order
    this.paused = false;
    this.sortQueued = false;
    this.timer = null;
    this.clockTimer = null;
    this.observer =
      "IntersectionObserver" in window
        ? new IntersectionObserver((entries) => this.onIntersect(entries), {
            rootMargin: "200px",
          })
        : null;
  }

  // ---- roster --------------------------------------------------------------------------

  has(candidateId) {
    return this.tiles.has(String(candidateId));
  }

  candidateName(candidateId) {
    const tile = this.tiles.get(String(candidateId));
    return tile ? tile.data.name : null;
  }

  candidate(candidateId) {
    const tile = this.tiles.get(String(candidateId));
    return tile ? tile.data : null;
  }

  clear() {
    for (const tile of this.tiles.values()) this.removeTile(tile);
    this.tiles.clear();
    this.ordered = [];
    this.changed();
  }

  /** Merge a fresh candidate list: update known tiles, add new ones, drop missing ones. */
  setCandidates(candidates) {
    const seen = new Set();
    candidates.forEach((candidate, index) => {
      const key = String(candidate.id);
      seen.add(key);
      let tile = this.tiles.get(key);
      if (!tile) {
        tile = this.createTile(candidate);
        this.tiles.set(key, tile);
      }
      tile.index = index;
      this.update(tile, candidate);
    });
    for (const [key, tile] of this.tiles) {
      if (!seen.has(key)) {
        this.removeTile(tile);
        this.tiles.delete(key);
      }
    }
    this.sortNow();
    this.applyFilter();
    this.changed();
  }

  createTile(candidate) {
    const el = this.template.content.firstElementChild.cloneNode(true);
    const key = String(candidate.id);
    el.dataset.candidateId = key;
    const nameId = `tile-name-${key}`;
    const inputId = `danmaku-input-${key}`;
    const refs = {
      name: el.querySelector(".tile-name"),
      seat: el.querySelector(".tile-seat"),
      room: el.querySelector(".tile-room"),
      views_box: el.querySelector(".tile-views"),
      nameText: el.querySelector(".tile-name-text"),
      idNumber: el.querySelector(".tile-id"),
      badge: el.querySelector(".alert-badge"),
      flow: el.querySelector(".flow-chip"),
      progress: el.querySelector(".progress-chip"),
      time: el.querySelector(".time-chip"),
      phone: el.querySelector(".phone-chip"),
      screen: el.querySelector(".screen-chip"),
      voice: el.querySelector(".voice-chip"),
      ladder: el.querySelector(".ladder-chip"),
      snooze: el.querySelector(".snooze-chip"),
      open: el.querySelector(".open-button"),
      form: el.querySelector(".danmaku-form"),
      label: el.querySelector(".danmaku-label"),
      input: el.querySelector(".danmaku-input"),
      send: el.querySelector(".danmaku-send"),
      error: el.querySelector(".danmaku-error"),
      list: el.querySelector(".danmaku-list"),
      views: {},
    };
    refs.name.id = nameId;
    el.setAttribute("aria-labelledby", nameId);
    refs.input.id = inputId;
    refs.label.htmlFor = inputId;

    const tile = {
      key,
      el,
      refs,
      data: candidate,
      index: 0,
      openAlerts: 0,
      severities: {},
      visible: !this.observer,
      danmaku: new Map(),
      sending: false,
      flashTimer: null,
    };

    for (const view of VIEW_NAMES) {
      const figure = el.querySelector(`.view[data-view="${view}"]`);
      const img = figure.querySelector("img.thumb");
      const state = {
        figure,
        img,
        noVideo: figure.querySelector(".no-video"),
        conn: figure.querySelector(".conn"),
        connected: false,
        since: null,
        url: null,
        pending: false,
        pendingSince: 0,
        dueAt: 0,
        hasFrame: false,
        stamp: null, // when the server's newest thumbnail was taken (null: it has none)
        requested: null, // the stamp of the thumbnail being fetched
        loaded: null, // ... of the thumbnail shown
      };
      img.addEventListener("load", () => this.onThumbLoad(tile, view));
      img.addEventListener("error", () => this.onThumbError(tile, view));
      refs.views[view] = state;
    }
    // a click on the pictures (or Enter on them) zooms the tile: both views large, live
    refs.views_box.addEventListener("click", () => this.zoom(tile));
    refs.views_box.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
      this.zoom(tile);
    });

    refs.open.addEventListener("click", () => this.open(tile));
    refs.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitDanmaku(tile);
    });
    refs.input.addEventListener("input", () => {
      if (!refs.error.hidden) this.showDanmakuError(tile, null);
    });

    if (this.observer) this.observer.observe(el);
    this.grid.appendChild(el);
    return tile;
  }

  open(tile) {
    if (this.hooks.openCandidate) this.hooks.openCandidate(tile.data.id, tile.refs.open);
  }

  zoom(tile) {
    if (this.hooks.zoomCandidate) this.hooks.zoomCandidate(tile.data.id, tile.refs.views_box);
  }

  removeTile(tile) {
    if (this.observer) this.observer.unobserve(tile.el);
    window.clearTimeout(tile.flashTimer);
    for (const view of VIEW_NAMES) tile.refs.views[view].img.removeAttribute("src");
    tile.el.remove();
  }

  update(tile, candidate) {
    tile.data = candidate;
    const { refs } = tile;
    const name = candidate.name || `#${candidate.id}`;
    refs.nameText.textContent = name;
    refs.name.title = candidate.room
      ? `${name} · ${candidate.room.name} · seat 座位 ${candidate.room.seat}`
      : name;
    refs.seat.textContent = candidate.room ? String(candidate.room.seat).padStart(2, "0") : "";
    refs.seat.hidden = !candidate.room;
    if (refs.room) refs.room.textContent = candidate.room ? candidate.room.name : "";
    refs.views_box.setAttribute("aria-label", `Zoom ${name} 放大考生画面`);
    // "ID ****…1234": the mask may be cut short in a narrow tile, the last four never are
    const masked = maskIdNumber(candidate.id_number);
    const four = lastFour(candidate.id_number);
    const maskPart = document.createElement("span");
    maskPart.className = "id-mask";
    maskPart.textContent = `ID ${four ? masked.slice(0, -4) : masked}`;
    const lastPart = document.createElement("span");
    lastPart.className = "id-last";
    lastPart.textContent = four;
    refs.idNumber.replaceChildren(maskPart, lastPart);
    refs.idNumber.setAttribute(
      "aria-label",
      four ? `ID number ending ${four} 证件号尾号 ${four}` : "ID number hidden 证件号已隐藏",
    );
    refs.idNumber.title = "ID number, masked 证件号（已隐藏）";
    refs.input.placeholder = "Warning text 弹幕警告…";
    refs.label.textContent = `On-screen warning to ${name} 向考生发送弹幕警告`;
    refs.open.setAttribute("aria-label", `Open ${name} 打开考生`);

    const views = candidate.views || {};
    const urls = candidate.thumbnail_urls || {};
    for (const view of VIEW_NAMES) {
      const state = refs.views[view];
      const info = views[view] || {};
      state.url =
        urls[view] ||
        `/api/console/candidates/${encodeURIComponent(candidate.id)}/thumbnail/${view}.jpg`;
      state.img.alt = `${name} — ${VIEWS[view]}`;
      this.setStamp(tile, view, info.last_frame_at ?? null);
      this.applyConnection(
        tile, view, Boolean(info.connected), info.since ?? null, Boolean(info.ended),
      );
    }
    tile.severities = { ...(candidate.open_by_severity || {}) };
    this.applyAlertCount(tile, Number(candidate.open_alerts) || 0);
    this.applyStatus(tile);
  }

  /** Flow step, progress, time left (HOOKS: shown when the exam flow provides them),
   *  second view paired, voice call, next rung of the ladder. */
  applyStatus(tile) {
    const { refs, data } = tile;
    const flow = data.flow;
    tile.el.dataset.step = flow?.step || "";
    tile.el.dataset.paused = String(Boolean(flow?.paused));
    if (flow?.paused) {
      setChip(refs.flow, flowStepLabel("paused"), "paused", flow.paused.reason || "");
    } else if (flow?.terminated) {
      const why = violationCategoryLabel(flow.terminated.category);
      setChip(refs.flow, `${flowStepLabel("terminated")} · ${why}`, "terminated", flow.terminated.reason || "");
    } else {
      setChip(refs.flow, flow?.step ? flowStepLabel(flow.step) : "", flow?.step || null);
    }
    const progress = flow?.progress;
    setChip(
      refs.progress,
      progress ? `${progress.answered}/${progress.total}` : "",
      null,
      "Questions answered 已答题数",
    );
    this.applyTime(tile);
    const second = refs.views.second;
    let phone = "";
    let phoneState = null;
    if (!second.connected && !second.ended && !isOver(tile)) {
      if (second.since) {
        phone = "Phone lost 手机断开";
        phoneState = "lost";
      } else if (flow && !flow.phone_paired && !data.second_view_ever) {
        phone = "Phone not paired 手机未配对";
        phoneState = "unpaired";
      } else {
        phone = "No phone view 无第二视角";
        phoneState = "missing";
      }
    }
    tile.el.dataset.phone = phoneState || "ok";
    setChip(refs.phone, phone, phoneState);
    // leaving the exam page (切屏, issue 18): how often, how long in all, away now
    const left = data.screen_left;
    tile.el.dataset.screenLeft = String(left?.count || 0);
    setChip(
      refs.screen,
      left?.count ? `Left page 切屏 ${left.count}× · ${formatDuration(left.seconds)}` : "",
      left?.away_since ? "away" : left?.count ? "left" : null,
      left?.away_since ? `Away since 离开自 ${formatDateTime(parseTime(left.away_since))}` : "",
    );
    setChip(refs.voice, data.voice ? "In a call 通话中" : "", data.voice ? "on" : null);
    const next = data.ladder?.next;
    setChip(
      refs.ladder,
      next ? `Next 下一步: ${rungLabel(next)}` : "",
      next || null,
      data.ladder ? `Done 已做: ${(data.ladder.done || []).map(rungLabel).join(", ") || "—"}` : "",
    );
  }

  applyTime(tile) {
    const flow = tile.data.flow;
    const ends = parseTime(flow?.ends_at);
    const live = flow && ["waiting", "answering"].includes(flow.step);
    if (!ends || !live) {
      setChip(tile.refs.time, "");
      return;
    }
    // paused: the time left is frozen at the server's figure
    const left = flow.paused ? flow.paused.seconds_left : (ends.getTime() - Date.now()) / 1000;
    setChip(
      tile.refs.time,
      `${formatDuration(left)} left 剩余`,
      left < 600 ? "short" : null,
      `Ends 结束 ${formatDateTime(ends)}`,
    );
  }

  /** A candidate-level change pushed by the socket (flow step, voice, ladder...). */
  patch(candidateId, changes) {
    const tile = this.tiles.get(String(candidateId));
    if (!tile) return;
    tile.data = { ...tile.data, ...changes };
    this.applyStatus(tile);
    this.queueSort();
    this.applyFilter();
    this.changed();
  }

  // ---- connection state ------------------------------------------------------------------

  setConnection(candidateId, view, connected, at, ended = false) {
    const tile = this.tiles.get(String(candidateId));
    if (!tile || !VIEW_NAMES.includes(view)) return;
    this.applyConnection(tile, view, Boolean(connected), at ?? null, Boolean(ended));
    const views = (tile.data.views = tile.data.views || {});
    views[view] = {
      ...(views[view] || {}),
      connected: Boolean(connected),
      ended: Boolean(ended) && !connected,
      since: at ?? null,
    };
    if (view === "second" && connected) tile.data.second_view_ever = true;
    this.applyStatus(tile);
    this.queueSort();
    this.applyFilter();
    this.changed();
  }

  applyConnection(tile, view, connected, since, ended = false) {
    const state = tile.refs.views[view];
    const changed = state.connected !== connected;
    state.connected = connected;
    state.since = since;
    state.ended = ended && !connected; // went because the exam ended: not lost
    state.conn.dataset.connected = String(connected);
    state.figure.dataset.connected = String(connected);
    state.conn.dataset.ended = String(state.ended || (!connected && isOver(tile)));
    state.conn.dataset.lost = String(isLost(tile, view));
    this.renderConnection(tile, view);
    const allConnected = VIEW_NAMES.every((v) => tile.refs.views[v].connected);
    tile.el.dataset.connected = String(allConnected);
    tile.el.classList.toggle("is-disconnected", !allConnected);
    if (changed && connected) state.dueAt = 0; // fetch a frame right away
  }

  renderConnection(tile, view) {
    const state = tile.refs.views[view];
    const when = parseTime(state.since);
    let word;
    if (state.connected) word = `connected 已连接${when ? ` · ${formatClock(when)}` : ""}`;
    else if (state.ended || (when && isOver(tile))) word = "ended 已结束";
    else if (when) word = `lost 断开 ${formatDuration((Date.now() - when.getTime()) / 1000)}`;
    else word = "not connected 未连接";
    const viewEl = document.createElement("span");
    viewEl.className = "conn-view";
    viewEl.textContent = `${VIEWS[view]}:`;
    const stateEl = document.createElement("span");
    stateEl.className = "conn-state";
    stateEl.textContent = word;
    state.conn.replaceChildren(viewEl, " ", stateEl);
    state.conn.title = when
      ? `${VIEWS[view]}: ${state.connected ? "connected since" : "lost since"} ${formatDateTime(when)}`
      : "";
  }

  tickClocks() {
    for (const tile of this.tiles.values()) {
      if (!tile.visible) continue;
      for (const view of VIEW_NAMES) {
        const state = tile.refs.views[view];
        if (isLost(tile, view)) this.renderConnection(tile, view);
      }
      this.applyTime(tile);
    }
  }

  // ---- alerts ----------------------------------------------------------------------------

  /** The running snoozes (静音) of the candidates: a chip naming the snoozed types. */
  setSnoozes(snoozes) {
    const byCandidate = new Map();
    for (const s of snoozes || []) {
      const key = String(s.candidate_id);
      if (!byCandidate.has(key)) byCandidate.set(key, []);
      byCandidate.get(key).push(s);
    }
    for (const [key, tile] of this.tiles) {
      const mine = byCandidate.get(key) || [];
      const chip = tile.refs.snooze;
      if (!chip) continue;
      tile.el.dataset.snoozed = mine.map((s) => s.type).join(" ");
      setChip(
        chip,
        mine.length ? `Snoozed 静音: ${mine.map((s) => alertTypeLabel(s.type)).join(", ")}` : "",
        mine.length ? "on" : null,
        mine.map((s) => `${alertTypeLabel(s.type)} — ${s.staff_name || ""}: ${s.reason}`).join("\n"),
      );
    }
  }

  /** A new alert arrived for this candidate: one more open alert, and flash the tile. */
  alertRaised(candidateId, severity = "warning") {
    const tile = this.tiles.get(String(candidateId));
    if (!tile) return;
    tile.severities[severity] = (tile.severities[severity] || 0) + 1;
    this.applyAlertCount(tile, tile.openAlerts + 1);
    this.flash(candidateId);
    this.queueSort();
    this.applyFilter();
    this.changed();
  }

  /** An open alert was acknowledged or dismissed. */
  alertClosed(candidateId, severity = "warning") {
    const tile = this.tiles.get(String(candidateId));
    if (!tile) return;
    if (tile.severities[severity]) tile.severities[severity] -= 1;
    this.applyAlertCount(tile, Math.max(0, tile.openAlerts - 1));
    if (tile.openAlerts === 0) this.patch(candidateId, { ladder: null });
    this.queueSort();
    this.applyFilter();
    this.changed();
  }

  applyAlertCount(tile, count) {
    tile.openAlerts = count;
    const { badge } = tile.refs;
    badge.dataset.count = String(count);
    const worst = ["critical", "warning", "info"].find((s) => tile.severities[s] > 0);
    badge.dataset.severity = count > 0 ? worst || "warning" : "none";
    badge.replaceChildren();
    const number = document.createElement("span");
    number.className = "badge-count";
    number.textContent = String(count);
    const words = document.createElement("span");
    words.className = "badge-label";
    words.textContent = count === 1 ? " alert 告警" : " alerts 告警";
    badge.append(number, words);
    badge.title = `${count} open alert(s) 未处理告警`;
    tile.el.dataset.openAlerts = String(count);
    tile.el.classList.toggle("has-alerts", count > 0);
  }

  flash(candidateId) {
    const tile = this.tiles.get(String(candidateId));
    if (!tile) return;
    const { el } = tile;
    el.classList.remove("flash");
    void el.offsetWidth; // restart the animation
    el.classList.add("flash");
    window.clearTimeout(tile.flashTimer);
    tile.flashTimer = window.setTimeout(() => el.classList.remove("flash"), FLASH_MS);
  }

  /** Bring a candidate's tile into view and give it focus (e.g. from the alert feed). */
  focusTile(candidateId) {
    const tile = this.tiles.get(String(candidateId));
    if (!tile) return false;
    if (!FILTERS[this.filter][1](tile)) this.setFilter("all");
    this.showPageOf(tile);
    tile.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
    tile.el.focus({ preventScroll: true });
    this.flash(candidateId);
    return true;
  }

  // ---- sorting and filtering --------------------------------------------------------------

  /** [group, tie-breaker]: smaller is more urgent. */
  urgency(tile) {
    const sev = tile.severities;
    if (sev.critical > 0) return [0, 0];
    if (sev.warning > 0) return [1, 0];
    const lost = VIEW_NAMES.filter((v) => isLost(tile, v));
    if (lost.length) {
      const since = Math.min(...lost.map((v) => parseTime(tile.refs.views[v].since).getTime()));
      return [2, since]; // lost longest first
    }
    if (tile.openAlerts > 0) return [3, 0];
    if (!hasArrived(tile)) return [5, 0];
    if (!tile.refs.views.second.connected && !isOver(tile)) return [4, 0];
    return [6, 0];
  }

  queueSort() {
    if (this.sortQueued) return;
    this.sortQueued = true;
    queueMicrotask(() => {
      this.sortQueued = false;
      this.sortNow();
    });
  }

  /** Seat order: room (by name), then seat number, then the roster's order. */
  static bySeat(a, b) {
    const ra = a.data.room;
    const rb = b.data.room;
    const room = (ra?.name || "").localeCompare(rb?.name || "", "zh-CN", { numeric: true });
    const seat = (Number(ra?.seat) || 1e9) - (Number(rb?.seat) || 1e9);
    return room || seat || a.index - b.index;
  }

  /** "urgency" (the most urgent first; tiles move) or "seat" (fixed seat order). */
  setOrder(order) {
    this.order = ORDERS.includes(order) ? order : "urgency";
    this.grid.dataset.order = this.order;
    this.sortNow();
    this.changed();
  }

  /** Tiles per page (9, 16, 30; 0: all on one page). */
  setPageSize(size) {
    this.perPage = PAGE_SIZES.includes(Number(size)) ? Number(size) : 0;
    this.grid.dataset.perPage = String(this.perPage || "all");
    this.page = 0;
    this.applyFilter();
    this.changed();
  }

  setPage(page) {
    this.page = Math.max(0, Math.min(Number(page) || 0, this.pages - 1));
    this.applyFilter();
    this.changed();
  }

  showPageOf(tile) {
    if (!this.perPage) return;
    const shown = this.ordered.filter((t) => FILTERS[this.filter][1](t));
    const at = shown.indexOf(tile);
    if (at >= 0 && Math.floor(at / this.perPage) !== this.page) {
      this.setPage(Math.floor(at / this.perPage));
    }
  }

  sortNow() {
    const keyed = [...this.tiles.values()].map((tile) => [tile, this.urgency(tile)]);
    if (this.order === "seat") keyed.sort(([a], [b]) => TileGrid.bySeat(a, b));
    else keyed.sort(([a, ua], [b, ub]) => ua[0] - ub[0] || ua[1] - ub[1] || a.index - b.index);
    const desired = keyed.map(([tile]) => tile);
    desired.forEach((tile, i) => {
      tile.el.dataset.rank = String(i);
      tile.el.dataset.urgency = String(this.urgency(tile)[0]);
    });
    const orderChanged = desired.some((tile, i) => this.ordered[i] !== tile);
    this.ordered = desired;
    if (orderChanged && this.perPage) this.applyFilter(); // pages follow the new order
    const current = [...this.grid.children];
    if (desired.every((tile, i) => current[i] === tile.el)) return;

    const snap = focusSnapshot(this.grid);
    const canMove = typeof this.grid.moveBefore === "function"; // keeps focus and state
    let ref = this.grid.firstElementChild;
    for (const tile of desired) {
      if (tile.el === ref) {
        ref = ref.nextElementSibling;
        continue;
      }
      if (canMove) {
        try {
          this.grid.moveBefore(tile.el, ref);
          continue;
        } catch {
          /* fall back to insertBefore */
        }
      }
      this.grid.insertBefore(tile.el, ref);
    }
    restoreFocus(snap);
  }

  setFilter(name) {
    this.filter = FILTERS[name] ? name : "all";
    this.page = 0;
    this.applyFilter();
    this.changed();
  }

  /** The filter, then the page: a tile is shown when it passes the filter and falls on
   *  the current page of those that pass (in display order). */
  applyFilter() {
    const [, keep] = FILTERS[this.filter];
    const ordered = this.ordered.length === this.tiles.size ? this.ordered : [...this.tiles.values()];
    let n = 0;
    for (const tile of ordered) {
      const passes = keep(tile);
      const index = passes ? n++ : -1;
      tile.filtered = passes;
      const onPage = !this.perPage || Math.floor(index / this.perPage) === this.page;
      tile.el.hidden = !passes || !onPage;
    }
    this.pages = this.perPage ? Math.max(1, Math.ceil(n / this.perPage)) : 1;
    if (this.page >= this.pages) {
      this.page = this.pages - 1;
      this.applyFilter();
    }
  }

  // ---- summary -------------------------------------------------------------------------

  summary() {
    let connected = 0;
    let withAlerts = 0;
    let openAlerts = 0;
    let shown = 0;
    const counts = Object.fromEntries(Object.keys(FILTERS).map((k) => [k, 0]));
    for (const tile of this.tiles.values()) {
      if (VIEW_NAMES.every((v) => tile.refs.views[v].connected)) connected += 1;
      if (tile.openAlerts > 0) withAlerts += 1;
      openAlerts += tile.openAlerts;
      if (FILTERS[this.filter][1](tile)) shown += 1; // on any page
      for (const [name, [, keep]] of Object.entries(FILTERS)) if (keep(tile)) counts[name] += 1;
    }
    return {
      total: this.tiles.size,
      connected,
      withAlerts,
      openAlerts,
      shown,
      counts,
      page: this.page,
      pages: this.pages,
      perPage: this.perPage,
    };
  }

  changed() {
    if (this.hooks.onChange) this.hooks.onChange(this.summary());
  }

  // ---- thumbnails ----------------------------------------------------------------------

  startThumbnails() {
    if (this.timer) return;
    this.timer = window.setInterval(() => this.tick(), TICK_MS);
    this.clockTimer = window.setInterval(() => {
      if (document.visibilityState !== "hidden") this.tickClocks();
    }, CLOCK_MS);
    this.tick();
  }

  stopThumbnails() {
    window.clearInterval(this.timer);
    window.clearInterval(this.clockTimer);
    this.timer = this.clockTimer = null;
  }

  onIntersect(entries) {
    for (const entry of entries) {
      const tile = this.tiles.get(entry.target.dataset.candidateId);
      if (!tile) continue;
      tile.visible = entry.isIntersecting;
      if (tile.visible) for (const v of VIEW_NAMES) tile.refs.views[v].dueAt = 0;
    }
  }

  /** While a candidate is opened over the grid, its thumbnails need not be fetched. */
  setPaused(paused) {
    this.paused = Boolean(paused);
    if (this.paused) return;
    for (const tile of this.tiles.values()) {
      for (const view of VIEW_NAMES) tile.refs.views[view].dueAt = 0; // catch up at once
    }
  }

  /** The console socket's notice of new (or gone) thumbnails: [{candidate_id, view, at}]. */
  thumbnailsChanged(items) {
    for (const item of items || []) {
      const tile = this.tiles.get(String(item.candidate_id));
      if (tile && VIEW_NAMES.includes(item.view)) this.setStamp(tile, item.view, item.at ?? null);
    }
  }

  setStamp(tile, view, stamp) {
    const state = tile.refs.views[view];
    state.stamp = stamp;
    if (stamp === null && !state.pending) this.showNoVideo(state); // nothing to fetch
  }

  tick() {
    if (document.visibilityState === "hidden" || this.paused) return;
    const now = Date.now();
    for (const tile of this.tiles.values()) {
      if (!tile.visible || tile.el.hidden) continue;
      for (const view of VIEW_NAMES) {
        const state = tile.refs.views[view];
        if (state.pending) {
          if (now - state.pendingSince < LOAD_TIMEOUT_MS) continue;
          state.pending = false; // a request that never finished: try again
        }
        // only a thumbnail newer than the one shown; none for a view without video
        if (!state.stamp || state.stamp === state.loaded) continue;
        if (now < state.dueAt || !state.url) continue;
        state.pending = true;
        state.requested = state.stamp;
        state.pendingSince = now;
        state.img.src = withCacheBuster(state.url);
      }
    }
  }

  onThumbLoad(tile, view) {
    const state = tile.refs.views[view];
    state.pending = false;
    state.loaded = state.requested;
    state.hasFrame = true;
    state.img.hidden = false;
    state.noVideo.hidden = true;
    state.figure.dataset.video = "true";
    state.dueAt = Date.now() + REFRESH_MS[view];
    if (state.stamp === null) this.showNoVideo(state); // gone while it was fetched
  }

  onThumbError(tile, view) {
    const state = tile.refs.views[view];
    if (!state.img.getAttribute("src")) return; // src removed on purpose
    state.pending = false;
    state.loaded = state.requested; // not again until the socket says there is a newer one
    state.dueAt = Date.now() + REFRESH_MS[view];
    this.showNoVideo(state);
  }

  showNoVideo(state) {
    state.hasFrame = false;
    state.img.hidden = true;
    state.noVideo.hidden = false;
    state.figure.dataset.video = "false";
  }

  // ---- danmaku -----------------------------------------------------------------------

  async submitDanmaku(tile) {
    const { refs } = tile;
    const text = refs.input.value.trim();
    if (!text) {
      this.showDanmakuError(tile, "Type a message first. 请输入弹幕内容。");
      refs.input.focus();
      return;
    }
    if (text.length > 200) {
      this.showDanmakuError(tile, "At most 200 characters. 最多200个字符。");
      refs.input.focus();
      return;
    }
    if (tile.sending) return;
    tile.sending = true;
    refs.send.disabled = true;
    refs.form.setAttribute("aria-busy", "true");
    this.showDanmakuError(tile, null);
    try {
      const sent = await this.hooks.sendDanmaku(tile.data.id, text);
      if (refs.input.value.trim() === text) refs.input.value = "";
      this.upsertDanmaku({ candidate_id: tile.data.id, text, ...(sent || {}) });
    } catch (err) {
      const message =
        err instanceof ApiError ? err.message : "Could not send the warning. 弹幕发送失败。";
      this.showDanmakuError(tile, message);
    } finally {
      tile.sending = false;
      refs.send.disabled = false;
      refs.form.removeAttribute("aria-busy");
    }
  }

  showDanmakuError(tile, message) {
    const { error, input } = tile.refs;
    error.textContent = message || "";
    error.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  /** Show a danmaku or move it forward (sent → delivered → seen); never backwards. */
  upsertDanmaku(d) {
    if (!d || d.candidate_id === undefined || d.candidate_id === null) return;
    const tile = this.tiles.get(String(d.candidate_id));
    if (!tile) return;
    const key = d.id !== undefined && d.id !== null ? String(d.id) : `local-${Date.now()}`;
    let entry = tile.danmaku.get(key);
    if (!entry) {
      const li = document.createElement("li");
      li.className = "danmaku-item";
      li.dataset.danmakuId = key;
      const text = document.createElement("span");
      text.className = "danmaku-text";
      const stateEl = document.createElement("span");
      stateEl.className = "danmaku-state";
      li.append(text, " ", stateEl);
      entry = { li, text, stateEl, state: null };
      tile.danmaku.set(key, entry);
      tile.refs.list.prepend(li);
      while (tile.refs.list.children.length > DANMAKU_KEEP) {
        const last = tile.refs.list.lastElementChild;
        tile.danmaku.delete(last.dataset.danmakuId);
        last.remove();
      }
    }
    if (d.text) entry.text.textContent = d.text;
    const state = danmakuState(d);
    if (entry.state === null || DANMAKU_RANK[state] > DANMAKU_RANK[entry.state]) {
      entry.state = state;
      entry.stateEl.dataset.state = state;
      entry.li.dataset.state = state;
      entry.stateEl.textContent = DANMAKU_STATES[state];
      const when = parseTime(d.seen_at || d.delivered_at || d.sent_at);
      entry.stateEl.title = when ? `${DANMAKU_STATES[state]} ${formatDateTime(when)}` : "";
    }
  }
}
