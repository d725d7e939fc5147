// One candidate opened: live video of both views (and the microphone), the timeline of
// alerts, actions, danmaku and connection events, and the actions: voice call, danmaku
// with saved phrases (delivered / shown / acknowledged by the candidate, with the time),
// the invigilators' notes on the candidate (several, timestamped, author), a screenshot of either view kept as a
// violation record with a note; time and status: extend the time, pause and resume the
// exam (with a reason), and handle a violation with a category of the documents (a warning
// is recorded; paper voided, score cancelled and disqualified end the exam at once, after a
// confirmation).

import { ApiError, apiFetch } from "./api.js";
import {
  actionLabel,
  alertStatusLabel,
  alertTypeLabel,
  episodeText,
  DANMAKU_STATES,
  eventDetail,
  eventLabel,
  flowStepLabel,
  formatClock,
  formatDateTime,
  formatDuration,
  maskIdNumber,
  parseTime,
  severityLabel,
  viewLabel,
  VIOLATION_CATEGORIES,
  VIOLATIONS_ENDING_EXAM,
  violationCategoryLabel,
} from "./labels.js";
import { LiveView, VoiceCall } from "./live.js";

const $ = (id) => document.getElementById(id);
const TIMELINE_KEEP = 300;
const DANMAKU_RANK = { sent: 0, delivered: 1, seen: 2, acknowledged: 3 };

function danmakuState(d) {
  if (d.acknowledged_at) return "acknowledged";
  if (d.seen_at) return "seen";
  if (d.delivered_at) return "delivered";
  return "sent";
}

function text(tag, cls, value) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  el.textContent = value ?? "";
  return el;
}

/** The handling categories of a violation, in the server's words (proctor/sitting/
 * violations.py), each saying whether it ends the exam. */
function fillViolationCategories(select) {
  if (!select || select.options.length) return;
  for (const [code, words] of Object.entries(VIOLATION_CATEGORIES)) {
    const option = document.createElement("option");
    option.value = code;
    const ends = VIOLATIONS_ENDING_EXAM.includes(code);
    option.textContent = `${words} (${ends ? "ends 终止" : "the exam goes on 不终止"})`;
    select.append(option);
  }
}

export class CandidatePanel {
  /**
   * @param {{onClose?: () => void, announce?: (text: string) => void,
   *          onEvidence?: (alert: any, opener: HTMLElement) => void}} hooks
   */
  constructor(hooks = {}) {
    this.hooks = hooks;
    fillViolationCategories($("terminate-category"));
    this.dialog = $("candidate-panel");
    this.els = {
      title: $("panel-title"),
      sub: $("panel-sub"),
      status: $("panel-status"),
      close: $("panel-close"),
      timeline: $("timeline"),
      voiceButton: $("voice-button"),
      voiceStatus: $("voice-status"),
      voiceAudio: $("voice-audio"),
      phrases: $("phrases"),
      danmakuForm: $("panel-danmaku-form"),
      danmakuInput: $("panel-danmaku-input"),
      danmakuError: $("panel-danmaku-error"),
      danmakuList: $("panel-danmaku-list"),
      phraseSave: $("phrase-save"),
      shotForm: $("screenshot-form"),
      shotView: $("screenshot-view"),
      shotNote: $("screenshot-note"),
      shotButton: $("screenshot-button"),
      shotResult: $("screenshot-result"),
      listen: this.dialog.querySelector(".live-audio"),
    };
    this.candidate = null;
    this.live = [];
    this.voice = null;
    this.opener = null;
    this.timelineKeys = new Set();
    this.danmaku = new Map();
    this.generation = 0;
    this.clock = null;

    this.els.close.addEventListener("click", () => this.close());
    this.dialog.addEventListener("close", () => this.teardown());
    this.els.voiceButton.addEventListener("click", () => this.toggleVoice());
    this.els.listen.addEventListener("click", () => this.setListening(this.els.listen.getAttribute("aria-pressed") !== "true"));
    this.els.danmakuForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.sendDanmaku();
    });
    this.els.phraseSave.addEventListener("click", () => this.savePhrase());
    $("note-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.addNote();
    });
    this.els.shotForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.screenshot();
    });
    $("extend-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.extend();
    });
    $("pause-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.togglePause();
    });
    $("terminate-open").addEventListener("click", () => this.showTerminateForm(true));
    $("terminate-cancel").addEventListener("click", () => this.showTerminateForm(false));
    $("terminate-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.askTerminate();
    });
    $("terminate-no").addEventListener("click", () => {
      $("terminate-confirm").hidden = true;
      $("terminate-form").hidden = false;
    });
    $("terminate-yes").addEventListener("click", () => this.terminate());
  }

  get candidateId() {
    return this.dialog.open && this.candidate ? this.candidate.id : null;
  }

  // ---- open / close ------------------------------------------------------------------

  async open(candidateId, opener = null) {
    if (this.dialog.open) this.close();
    this.opener = opener;
    this.generation += 1;
    const generation = this.generation;
    this.candidate = { id: candidateId, name: "" };
    this.dialog.dataset.candidateId = String(candidateId);
    this.els.title.textContent = "…";
    this.els.sub.textContent = "";
    this.els.timeline.replaceChildren();
    this.timelineKeys.clear();
    this.els.danmakuList.replaceChildren();
    this.danmaku.clear();
    $("note-list").replaceChildren();
    $("note-error").hidden = true;
    $("note-input").value = "";
    this.els.shotResult.textContent = "";
    this.els.shotNote.value = "";
    $("extend-result").textContent = "";
    this.resetFlowControls();
    this.showVoice("idle");
    if (typeof this.dialog.showModal === "function") this.dialog.showModal();
    else this.dialog.setAttribute("open", "");

    this.live = [
      new LiveView(candidateId, "first", $("live-first")),
      new LiveView(candidateId, "second", $("live-second")),
    ];
    this.setListening(false);
    for (const view of this.live) view.start();
    this.clock = window.setInterval(() => this.renderStatus(), 1000);
    this.loadPhrases();
    try {
      const detail = await apiFetch(`/api/console/candidates/${encodeURIComponent(candidateId)}`);
      if (generation !== this.generation) return;
      this.candidate = detail;
      this.renderHeader();
      for (const item of [...(detail.timeline || [])].reverse()) this.addTimeline(item);
      for (const item of detail.timeline || []) {
        if (item.kind === "danmaku") this.upsertDanmaku(item.danmaku);
      }
      this.loadNotes(generation);
    } catch (err) {
      if (generation !== this.generation) return;
      this.els.sub.textContent = `Could not load 无法加载: ${err.message}`;
    }
  }

  close() {
    if (this.dialog.open) this.dialog.close();
    else this.teardown();
  }

  teardown() {
    window.clearInterval(this.clock);
    for (const view of this.live) view.stop();
    this.live = [];
    if (this.voice && ["starting", "connecting", "live"].includes(this.voice.state)) {
      this.voice.end().catch(() => {});
    }
    this.voice = null;
    apiFetch("/api/console/live", { method: "DELETE", timeoutMs: 5000 }).catch(() => {});
    delete this.dialog.dataset.candidateId;
    if (this.opener && this.opener.isConnected) this.opener.focus();
    this.opener = null;
    if (this.hooks.onClose) this.hooks.onClose();
  }

  // ---- header --------------------------------------------------------------------------

  renderHeader() {
    const c = this.candidate;
    this.els.title.textContent = c.name || `#${c.id}`;
    const parts = [`ID ${maskIdNumber(c.id_number)}`];
    if (c.room) parts.unshift(`${c.room.name} · seat 座位 ${c.room.seat}`);
    this.els.sub.textContent = parts.join(" · ");
    this.renderStatus();
  }

  /** The candidate's state from the room view's roster (kept live by the socket). */
  update(changes) {
    if (!this.candidate) return;
    this.candidate = { ...this.candidate, ...changes };
    this.renderStatus();
  }

  renderStatus() {
    const c = this.candidate;
    if (!c || !this.dialog.open) return;
    const chips = [];
    const flow = c.flow;
    if (flow?.paused) chips.push(["paused", flowStepLabel("paused")]);
    else if (flow?.terminated) {
      chips.push(["terminated", `${flowStepLabel("terminated")} · ${violationCategoryLabel(flow.terminated.category)}`]);
    } else if (flow?.step) chips.push(["flow", flowStepLabel(flow.step)]);
    if (flow?.progress) chips.push(["progress", `Answered 已答 ${flow.progress.answered}/${flow.progress.total}`]);
    const ends = parseTime(flow?.ends_at);
    if (ends && ["waiting", "answering"].includes(flow.step)) {
      const left = flow.paused ? flow.paused.seconds_left : (ends - Date.now()) / 1000;
      chips.push(["time", `${formatDuration(left)} left 剩余`]);
    }
    for (const view of ["first", "second"]) {
      const v = c.views?.[view];
      if (!v) continue;
      const since = parseTime(v.since);
      const word = v.connected
        ? "connected 已连接"
        : since
          ? `lost 断开 ${formatDuration((Date.now() - since) / 1000)}`
          : "not connected 未连接";
      chips.push([v.connected ? "ok" : "lost", `${viewLabel(view)}: ${word}`]);
    }
    if (c.open_alerts) chips.push(["alerts", `${c.open_alerts} open alerts 未处理告警`]);
    this.els.status.replaceChildren(
      ...chips.map(([kind, words]) => {
        const li = text("li", "chip", words);
        li.dataset.kind = kind;
        return li;
      }),
    );
    this.renderFlowControls();
  }

  // ---- socket messages -----------------------------------------------------------------

  /** A sitting message; the room page hands over those about this candidate. */
  onMessage(msg) {
    const id = this.candidateId;
    if (id === null) return;
    switch (msg.type) {
      case "alert":
      case "alert_update": // the alert's episode goes on or closed: the same item, refreshed
        if (String(msg.alert?.candidate_id) === String(id)) {
          this.addTimeline({ at: msg.alert.raised_at, kind: "alert", alert: msg.alert });
        }
        return;
      case "action": {
        const a = msg.action;
        if (String(a?.candidate_id) !== String(id)) return;
        this.addTimeline({ at: a.at, kind: "action", action: a });
        if (a.kind === "note") this.showNote(a);
        if (a.kind === "voice_ended" && this.voice && a.data?.call_id === this.voice.callId) {
          this.voice.hangUp();
          this.showVoice("ended", a.reason);
          this.voice = null;
        }
        return;
      }
      case "danmaku":
        if (String(msg.danmaku?.candidate_id) === String(id)) {
          this.upsertDanmaku(msg.danmaku);
          this.addTimeline({ at: msg.danmaku.sent_at, kind: "danmaku", danmaku: msg.danmaku });
        }
        return;
      case "extension":
        // time given back (顺延) to this candidate or to the whole sitting
        for (const row of msg.extensions || []) {
          if (row.candidate_id !== null && String(row.candidate_id) !== String(id)) continue;
          this.addTimeline({
            at: row.granted_at,
            kind: "event",
            event: {
              kind: "time_extended",
              data: { ...row, whole_sitting: row.candidate_id === null },
            },
          });
        }
        return;
      case "connection":
        if (String(msg.candidate_id) !== String(id)) return;
        this.addTimeline({
          at: msg.at,
          kind: "event",
          event: {
            kind: msg.connected ? "media_connected" : msg.ended ? "media_ended" : "media_lost",
            data: { view: msg.view },
          },
        });
        if (msg.connected) {
          const view = this.live.find((v) => v.view === msg.view);
          if (view && view.figure.dataset.state !== "live") view.start();
        }
        return;
      default:
    }
  }

  // ---- timeline ------------------------------------------------------------------------

  timelineKey(item) {
    if (item.kind === "alert") return `alert-${item.alert.id}`;
    if (item.kind === "action") return `action-${item.action.id}`;
    if (item.kind === "danmaku") return `danmaku-${item.danmaku.id}`;
    return `event-${item.at}-${item.event?.kind}-${item.event?.data?.view || ""}`;
  }

  /** Add (or refresh) an item; newest on top. */
  addTimeline(item) {
    const key = this.timelineKey(item);
    const li = this.renderItem(item);
    li.dataset.key = key;
    const when = parseTime(item.at)?.getTime() ?? Date.now();
    li.dataset.at = String(when);
    const existing = this.els.timeline.querySelector(`li[data-key="${CSS.escape(key)}"]`);
    if (existing) {
      existing.replaceWith(li);
      return;
    }
    this.timelineKeys.add(key);
    let before = null;
    for (const child of this.els.timeline.children) {
      if (Number(child.dataset.at) <= when) {
        before = child;
        break;
      }
    }
    this.els.timeline.insertBefore(li, before);
    while (this.els.timeline.children.length > TIMELINE_KEEP) this.els.timeline.lastElementChild.remove();
  }

  renderItem(item) {
    const li = document.createElement("li");
    li.className = "timeline-item";
    li.dataset.kind = item.kind;
    const time = text("time", "timeline-time", formatClock(parseTime(item.at)));
    if (item.at) time.dateTime = item.at;
    time.title = formatDateTime(parseTime(item.at));
    const body = document.createElement("div");
    body.className = "timeline-body";
    li.append(time, body);
    if (item.kind === "alert") {
      const a = item.alert;
      li.dataset.severity = a.severity;
      li.dataset.status = a.status;
      body.append(
        text("span", "alert-severity", severityLabel(a.severity)),
        " ",
        text("strong", "", alertTypeLabel(a.type)),
        text("span", "muted", ` · ${viewLabel(a.view)} · ${alertStatusLabel(a.status)}`),
      );
      const episode = episodeText(a);
      if (episode) {
        const span = text("div", "timeline-episode", episode);
        span.dataset.episodeOngoing = String(Boolean(a.ongoing));
        span.dataset.startedAt = a.started_at;
        body.append(span);
      }
      if (a.handling) {
        body.append(
          text("div", "timeline-note", `${a.handling.action === "dismiss" ? "Dismissed 排除" : "Acknowledged 确认"} · ${a.handling.by_name || ""} — ${a.handling.reason}`),
        );
      }
      if (a.evidence_url) body.append(this.evidenceLink(a.evidence_url, a));
    } else if (item.kind === "action") {
      const a = item.action;
      li.dataset.actionKind = a.kind;
      body.append(
        text("strong", "", actionLabel(a.kind)),
        text("span", "muted", ` · ${a.staff_name || "system 系统"}`),
      );
      if (a.kind === "hint") {
        const state = a.data?.seen_at ? "seen" : a.data?.delivered_at ? "delivered" : "sent";
        const badge = text("span", "danmaku-state", DANMAKU_STATES[state]);
        badge.dataset.state = state;
        body.append(" ", badge);
      }
      if (a.kind === "incident" && a.data?.category) body.append(text("span", "muted", ` · ${a.data.category}`));
      if (["discipline_warning", "exam_terminated"].includes(a.kind) && a.data?.category) {
        body.append(text("span", "muted", ` · ${violationCategoryLabel(a.data.category)}`));
      }
      if (a.kind === "alerts_snoozed" && a.data?.type) {
        body.append(
          text("span", "muted", ` · ${alertTypeLabel(a.data.type)} · ${a.data.minutes} min 分钟`),
        );
      }
      if (a.kind === "snooze_ended" && a.data?.type) {
        body.append(text("span", "muted", ` · ${alertTypeLabel(a.data.type)}`));
      }
      if (a.kind === "voice_ended" && a.data?.seconds !== undefined) {
        body.append(text("span", "muted", ` · ${formatDuration(a.data.seconds)}`));
      }
      if (a.reason) body.append(text("div", "timeline-note", a.reason));
      if (a.evidence_url) body.append(this.evidenceLink(a.evidence_url, null));
    } else if (item.kind === "danmaku") {
      const d = item.danmaku;
      const state = danmakuState(d);
      const badge = text("span", "danmaku-state", DANMAKU_STATES[state]);
      badge.dataset.state = state;
      body.append(
        text("strong", "", "Danmaku 弹幕"),
        text("span", "muted", d.sender_name ? ` · ${d.sender_name}` : ""),
        " ",
        badge,
        text("div", "timeline-note", d.text),
      );
    } else {
      const e = item.event || {};
      li.dataset.eventKind = e.kind || "";
      body.append(
        text("strong", "", eventLabel(e.kind)),
        text("span", "muted", e.data?.view ? ` · ${viewLabel(e.data.view)}` : ""),
      );
      const detail = eventDetail(e.kind, e.data);
      if (detail) body.append(text("div", "timeline-note", detail));
    }
    return li;
  }

  evidenceLink(url, alert) {
    const a = document.createElement("a");
    a.href = url;
    a.target = "_blank";
    a.rel = "noopener";
    a.className = "timeline-evidence";
    const img = document.createElement("img");
    img.src = url;
    img.alt = "Evidence 证据";
    img.loading = "lazy";
    a.append(img);
    if (alert && this.hooks.onEvidence) {
      a.addEventListener("click", (e) => {
        e.preventDefault();
        this.hooks.onEvidence(alert, a);
      });
    }
    return a;
  }

  // ---- danmaku ---------------------------------------------------------------------------

  async loadPhrases() {
    try {
      const phrases = await apiFetch("/api/console/phrases");
      this.els.phrases.replaceChildren(
        ...phrases.map((p) => {
          const b = document.createElement("button");
          b.type = "button";
          b.className = "phrase";
          b.dataset.scope = p.scope;
          b.textContent = p.text;
          b.addEventListener("click", () => {
            this.els.danmakuInput.value = p.text;
            this.els.danmakuInput.focus();
          });
          return b;
        }),
      );
    } catch {
      /* phrases are a convenience */
    }
  }

  async savePhrase() {
    const value = this.els.danmakuInput.value.trim();
    if (!value) return;
    try {
      await apiFetch("/api/console/phrases", { method: "POST", body: { text: value } });
      await this.loadPhrases();
    } catch (err) {
      this.showDanmakuError(err.message);
    }
  }

  showDanmakuError(message) {
    this.els.danmakuError.textContent = message || "";
    this.els.danmakuError.hidden = !message;
  }

  async sendDanmaku() {
    const value = this.els.danmakuInput.value.trim();
    if (!value) {
      this.showDanmakuError("Type a message first. 请输入弹幕内容。");
      return;
    }
    this.showDanmakuError(null);
    const button = $("panel-danmaku-send");
    button.disabled = true;
    try {
      const sent = await apiFetch(
        `/api/console/candidates/${encodeURIComponent(this.candidate.id)}/danmaku`,
        { method: "POST", body: { text: value } },
      );
      if (this.els.danmakuInput.value.trim() === value) this.els.danmakuInput.value = "";
      this.upsertDanmaku(sent);
      if (sent.pending) {
        // stored (and audited) but the message service is down: the candidate's page
        // loads it when its connection to the service is back
        this.showDanmakuError(
          "Saved; it reaches the candidate once the message service is back. 已保存，消息服务恢复后送达。",
        );
      }
    } catch (err) {
      this.showDanmakuError(err instanceof ApiError ? err.message : "Could not send 发送失败");
    } finally {
      button.disabled = false;
    }
  }

  // ---- notes ---------------------------------------------------------------------------

  async loadNotes(generation) {
    try {
      const rows = await apiFetch(`/api/console/candidates/${encodeURIComponent(this.candidate.id)}/notes`);
      if (generation !== this.generation) return;
      for (const row of rows) this.showNote(row);
    } catch {
      // the timeline still shows them
    }
  }

  showNote(a) {
    const list = $("note-list");
    if (list.querySelector(`li[data-note-id="${CSS.escape(String(a.id))}"]`)) return;
    const li = document.createElement("li");
    li.className = "note-item";
    li.dataset.noteId = String(a.id);
    const when = parseTime(a.at);
    const time = text("time", "note-time muted", formatClock(when));
    if (a.at) time.dateTime = a.at;
    time.title = formatDateTime(when);
    li.append(time, " ", text("span", "note-author muted", a.staff_name || ""), text("div", "note-text", a.reason));
    list.append(li); // oldest first
  }

  async addNote() {
    const input = $("note-input");
    const error = $("note-error");
    const button = $("note-add");
    error.hidden = true;
    button.disabled = true;
    const value = input.value;
    try {
      const row = await apiFetch(
        `/api/console/candidates/${encodeURIComponent(this.candidate.id)}/notes`,
        { method: "POST", body: { text: value } },
      );
      this.showNote(row);
      if (input.value === value) input.value = ""; // not what was typed meanwhile
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : "Could not save 保存失败";
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  upsertDanmaku(d) {
    if (!d || d.id === undefined) return;
    const key = String(d.id);
    let entry = this.danmaku.get(key);
    if (!entry) {
      const li = document.createElement("li");
      li.className = "danmaku-item";
      li.dataset.danmakuId = key;
      const t = text("span", "danmaku-text", d.text);
      const s = text("span", "danmaku-state", "");
      li.append(t, " ", s);
      entry = { li, stateEl: s, state: null };
      this.danmaku.set(key, entry);
      this.els.danmakuList.prepend(li);
    }
    const state = danmakuState(d);
    if (entry.state === null || DANMAKU_RANK[state] > DANMAKU_RANK[entry.state]) {
      entry.state = state;
      entry.li.dataset.state = state;
      entry.stateEl.dataset.state = state;
      entry.stateEl.textContent = DANMAKU_STATES[state];
      const when = parseTime(d.acknowledged_at || d.seen_at || d.delivered_at || d.sent_at);
      entry.stateEl.title = when ? formatDateTime(when) : "";
      if (state === "acknowledged" && when) {
        entry.stateEl.textContent = `${DANMAKU_STATES[state]} ${formatClock(when)}`;
      }
    }
  }

  // ---- screenshot --------------------------------------------------------------------------

  async screenshot() {
    const note = this.els.shotNote.value.trim();
    if (!note) {
      this.els.shotResult.dataset.state = "error";
      this.els.shotResult.textContent = "Write what is seen first. 请先填写说明。";
      this.els.shotNote.focus();
      return;
    }
    this.els.shotButton.disabled = true;
    this.els.shotResult.dataset.state = "saving";
    this.els.shotResult.textContent = "Saving… 保存中";
    try {
      const saved = await apiFetch(
        `/api/console/candidates/${encodeURIComponent(this.candidate.id)}/screenshot`,
        { method: "POST", body: { view: this.els.shotView.value, note } },
      );
      this.els.shotResult.dataset.state = "saved";
      this.els.shotResult.dataset.evidenceId = String(saved.evidence.id);
      this.els.shotResult.replaceChildren(
        `Saved 已保存 · ${viewLabel(saved.evidence.view)} · sha256 ${saved.evidence.sha256.slice(0, 12)}… `,
        this.evidenceLink(saved.evidence.url, null),
      );
      this.els.shotNote.value = "";
      this.addTimeline({ at: saved.action.at, kind: "action", action: saved.action });
    } catch (err) {
      this.els.shotResult.dataset.state = "error";
      this.els.shotResult.textContent = err.message;
    } finally {
      this.els.shotButton.disabled = false;
    }
  }

  // ---- time (the exam flow's extensions) -------------------------------------------------

  async extend() {
    const result = $("extend-result");
    const minutes = Number($("extend-minutes").value);
    const reason = $("extend-reason").value.trim();
    if (!(minutes > 0) || reason.length < 2) {
      result.dataset.state = "error";
      result.textContent = "Give the minutes and the reason. 请填写延时分钟数和原因。";
      return;
    }
    $("extend-button").disabled = true;
    try {
      await apiFetch("/api/invigilate/extensions", {
        method: "POST",
        body: { sitting_id: this.candidate.sitting_id, candidate_ids: [this.candidate.id], minutes, reason },
      });
      result.dataset.state = "saved";
      result.textContent = `+${minutes} min granted 已延时 — ${reason}`;
      $("extend-reason").value = "";
    } catch (err) {
      result.dataset.state = "error";
      result.textContent = err.message;
    } finally {
      $("extend-button").disabled = false;
    }
  }

  // ---- pause, resume, handle a violation (POST /api/invigilate/candidates/{id}/...) ------------

  resetFlowControls() {
    $("pause-reason").value = "";
    $("terminate-reason").value = "";
    $("terminate-category").value = "warning";
    $("terminate-form").hidden = true;
    $("terminate-confirm").hidden = true;
    this.flowResult("", null);
    this.renderFlowControls();
  }

  flowResult(message, state) {
    const el = $("flow-result");
    el.textContent = message || "";
    if (state) el.dataset.state = state;
    else delete el.dataset.state;
  }

  /** The controls follow the candidate's state: pause while answering, resume while
   *  paused, violations until the exam has ended. */
  renderFlowControls() {
    const flow = this.candidate?.flow || null;
    const step = flow?.step || null;
    const paused = Boolean(flow?.paused);
    const answering = step === "answering";
    const ended = Boolean(flow?.ended);
    const stateEl = $("flow-state");
    let words = "";
    let state = step || "";
    if (paused) {
      const since = parseTime(flow.paused.since);
      words = `${flowStepLabel("paused")} ${since ? formatClock(since) : ""} · ${flow.paused.by_name || ""} — ${flow.paused.reason || ""}`;
      state = "paused";
    } else if (flow?.terminated) {
      const t = flow.terminated;
      words = `Ended 已终止 · ${violationCategoryLabel(t.category)} · ${t.by_name || ""} — ${t.reason || ""}`;
      state = "terminated";
    } else if (step) {
      words = `Status 状态: ${flowStepLabel(step)}`;
    } else {
      words = "Not logged in 未登录";
      state = "absent";
    }
    stateEl.textContent = words;
    stateEl.dataset.state = state;
    const pause = $("pause-button");
    pause.disabled = !answering;
    pause.dataset.flowAction = paused ? "resume" : "pause";
    pause.textContent = paused ? "Resume 恢复考试" : "Pause 暂停";
    $("terminate-open").disabled = !step || ended;
    if (ended) {
      $("terminate-form").hidden = true;
      $("terminate-confirm").hidden = true;
    }
  }

  showTerminateForm(show) {
    $("terminate-form").hidden = !show;
    $("terminate-confirm").hidden = true;
    if (show) $("terminate-reason").focus();
  }

  async flowAction(path, body) {
    return apiFetch(`/api/invigilate/candidates/${encodeURIComponent(this.candidate.id)}/${path}`, {
      method: "POST",
      body,
    });
  }

  async togglePause() {
    const resume = Boolean(this.candidate?.flow?.paused);
    const reason = $("pause-reason").value.trim();
    if (!resume && reason.length < 2) {
      this.flowResult("Give the reason first. 请先填写暂停原因。", "error");
      $("pause-reason").focus();
      return;
    }
    const button = $("pause-button");
    button.disabled = true;
    try {
      const out = await this.flowAction(resume ? "resume" : "pause", { reason });
      $("pause-reason").value = "";
      this.flowResult(resume ? "Resumed 已恢复考试" : "Paused 已暂停考试", "saved");
      if (out.action) this.addTimeline({ at: out.action.at, kind: "action", action: out.action });
      this.update({ flow: out.flow });
    } catch (err) {
      this.flowResult(err.message, "error");
      this.renderFlowControls();
    }
  }

  askTerminate() {
    const category = $("terminate-category").value;
    const reason = $("terminate-reason").value.trim();
    if (reason.length < 2) {
      this.flowResult("Give the reason first. 请先填写处理原因。", "error");
      $("terminate-reason").focus();
      return;
    }
    const label = violationCategoryLabel(category);
    const name = this.candidate?.name || "";
    $("terminate-confirm-text").textContent =
      category === "warning"
        ? `Record a warning for ${name}? 确认对该考生给予警告？ (${label})`
        : `End ${name}'s exam now: ${label}? This cannot be undone. 确认立即终止该考生的考试（${label}）？此操作不可撤销。`;
    $("terminate-confirm").dataset.category = category;
    $("terminate-form").hidden = true;
    $("terminate-confirm").hidden = false;
    $("terminate-yes").focus();
  }

  async terminate() {
    const category = $("terminate-confirm").dataset.category || $("terminate-category").value;
    const reason = $("terminate-reason").value.trim();
    $("terminate-yes").disabled = true;
    try {
      const out = await this.flowAction("terminate", { category, reason });
      $("terminate-confirm").hidden = true;
      $("terminate-reason").value = "";
      this.flowResult(
        out.ended ? `Exam ended 已终止考试 — ${violationCategoryLabel(category)}` : "Warning recorded 已记录警告",
        "saved",
      );
      if (out.action) this.addTimeline({ at: out.action.at, kind: "action", action: out.action });
      this.update({ flow: out.flow });
    } catch (err) {
      $("terminate-confirm").hidden = true;
      $("terminate-form").hidden = false;
      this.flowResult(err.message, "error");
    } finally {
      $("terminate-yes").disabled = false;
    }
  }

  // ---- voice and listening -------------------------------------------------------------------

  setListening(on) {
    const first = this.live.find((v) => v.view === "first");
    if (first) first.video.muted = !on;
    this.els.listen.setAttribute("aria-pressed", String(on));
    this.els.listen.textContent = on ? "Mute 静音" : "Listen 收听";
  }

  showVoice(state, message = "", stats = null) {
    const b = this.els.voiceButton;
    const s = this.els.voiceStatus;
    b.dataset.state = state;
    s.dataset.state = state;
    const active = ["starting", "connecting", "live"].includes(state);
    b.textContent = active ? "End call 结束通话" : "Start call 开始通话";
    b.classList.toggle("danger", active);
    const words = {
      idle: "",
      starting: "Opening the microphone… 正在打开麦克风",
      connecting: "Calling… 呼叫中",
      live: "In the call 通话中",
      ended: "Call ended 通话已结束",
      failed: "Call failed 通话失败",
    };
    let line = words[state] || state;
    if (stats) {
      s.dataset.bytesSent = String(stats.sent);
      s.dataset.bytesReceived = String(stats.received);
      line += ` · ↑ ${(stats.sent / 1024).toFixed(0)} kB ↓ ${(stats.received / 1024).toFixed(0)} kB`;
    } else if (!active) {
      delete s.dataset.bytesSent;
      delete s.dataset.bytesReceived;
    }
    s.textContent = message ? `${line} — ${message}` : line;
  }

  async toggleVoice() {
    if (this.voice && ["starting", "connecting", "live"].includes(this.voice.state)) {
      const call = this.voice;
      this.voice = null;
      await call.end().catch(() => {});
      this.showVoice("ended");
      return;
    }
    const call = (this.voice = new VoiceCall(this.candidate.id, this.els.voiceAudio));
    call.addEventListener("state", (e) => {
      if (this.voice !== call && e.detail.state !== "ended") return;
      if (e.detail.state === "live" || e.detail.state === "connecting") this.setListening(false);
      this.showVoice(e.detail.state, e.detail.message);
    });
    call.addEventListener("stats", (e) => {
      if (this.voice === call) this.showVoice(call.state, "", e.detail);
    });
    await call.start();
  }
}
