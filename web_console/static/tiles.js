// The grid of candidate tiles: thumbnails (refreshed about once a second), connection
// state per view, open-alert badge, danmaku (on-screen warning) form and its delivery
// state. Tiles are kept sorted: open alerts first, then disconnected, then the rest, each
// group in roster order. Moving tiles keeps keyboard focus where it was.

import { ApiError } from "./api.js";
import {
  DANMAKU_STATES,
  formatClock,
  formatDateTime,
  lastFour,
  maskIdNumber,
  parseTime,
  VIEWS,
} from "./labels.js";

const VIEW_NAMES = ["first", "second"];
const DANMAKU_RANK = { sent: 0, delivered: 1, seen: 2 };
const DANMAKU_KEEP = 3; // messages shown per tile
const TICK_MS = 250;
const REFRESH_MS = { first: 1000, second: 2000 }; // second view is the small one
const REFRESH_DISCONNECTED_MS = 5000; // view is down: look now and then for a last frame
const REFRESH_NO_FRAME_MS = 3000; // 404 no_frame: the view has not sent anything yet
const LOAD_TIMEOUT_MS = 10000;
const FLASH_MS = 4000;

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

export class TileGrid {
  /**
   * @param {HTMLElement} grid container of the tiles
   * @param {HTMLTemplateElement} template the tile template
   * @param {{sendDanmaku: (candidateId: number|string, text: string) => Promise<any>,
   *          onChange?: (summary: {total: number, connected: number, withAlerts: number,
   *                                openAlerts: number}) => void}} hooks
   */
  constructor(grid, template, hooks) {
    this.grid = grid;
    this.template = template;
    this.hooks = hooks;
    /** @type {Map<string, any>} */
    this.tiles = new Map();
    this.sortQueued = false;
    this.timer = null;
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

  clear() {
    for (const tile of this.tiles.values()) this.removeTile(tile);
    this.tiles.clear();
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
      idNumber: el.querySelector(".tile-id"),
      badge: el.querySelector(".alert-badge"),
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
      };
      img.addEventListener("load", () => this.onThumbLoad(tile, view));
      img.addEventListener("error", () => this.onThumbError(tile, view));
      refs.views[view] = state;
    }

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

  removeTile(tile) {
    if (this.observer) this.observer.unobserve(tile.el);
    window.clearTimeout(tile.flashTimer);
    for (const view of VIEW_NAMES) tile.refs.views[view].img.removeAttribute("src");
    tile.el.remove();
  }

  update(tile, candidate) {
    tile.data = candidate;
    const { refs } = tile;
    refs.name.textContent = candidate.name || `#${candidate.id}`;
    refs.name.title = refs.name.textContent;
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
    refs.label.textContent = `On-screen warning to ${candidate.name} 向考生发送弹幕警告`;

    const views = candidate.views || {};
    const urls = candidate.thumbnail_urls || {};
    for (const view of VIEW_NAMES) {
      const state = refs.views[view];
      const info = views[view] || {};
      state.url =
        urls[view] ||
        `/api/console/candidates/${encodeURIComponent(candidate.id)}/thumbnail/${view}.jpg`;
      state.img.alt = `${candidate.name} — ${VIEWS[view]}`;
      this.applyConnection(tile, view, Boolean(info.connected), info.since ?? null);
    }
    this.applyAlertCount(tile, Number(candidate.open_alerts) || 0);
  }

  // ---- connection state ------------------------------------------------------------------

  setConnection(candidateId, view, connected, at) {
    const tile = this.tiles.get(String(candidateId));
    if (!tile || !VIEW_NAMES.includes(view)) return;
    this.applyConnection(tile, view, Boolean(connected), at ?? null);
    const views = (tile.data.views = tile.data.views || {});
    views[view] = { connected: Boolean(connected), since: at ?? null };
    this.queueSort();
    this.changed();
  }

  applyConnection(tile, view, connected, since) {
    const state = tile.refs.views[view];
    const changed = state.connected !== connected;
    state.connected = connected;
    state.since = since;
    state.conn.dataset.connected = String(connected);
    state.figure.dataset.connected = String(connected);
    const when = parseTime(since);
    const word = connected ? "connected 已连接" : "disconnected 已断开";
    const viewEl = document.createElement("span");
    viewEl.className = "conn-view";
    viewEl.textContent = `${VIEWS[view]}:`;
    const stateEl = document.createElement("span");
    stateEl.className = "conn-state";
    stateEl.textContent = when ? `${word} · ${formatClock(when)}` : word;
    state.conn.replaceChildren(viewEl, " ", stateEl);
    state.conn.title = when ? `${VIEWS[view]}: ${word} since ${formatDateTime(when)}` : "";
    const allConnected = VIEW_NAMES.every((v) => tile.refs.views[v].connected);
    tile.el.dataset.connected = String(allConnected);
    tile.el.classList.toggle("is-disconnected", !allConnected);
    if (changed && connected) state.dueAt = 0; // fetch a frame right away
  }

  // ---- alerts ----------------------------------------------------------------------------

  /** A new alert arrived for this candidate: one more open alert, and flash the tile. */
  alertRaised(candidateId) {
    const tile = this.tiles.get(String(candidateId));
    if (!tile) return;
    this.applyAlertCount(tile, tile.openAlerts + 1);
    this.flash(candidateId);
    this.queueSort();
    this.changed();
  }

  applyAlertCount(tile, count) {
    tile.openAlerts = count;
    const { badge } = tile.refs;
    badge.dataset.count = String(count);
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
    tile.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
    tile.el.focus({ preventScroll: true });
    this.flash(candidateId);
    return true;
  }

  // ---- sorting ---------------------------------------------------------------------------

  group(tile) {
    if (tile.openAlerts > 0) return 0;
    if (!VIEW_NAMES.every((v) => tile.refs.views[v].connected)) return 1;
    return 2;
  }

  queueSort() {
    if (this.sortQueued) return;
    this.sortQueued = true;
    queueMicrotask(() => {
      this.sortQueued = false;
      this.sortNow();
    });
  }

  sortNow() {
    const desired = [...this.tiles.values()].sort(
      (a, b) => this.group(a) - this.group(b) || a.index - b.index,
    );
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

  // ---- summary -------------------------------------------------------------------------

  summary() {
    let connected = 0;
    let withAlerts = 0;
    let openAlerts = 0;
    for (const tile of this.tiles.values()) {
      if (VIEW_NAMES.every((v) => tile.refs.views[v].connected)) connected += 1;
      if (tile.openAlerts > 0) withAlerts += 1;
      openAlerts += tile.openAlerts;
    }
    return { total: this.tiles.size, connected, withAlerts, openAlerts };
  }

  changed() {
    if (this.hooks.onChange) this.hooks.onChange(this.summary());
  }

  // ---- thumbnails ----------------------------------------------------------------------

  startThumbnails() {
    if (this.timer) return;
    this.timer = window.setInterval(() => this.tick(), TICK_MS);
    this.tick();
  }

  stopThumbnails() {
    window.clearInterval(this.timer);
    this.timer = null;
  }

  onIntersect(entries) {
    for (const entry of entries) {
      const tile = this.tiles.get(entry.target.dataset.candidateId);
      if (!tile) continue;
      tile.visible = entry.isIntersecting;
      if (tile.visible) for (const v of VIEW_NAMES) tile.refs.views[v].dueAt = 0;
    }
  }

  tick() {
    if (document.visibilityState === "hidden") return;
    const now = Date.now();
    for (const tile of this.tiles.values()) {
      if (!tile.visible) continue;
      for (const view of VIEW_NAMES) {
        const state = tile.refs.views[view];
        if (state.pending) {
          if (now - state.pendingSince < LOAD_TIMEOUT_MS) continue;
          state.pending = false; // a request that never finished: try again
        }
        if (now < state.dueAt || !state.url) continue;
        state.pending = true;
        state.pendingSince = now;
        state.img.src = withCacheBuster(state.url);
      }
    }
  }

  onThumbLoad(tile, view) {
    const state = tile.refs.views[view];
    state.pending = false;
    state.hasFrame = true;
    state.img.hidden = false;
    state.noVideo.hidden = true;
    state.figure.dataset.video = "true";
    state.dueAt = Date.now() + (state.connected ? REFRESH_MS[view] : REFRESH_DISCONNECTED_MS);
  }

  onThumbError(tile, view) {
    const state = tile.refs.views[view];
    if (!state.img.getAttribute("src")) return; // src removed on purpose
    state.pending = false;
    state.hasFrame = false;
    state.img.hidden = true;
    state.noVideo.hidden = false;
    state.figure.dataset.video = "false";
    state.dueAt =
      Date.now() + (state.connected ? REFRESH_NO_FRAME_MS : REFRESH_DISCONNECTED_MS);
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
