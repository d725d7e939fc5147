// "Needs you 待处理": what candidates wait for from the invigilator (issue 23), beside the
// alert feed:
//   - "my details are wrong" (信息有误) with the text the candidate typed; resolved with a
//     note (POST /api/invigilate/info-problems/{id}/resolve);
//   - a raised hand (求助) with the candidate's short message; answered by a danmaku reply
//     ("Reply 回复": the note is sent to the candidate) or otherwise (a voice call from the
//     candidate's panel, in person) and marked handled with a note
//     (POST /api/invigilate/help-requests/{id}/resolve);
//   - a manual identity check (人工核验) after failed photo checks: the registered photo,
//     the captured photos and the live face side by side, admit / retry / refuse with a
//     reason (POST /api/invigilate/candidates/{id}/admit | identity-retry | identity-refuse).
// The list is GET /api/invigilate/requests; the console socket's info_problem,
// info_problem_resolved, help_request, help_request_resolved and flow messages refresh it.
//
// Hooks for tests: #request-list li.request[data-kind][data-candidate-id], .request-text,
// .request-note, .request-resolve-button, .request-reply-button (raised hands),
// .request-compare; #identity-dialog with
// #identity-registered, #identity-captures img, #identity-live, #identity-reason,
// button[data-decision], #identity-error.

import { ApiError, apiFetch } from "./api.js";
import { formatClock, formatDateTime, parseTime } from "./labels.js";

const LIVE_REFRESH_MS = 1000;
const RELOAD_DEBOUNCE_MS = 300;

const DECISIONS = {
  admit: ["admit", "Admitted 已核验通过"],
  retry: ["identity-retry", "Photo check opened again 已允许重新拍照"],
  refuse: ["identity-refuse", "Not admitted 不予通过"],
};

const REASON_LABELS = {
  mismatch: "not the same face 不一致",
  no_face: "no face 未检测到人脸",
  several_faces: "several faces 多张人脸",
  face_too_small: "face too small 人脸太小",
  no_registered_photo: "no registered photo 无报名照片",
  unavailable: "check unavailable 自动核验不可用",
  match: "match 一致",
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export class RequestsPanel {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.list       the <ol> of items
   * @param {HTMLElement} opts.empty      shown when nothing waits
   * @param {HTMLElement} opts.count      the number waiting
   * @param {HTMLDialogElement} opts.dialog  the identity comparison dialog
   * @param {(msg: string) => void} [opts.announce]
   * @param {(id: string|number) => void} [opts.onCandidate]  focus the candidate's tile
   */
  constructor({ list, empty, count, dialog, announce = () => {}, onCandidate = () => {} }) {
    this.list = list;
    this.empty = empty;
    this.count = count;
    this.dialog = dialog;
    this.announce = announce;
    this.onCandidate = onCandidate;
    this.place = null; // {sittingId, roomId}
    this.generation = 0;
    this.reloadTimer = null;
    this.liveTimer = null;
    this.identityFor = null;
    this.drafts = new Map(); // problem id -> note typed so far (kept across re-renders)
    const $ = (id) => dialog.querySelector(`#${id}`);
    this.d = {
      who: $("identity-who"),
      registered: $("identity-registered"),
      registeredNone: $("identity-registered-none"),
      captures: $("identity-captures"),
      live: $("identity-live"),
      liveNone: $("identity-live-none"),
      reason: $("identity-reason"),
      error: $("identity-error"),
      close: $("identity-close"),
      form: $("identity-form"),
    };
    this.d.close.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => this.stopLive());
    this.d.form.addEventListener("submit", (event) => event.preventDefault());
    for (const button of dialog.querySelectorAll("button[data-decision]")) {
      button.addEventListener("click", () => this.decide(button.dataset.decision, button));
    }
    this.d.live.addEventListener("load", () => {
      this.d.live.hidden = false;
      this.d.liveNone.hidden = true;
    });
    this.d.live.addEventListener("error", () => {
      this.d.live.hidden = true;
      this.d.liveNone.hidden = false;
    });
  }

  setPlace(sittingId, roomId) {
    this.place = sittingId ? { sittingId, roomId } : null;
    this.generation += 1;
    this.list.replaceChildren();
    this.render([]);
    if (this.dialog.open) this.dialog.close();
    if (this.place) this.load();
  }

  scheduleReload(delayMs = RELOAD_DEBOUNCE_MS) {
    if (this.reloadTimer || !this.place) return;
    this.reloadTimer = window.setTimeout(() => {
      this.reloadTimer = null;
      this.load();
    }, delayMs);
  }

  async load() {
    if (!this.place) return;
    const generation = this.generation;
    const params = new URLSearchParams({ sitting_id: this.place.sittingId });
    if (this.place.roomId) params.set("room_id", this.place.roomId);
    try {
      const body = await apiFetch(`/api/invigilate/requests?${params}`);
      if (generation !== this.generation) return;
      this.render([
        ...(body.help_requests || []),
        ...(body.identity_reviews || []),
        ...(body.info_problems || []),
      ]);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return; // the page redirects
      // keep what is shown; the next message or reconnect loads again
    }
  }

  /** A console socket message: refresh on what may change the list. */
  onMessage(msg) {
    if (!msg || !this.place) return;
    if (msg.type === "info_problem") {
      this.announce(`Details reported wrong 考生报告信息有误: ${msg.candidate_name || ""}`);
      this.scheduleReload(0);
    } else if (msg.type === "help_request") {
      const words = msg.text ? `: ${msg.text}` : "";
      this.announce(`Raised hand 考生求助 ${msg.candidate_name || ""}${words}`);
      this.scheduleReload(0);
    } else if (msg.type === "info_problem_resolved" || msg.type === "help_request_resolved") {
      this.scheduleReload(0);
    } else if (msg.type === "flow") {
      if (msg.identity?.needs_invigilator) {
        this.announce("Manual identity check needed 需要人工核验身份");
      }
      if (msg.step === "identity" || msg.identity || this.has(msg.candidate_id)) {
        this.scheduleReload();
      }
    }
  }

  has(candidateId) {
    return Boolean(
      this.list.querySelector(`li.request[data-candidate-id="${CSS.escape(String(candidateId))}"]`),
    );
  }

  render(items) {
    const focused = document.activeElement;
    const keepFocus = focused && this.list.contains(focused) ? focused.dataset.focusKey : null;
    for (const li of this.list.querySelectorAll("input.request-note")) {
      this.drafts.set(li.dataset.problemId, li.value);
    }
    this.list.replaceChildren(...items.map((item) => this.renderItem(item)));
    this.empty.hidden = items.length > 0;
    this.count.textContent = String(items.length);
    this.count.dataset.count = String(items.length);
    if (keepFocus) {
      const again = this.list.querySelector(`[data-focus-key="${CSS.escape(keepFocus)}"]`);
      if (again) again.focus();
    }
  }

  renderItem(item) {
    const li = el("li", "request");
    li.dataset.kind = item.kind;
    li.dataset.candidateId = String(item.candidate_id);
    const head = el("div", "request-head");
    const who = el("button", "request-who link-button", item.candidate_name || `#${item.candidate_id}`);
    who.type = "button";
    who.addEventListener("click", () => this.onCandidate(item.candidate_id));
    const when = parseTime(item.at);
    const time = el("time", "request-time muted", when ? formatClock(when) : "");
    if (when) time.title = formatDateTime(when);
    if (item.kind === "info_problem" || item.kind === "help_request") {
      const hand = item.kind === "help_request";
      li.dataset.id = String(item.id);
      const kindLabel = hand ? "Raised hand 求助" : "Details wrong 信息有误";
      head.append(el("strong", "request-kind", kindLabel), " ", who, " ", time);
      const text = el("blockquote", "request-text", item.text);
      if (hand && !item.text) {
        text.textContent = "(no message 无留言)";
        text.classList.add("muted");
      }
      const form = el("form", "request-resolve");
      form.noValidate = true;
      const label = el("label", "visually-hidden", "How it was resolved 处理说明");
      const note = el("input", "request-note");
      note.type = "text";
      note.maxLength = 500;
      note.autocomplete = "off";
      note.placeholder = hand ? "Reply or note 回复或处理说明…" : "How resolved 处理说明…";
      note.id = `request-note-${item.id}`;
      note.dataset.problemId = String(item.id);
      note.dataset.focusKey = `note-${item.id}`;
      note.value = this.drafts.get(String(item.id)) || "";
      label.htmlFor = note.id;
      const button = el("button", "button small request-resolve-button", "Resolved 已处理");
      button.type = "submit";
      button.dataset.focusKey = `resolve-${item.id}`;
      const error = el("p", "request-error form-error");
      error.setAttribute("role", "alert");
      error.hidden = true;
      form.append(label, note, button); // the first: Enter marks handled
      let reply = null;
      if (hand) {
        // send the text to the candidate as a danmaku and mark handled
        reply = el("button", "button small primary request-reply-button", "Reply 回复");
        reply.type = "submit";
        reply.dataset.focusKey = `reply-${item.id}`;
        reply.dataset.reply = "1";
        form.append(reply);
      }
      const path = hand
        ? `/api/invigilate/help-requests/${encodeURIComponent(item.id)}/resolve`
        : `/api/invigilate/info-problems/${encodeURIComponent(item.id)}/resolve`;
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const replying = Boolean(event.submitter?.dataset.reply);
        button.disabled = true;
        if (reply) reply.disabled = true;
        error.hidden = true;
        try {
          await apiFetch(path, {
            method: "POST",
            body: hand ? { note: note.value, reply: replying } : { note: note.value },
          });
          this.drafts.delete(String(item.id));
          li.remove();
          this.announce("Resolved 已处理");
          this.scheduleReload(0);
        } catch (err) {
          error.textContent = err.message;
          error.hidden = false;
          note.focus();
        } finally {
          button.disabled = false;
          if (reply) reply.disabled = false;
        }
      });
      li.append(head, text, form, error);
    } else {
      head.append(el("strong", "request-kind", "Identity check 人工核验身份"), " ", who, " ", time);
      const detail = el(
        "p",
        "request-detail muted",
        item.has_photo
          ? `Photo check failed ${item.failures} of ${item.max_failures} 自动核验失败 ${item.failures}/${item.max_failures} 次`
          : "No usable registered photo 无可用报名照片",
      );
      const open = el("button", "button small primary request-compare", "Compare and decide 比对核验…");
      open.type = "button";
      open.dataset.focusKey = `compare-${item.candidate_id}`;
      open.addEventListener("click", () => this.openIdentity(item, open));
      li.append(head, detail, open);
    }
    return li;
  }

  // ---- the identity comparison -----------------------------------------------------------

  async openIdentity(item, opener) {
    this.identityFor = item.candidate_id;
    this.opener = opener;
    const d = this.d;
    d.who.textContent = item.candidate_name || "";
    d.reason.value = "";
    d.error.hidden = true;
    d.captures.replaceChildren();
    d.registered.hidden = true;
    d.registeredNone.hidden = true;
    d.live.hidden = true;
    d.liveNone.hidden = false;
    if (!this.dialog.open) this.dialog.showModal();
    try {
      const photos = await apiFetch(
        `/api/invigilate/candidates/${encodeURIComponent(item.candidate_id)}/identity-photos`,
      );
      if (this.identityFor !== item.candidate_id) return;
      d.who.textContent = `${photos.candidate_name} · ${photos.id_number || ""}`;
      if (photos.registered_url) {
        d.registered.src = photos.registered_url;
        d.registered.hidden = false;
      } else {
        d.registeredNone.hidden = false;
      }
      d.captures.replaceChildren(
        ...(photos.captures || []).map((c) => {
          const fig = el("figure", "identity-capture");
          const img = el("img");
          img.src = c.url;
          img.alt = `Captured photo 核验抓拍 ${formatDateTime(parseTime(c.captured_at))}`;
          const cap = el(
            "figcaption",
            "muted",
            `${formatClock(parseTime(c.captured_at))} · ${REASON_LABELS[c.reason] || c.reason || ""}` +
              (c.distance !== null && c.distance !== undefined ? ` · d=${c.distance}` : ""),
          );
          fig.append(img, cap);
          return fig;
        }),
      );
      if (!(photos.captures || []).length) {
        d.captures.append(el("p", "muted", "No photo taken 暂无抓拍"));
      }
      this.liveUrl = photos.live_url;
      this.startLive();
    } catch (err) {
      d.error.textContent = err.message;
      d.error.hidden = false;
    }
    d.reason.focus();
  }

  startLive() {
    this.stopLive();
    const tick = () => {
      if (!this.dialog.open || !this.liveUrl) return;
      this.d.live.src = `${this.liveUrl}?t=${Date.now()}`;
      this.liveTimer = window.setTimeout(tick, LIVE_REFRESH_MS);
    };
    tick();
  }

  stopLive() {
    window.clearTimeout(this.liveTimer);
    this.liveTimer = null;
    if (this.opener && this.opener.isConnected) this.opener.focus();
  }

  async decide(decision, button) {
    const [path, done] = DECISIONS[decision];
    const id = this.identityFor;
    if (id === null || id === undefined) return;
    const d = this.d;
    d.error.hidden = true;
    for (const b of this.dialog.querySelectorAll("button[data-decision]")) b.disabled = true;
    try {
      await apiFetch(`/api/invigilate/candidates/${encodeURIComponent(id)}/${path}`, {
        method: "POST",
        body: { reason: d.reason.value },
      });
      this.dialog.close();
      this.announce(done);
      this.scheduleReload(0);
    } catch (err) {
      d.error.textContent = err.message;
      d.error.dataset.code = err.code || "";
      d.error.hidden = false;
      d.reason.focus();
    } finally {
      for (const b of this.dialog.querySelectorAll("button[data-decision]")) b.disabled = false;
    }
    return button;
  }
}
