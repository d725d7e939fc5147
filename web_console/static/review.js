// The review page (after the exam): sitting selector, review queue ordered by risk with
// the score's breakdown, one timeline per candidate with playable evidence, verdicts on
// alerts and on the candidate, dismissed rates, supervision summary, records, exports.
// Server: /api/review/* (docs/api.md, "Review"). Reviewers, chief examiners, admins only.

import { ApiError, apiFetch, clearSession, getUser, onUnauthorized, saveSession, staffLogin } from "./api.js";
import {
  actionLabel,
  alertTypeLabel,
  episodeText,
  eventDetail,
  eventLabel,
  formatDateTime,
  setTimeZone,
  parseTime,
  ROLES_THAT,
  severityLabel,
  viewLabel,
} from "./labels.js";

const $ = (id) => document.getElementById(id);
const SITTING_KEY = "proctor.review.sitting";
// who may record verdicts and lock a review: the server's roles table (proctor/auth/roles.py)
const DECIDE_ROLES = new Set(ROLES_THAT.decide);
const LOCK_ROLES = new Set(ROLES_THAT.lock);

const OUTCOMES = {
  no_issue: "No issue 无违规",
  violation: "Violation 违规违纪",
  second_review: "Needs a second review 需复核",
};
const CATEGORIES = {
  warning: "Warning 警告",
  paper_voided: "Paper voided 试卷作废",
  score_cancelled: "Score cancelled 取消本场考试成绩",
  disqualified: "Disqualified 取消考试资格",
};
const KIND_LABELS = {
  alert: "Alert 告警",
  evidence: "Evidence 证据",
  staff_action: "Staff action 监考操作",
  event: "Event 事件",
  connection_loss: "Connection lost 断线",
};
const EVIDENCE_LABELS = {
  alert_screenshot: "Alert screenshot 告警截图",
  alert_clip: "Alert clip 告警视频",
  snapshot: "Random snapshot 随机抓拍",
  identity_capture: "Identity photo 身份核验照片",
  violation_screenshot: "Violation screenshot 违纪截图",
};
const LANES = ["alert", "evidence", "staff_action", "event", "connection_loss"];
const RECORD_LABELS = {
  sitting: "Sitting 场次",
  registered: "Registered 应考人数",
  present: "Present 实考人数",
  absentees: "Absentees 缺考",
  violations: "Violations 违纪",
  violations_recorded_live: "Violations recorded during the exam 考中违纪记录",
  second_reviews: "Awaiting a second review 待复核",
  alerts_by_type: "Alerts by type 各类告警",
  alerts_confirmed: "Alerts confirmed 已确认告警",
  alerts_dismissed: "Alerts dismissed 已排除告警",
  alerts_unreviewed: "Alerts not reviewed 未复核告警",
  incidents: "Connection losses 断线",
  extensions: "Time given back 顺延",
  reported: "Incidents reported at the console 上报的突发事件",
  outages: "Wide-area outages 大面积故障",
  time_lost_seconds: "Time lost (s) 损失时间（秒）",
};

const state = {
  user: null,
  sittingId: null,
  candidateId: null,
  timeline: null,
  record: null,
};

// ---- helpers ---------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") {
      node.setAttribute(key, value);
    } else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(iso) {
  const date = parseTime(iso);
  return date ? formatDateTime(date) : "—";
}

function showPageError(err) {
  const box = $("page-error");
  box.textContent = err.message || String(err);
  box.dataset.code = err.code || "error";
  box.hidden = false;
}

function clearPageError() {
  const box = $("page-error");
  box.hidden = true;
  box.textContent = "";
  delete box.dataset.code;
}

function showFormError(box, err) {
  box.textContent = err.message || String(err);
  box.dataset.code = err.code || "error";
  box.hidden = false;
}

function canDecide() {
  return state.user && DECIDE_ROLES.has(state.user.role);
}

function mediaFor(ev) {
  if (!ev || !ev.url) return null;
  if (String(ev.mime || "").startsWith("video/")) {
    return el("video", {
      class: "evidence-video",
      src: ev.url,
      controls: true,
      preload: "metadata",
      muted: true,
      "data-evidence-id": ev.id,
    });
  }
  return el(
    "a",
    { href: ev.url, target: "_blank", rel: "noopener" },
    el("img", {
      class: "evidence-img",
      src: ev.url,
      alt: EVIDENCE_LABELS[ev.kind] || ev.kind,
      loading: "lazy",
      "data-evidence-id": ev.id,
    }),
  );
}

// ---- session ---------------------------------------------------------------------------

function showLogin(message) {
  $("review-view").hidden = true;
  $("sitting-group").hidden = true;
  $("user-group").hidden = true;
  $("login-view").hidden = false;
  if (message) showPageError(message);
}

onUnauthorized(() => {
  clearSession();
  showLogin();
});

$("review-login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const errorBox = $("review-login-error");
  errorBox.hidden = true;
  const username = $("review-username").value.trim();
  const password = $("review-password").value;
  if (!username || !password) {
    showFormError(errorBox, new ApiError(0, "missing", "Enter your username and password. 请输入用户名和密码。"));
    return;
  }
  try {
    const body = await staffLogin(username, password);
    saveSession(body.token, body.user);
    clearPageError();
    await start();
  } catch (err) {
    showFormError(errorBox, err);
  }
});

$("logout-button").addEventListener("click", async () => {
  try {
    await apiFetch("/api/staff/logout", { method: "POST" });
  } catch {
    /* leaving anyway */
  }
  clearSession();
  showLogin();
});

// ---- the sitting -----------------------------------------------------------------------

async function start() {
  let sittings;
  try {
    sittings = await apiFetch("/api/review/sittings");
  } catch (err) {
    if (err.status === 401) return; // onUnauthorized shows the login
    showLogin(err); // 403 reviewers_only: say so, let another person log in
    return;
  }
  try {
    state.user = await apiFetch("/api/staff/me");
  } catch {
    state.user = getUser();
  }
  $("login-view").hidden = true;
  $("review-view").hidden = false;
  $("sitting-group").hidden = false;
  $("user-group").hidden = false;
  $("staff-name").textContent = state.user
    ? `${state.user.display_name || state.user.username} (${state.user.role})`
    : "—";
  const select = $("sitting-select");
  select.replaceChildren(
    ...sittings.map((s) =>
      el("option", { value: String(s.id) }, `${s.name} — ${when(s.starts_at)}`),
    ),
  );
  const remembered = window.sessionStorage.getItem(SITTING_KEY);
  if (remembered && sittings.some((s) => String(s.id) === remembered)) select.value = remembered;
  if (sittings.length) await loadSitting(Number(select.value));
}

$("sitting-select").addEventListener("change", (event) => {
  window.sessionStorage.setItem(SITTING_KEY, event.target.value);
  loadSitting(Number(event.target.value));
});

async function loadSitting(sittingId) {
  state.sittingId = sittingId;
  $("export-csv").href = `/api/review/sittings/${sittingId}/export/verdicts.csv`;
  try {
    const [queue, supervision] = await Promise.all([
      apiFetch(`/api/review/sittings/${sittingId}/queue`),
      apiFetch(`/api/review/sittings/${sittingId}/supervision`),
    ]);
    setTimeZone(queue.sitting?.time_zone); // the sitting's times, not the browser's
    renderQueue(queue);
    renderRates(queue.dismissed_rates);
    renderSupervision(supervision);
    clearPageError();
  } catch (err) {
    showPageError(err);
  }
}

function verdictText(v) {
  if (!v) return "not reviewed 未复核";
  let text = OUTCOMES[v.outcome] || v.outcome;
  if (v.category) text += ` — ${CATEGORIES[v.category] || v.category}`;
  return text;
}

function renderQueue(queue) {
  const body = $("queue").querySelector("tbody");
  body.replaceChildren(
    ...queue.candidates.map((row, i) => {
      const c = row.candidate;
      const tr = el(
        "tr",
        {
          class: "queue-row",
          "data-candidate-id": c.id,
          "data-score": row.risk.score,
          "data-verdict": row.verdict ? row.verdict.outcome : "none",
          tabIndex: 0,
        },
        el("td", {}, String(i + 1)),
        el("td", {}, el("b", {}, c.name), el("br"), el("span", { class: "muted small" }, c.id_number)),
        el("td", { class: "score" }, String(row.risk.score)),
        el(
          "td",
          {},
          `${row.alerts.total} (${row.alerts.confirmed} ✓, ${row.alerts.dismissed} ✗, ` +
            `${row.alerts.unreviewed} open)`,
        ),
        el("td", { class: "verdict" }, verdictText(row.verdict)),
      );
      if (c.id === state.candidateId) tr.classList.add("selected");
      tr.addEventListener("click", () => openCandidate(c.id));
      tr.addEventListener("keydown", (e) => {
        if (e.key === "Enter") openCandidate(c.id);
      });
      return tr;
    }),
  );
}

function renderRates(rates) {
  const body = $("dismissed-rates").querySelector("tbody");
  body.replaceChildren(
    ...(rates || []).map((r) =>
      el(
        "tr",
        { "data-type": r.type },
        el("td", {}, alertTypeLabel(r.type)),
        el("td", {}, String(r.alerts)),
        el("td", {}, String(r.reviewed)),
        el("td", {}, String(r.dismissed)),
        el(
          "td",
          { class: "rate" },
          r.dismissed_rate === null ? "—" : `${Math.round(r.dismissed_rate * 100)}%`,
        ),
      ),
    ),
  );
}

function renderSupervision(s) {
  const rows = s.items.map((item) =>
    el(
      "tr",
      { "data-key": item.key },
      el("td", {}, item.label),
      el("td", {}, item.points === null ? "—" : `${item.points} / ${item.max}`),
      el("td", {}, item.value, el("br"), el("span", { class: "muted small" }, item.detail)),
    ),
  );
  const f = s.facts;
  $("supervision").replaceChildren(
    el(
      "p",
      { class: "supervision-total" },
      `Measured items 可测项目: ${s.points} / ${s.max} (of the 100-point sheet)`,
    ),
    el("table", { class: "data" }, el("tbody", {}, ...rows)),
    el(
      "p",
      { class: "muted small" },
      `Registered ${f.registered}, present ${f.present}, absent ${f.absent}; ` +
        `${f.connection_losses} connection losses (${f.time_lost_seconds} s lost), ` +
        `${f.outages} wide-area outages; ${f.extensions} extensions; ` +
        `${f.staff_who_acted} staff acted. Not measured remotely: ${s.not_measured.join("; ")}.`,
    ),
  );
}

// ---- one candidate ---------------------------------------------------------------------

async function openCandidate(candidateId) {
  state.candidateId = candidateId;
  for (const tr of document.querySelectorAll(".queue-row")) {
    tr.classList.toggle("selected", Number(tr.dataset.candidateId) === candidateId);
  }
  try {
    const tl = await apiFetch(`/api/review/candidates/${candidateId}/timeline`);
    state.timeline = tl;
    renderCandidate(tl);
    clearPageError();
  } catch (err) {
    showPageError(err);
  }
}

function renderCandidate(tl) {
  const panel = $("candidate-detail");
  panel.hidden = false;
  panel.dataset.candidateId = tl.candidate.id;
  $("detail-title").textContent = `${tl.candidate.name} · ${tl.candidate.id_number}`;
  $("detail-verdict").textContent = `Verdict 结论: ${verdictText(tl.verdict)}` +
    (tl.verdict ? ` (${tl.verdict.reviewer}, ${when(tl.verdict.decided_at)})` : "");
  $("evidence-pack").href = `/api/review/candidates/${tl.candidate.id}/evidence-pack.zip`;
  $("risk-score").textContent = String(tl.risk.score);
  $("risk-breakdown").querySelector("tbody").replaceChildren(
    ...tl.risk.alerts.map((p) =>
      el(
        "tr",
        { "data-alert-id": p.alert_id },
        el("td", {}, String(p.alert_id)),
        el("td", {}, alertTypeLabel(p.type)),
        el("td", {}, String(p.weight)),
        el("td", {}, `${p.severity} ×${p.severity_factor}`),
        el("td", {}, `${p.duration_s} s ×${p.duration_factor}`),
        el("td", {}, p.views_agree ? `both ×${p.views_factor}` : "one ×1"),
        el("td", {}, `#${p.repeat} ×${p.repeat_factor}`),
        el("td", {}, p.decision === "dismissed" ? "0 (dismissed)" : String(p.points)),
      ),
    ),
  );
  renderAxis(tl);
  renderRecording(tl);
  renderList(tl);
  renderAlerts(tl);
  renderVerdictForm(tl);
}

function itemLabel(item) {
  if (item.kind === "alert") {
    // an episode is drawn as a span on the axis; the label says how long it lasted
    const episode = episodeText({ ...item, started_at: item.at });
    // raised while the console had this type snoozed for the candidate: never pushed
    const snoozed = item.snoozed ? " · raised while snoozed 静音期间" : "";
    return `${alertTypeLabel(item.type)} · ${severityLabel(item.severity)}${episode ? ` · ${episode}` : ""}${snoozed}`;
  }
  if (item.kind === "evidence") return EVIDENCE_LABELS[item.type] || "Evidence 证据";
  if (item.kind === "connection_loss") {
    return `Connection lost 断线 (${viewLabel(item.view)}) ${item.seconds} s` +
      (item.restored ? "" : " — not restored 未恢复");
  }
  if (item.kind === "staff_action" && item.type === "danmaku") {
    const state = item.acknowledged_at
      ? ` — acknowledged 已知晓 ${when(item.acknowledged_at)}`
      : item.seen_at ? " — seen, not acknowledged 已显示，未确认" : "";
    return `Danmaku 弹幕警告 · by 发送人 ${item.by}: “${item.text}”${state}`;
  }
  if (item.kind === "staff_action" && item.type === "time_extension") {
    return `Time given back 顺延 ${item.seconds} s · by 操作人 ${item.by}: ${item.reason || ""}`;
  }
  if (["alerts_snoozed", "snooze_ended"].includes(item.type) && item.data?.type) {
    // which alert type the console snoozed (and for how long), or whose snooze ended
    const minutes = item.type === "alerts_snoozed" && item.data.minutes
      ? ` ${item.data.minutes} min 分钟` : "";
    return `${actionLabel(item.type)}: ${alertTypeLabel(item.data.type)}${minutes}` +
      ` by ${item.by || "—"}${item.reason ? `: ${item.reason}` : ""}`;
  }
  if (item.kind === "staff_action") {
    return `${actionLabel(item.type)} · by 操作人 ${item.by || "—"}${item.reason ? `: ${item.reason}` : ""}`;
  }
  if (item.kind === "event") {
    const detail = eventDetail(item.type, item.data);
    const view = item.data?.view ? ` (${viewLabel(item.data.view)})` : "";
    return `${eventLabel(item.type)}${view}${detail ? ` — ${detail}` : ""}`;
  }
  return item.type;
}

function renderAxis(tl) {
  const axis = $("timeline-axis");
  const start = parseTime(tl.axis.start).getTime();
  const end = parseTime(tl.axis.end).getTime();
  const span = Math.max(1, end - start);
  const pos = (iso) => Math.min(100, Math.max(0, ((parseTime(iso).getTime() - start) / span) * 100));
  const lanes = LANES.map((lane) => {
    const row = el("div", { class: "lane", "data-lane": lane }, el("span", { class: "lane-label" }, KIND_LABELS[lane]));
    tl.items.forEach((item, index) => {
      if (item.kind !== lane) return;
      const left = pos(item.at);
      const width = item.end ? Math.max(0.4, pos(item.end) - left) : 0;
      const mark = el("button", {
        type: "button",
        class: `mark mark-${lane}${item.severity ? ` sev-${item.severity}` : ""}`,
        title: `${when(item.at)} ${itemLabel(item)}`,
        "data-index": index,
        tabIndex: -1,
      });
      mark.style.left = `${left}%`;
      if (width) mark.style.width = `${width}%`;
      mark.addEventListener("click", () => {
        if (item.kind === "alert") seekRecording(item.at);
        const target = document.querySelector(`#timeline-list li[data-index="${index}"]`);
        if (target) {
          target.scrollIntoView({ block: "center", behavior: "smooth" });
          target.classList.add("flash");
          window.setTimeout(() => target.classList.remove("flash"), 1200);
        }
      });
      row.append(mark);
    });
    return row;
  });
  axis.replaceChildren(
    ...lanes,
    el(
      "div",
      { class: "axis-scale" },
      el("span", {}, when(tl.axis.start)),
      el("span", {}, when(tl.axis.end)),
    ),
  );
}

// ---- the whole-session recording (issue 22) ------------------------------------------
// Segments of each view (WebM, as the server received them) placed on the timeline's
// time scale; one clock drives both views; a moment without a segment shows a gap.

const REC_VIEWS = ["first", "second"];
const rec = { start: 0, end: 0, segs: { first: [], second: [] }, t: 0, playing: false, timer: null, wall: 0 };

function recVideo(view) {
  return $(`rec-${view}`);
}

function segmentAt(view, t) {
  return rec.segs[view].find((s) => s.start <= t && t < s.end) || null;
}

function recTimeText(t) {
  return formatDateTime(new Date(t));
}

function renderRecording(tl) {
  stopRecording();
  const box = $("recording");
  const segments = tl.recordings || [];
  box.hidden = segments.length === 0;
  box.dataset.candidateId = tl.candidate.id;
  for (const view of REC_VIEWS) {
    const video = recVideo(view);
    video.removeAttribute("src");
    delete video.dataset.evidenceId;
    video.load();
  }
  if (!segments.length) return;
  rec.start = parseTime(tl.axis.start).getTime();
  rec.end = parseTime(tl.axis.end).getTime();
  for (const view of REC_VIEWS) {
    rec.segs[view] = segments
      .filter((r) => r.view === view)
      .map((r) => ({ ...r, start: parseTime(r.start).getTime(), end: parseTime(r.end).getTime() }))
      .sort((a, b) => a.start - b.start);
  }
  const span = Math.max(1, rec.end - rec.start);
  $("rec-covered").replaceChildren(
    ...REC_VIEWS.flatMap((view) =>
      rec.segs[view].map((seg) => {
        const mark = el("span", { class: `rec-span view-${view}`, title: `${viewLabel(view)} ${when(new Date(seg.start).toISOString())}` });
        mark.style.left = `${((seg.start - rec.start) / span) * 100}%`;
        mark.style.width = `${Math.max(0.2, ((seg.end - seg.start) / span) * 100)}%`;
        return mark;
      }),
    ),
  );
  const scrubber = $("rec-scrubber");
  scrubber.max = String(span);
  const first = Math.min(...REC_VIEWS.flatMap((v) => rec.segs[v].map((s) => s.start)));
  showRecordingAt(first);
}

function placeView(view, t, play) {
  const video = recVideo(view);
  const seg = segmentAt(view, t);
  const figure = video.closest(".recording-view");
  figure.classList.toggle("no-recording", !seg);
  figure.querySelector(".rec-gap").hidden = Boolean(seg);
  if (!seg) {
    if (!video.paused) video.pause();
    return;
  }
  const offset = (t - seg.start) / 1000;
  if (video.dataset.evidenceId !== String(seg.id)) {
    video.dataset.evidenceId = String(seg.id);
    video.src = seg.url;
    video.addEventListener(
      "loadedmetadata",
      () => {
        video.currentTime = Math.max(0, (rec.t - seg.start) / 1000);
        if (rec.playing) video.play().catch(() => {});
      },
      { once: true },
    );
    return;
  }
  if (Math.abs(video.currentTime - offset) > 0.6) video.currentTime = Math.max(0, offset);
  if (play && video.paused) video.play().catch(() => {});
  if (!play && !video.paused) video.pause();
}

function showRecordingAt(t) {
  rec.t = Math.min(Math.max(t, rec.start), rec.end);
  $("rec-scrubber").value = String(rec.t - rec.start);
  $("rec-time").textContent = recTimeText(rec.t);
  $("recording").dataset.position = new Date(rec.t).toISOString();
  for (const view of REC_VIEWS) placeView(view, rec.t, rec.playing);
}

function tickRecording() {
  const now = performance.now();
  showRecordingAt(rec.t + (now - rec.wall));
  rec.wall = now;
  if (rec.t >= rec.end) stopRecording();
}

function startRecording() {
  rec.playing = true;
  rec.wall = performance.now();
  $("rec-play").textContent = "Pause 暂停";
  showRecordingAt(rec.t);
  rec.timer = window.setInterval(tickRecording, 250);
}

function stopRecording() {
  rec.playing = false;
  if (rec.timer) window.clearInterval(rec.timer);
  rec.timer = null;
  const button = $("rec-play");
  if (button) button.textContent = "Play 播放";
  for (const view of REC_VIEWS) {
    const video = recVideo(view);
    if (video && !video.paused) video.pause();
  }
}

/** Show the recording at ``iso`` (an alert's start): both views, paused there. */
function seekRecording(iso) {
  const box = $("recording");
  if (box.hidden) return;
  const t = parseTime(iso).getTime();
  showRecordingAt(t);
  box.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function wireRecording() {
  $("rec-play").addEventListener("click", () => (rec.playing ? stopRecording() : startRecording()));
  $("rec-scrubber").addEventListener("input", (event) => {
    showRecordingAt(rec.start + Number(event.target.value));
  });
}

function renderList(tl) {
  $("timeline-list").replaceChildren(
    ...tl.items.map((item, index) =>
      el(
        "li",
        {
          class: `tl-item tl-${item.kind}`,
          "data-index": index,
          "data-kind": item.kind,
          "data-type": item.type || "",
          "data-snoozed": item.kind === "alert" ? String(Boolean(item.snoozed)) : null,
        },
        el("time", { dateTime: item.at }, when(item.at)),
        el("span", { class: "tl-kind" }, KIND_LABELS[item.kind] || item.kind),
        el("span", { class: "tl-what" }, itemLabel(item)),
        item.kind === "evidence" ? mediaFor(item) : null,
        item.kind === "alert" && tl.recordings && tl.recordings.length
          ? Object.assign(
              el("button", { type: "button", class: "button small rec-seek", "data-alert-id": item.id }, "▶ Recording 录像"),
              { onclick: () => seekRecording(item.at) },
            )
          : null,
      ),
    ),
  );
}

function renderAlerts(tl) {
  const box = $("alert-cards");
  if (!tl.alerts.length) {
    box.replaceChildren(el("p", { class: "muted" }, "No alerts. 无告警。"));
    return;
  }
  box.replaceChildren(
    ...tl.alerts.map((a) => {
      const decision = a.verdict ? a.verdict.decision : "none";
      const card = el(
        "article",
        { class: `alert-card sev-${a.severity}`, "data-alert-id": a.id, "data-decision": decision },
        el(
          "h4",
          {},
          `${alertTypeLabel(a.type)} · ${severityLabel(a.severity)} · ${viewLabel(a.view)}`,
        ),
        el("p", { class: "muted small" }, `${when(a.at)} → raised ${when(a.raised_at)}: ${a.message}`),
        el("div", { class: "alert-media" }, ...a.evidence.map(mediaFor)),
        el(
          "p",
          { class: "alert-verdict" },
          a.verdict
            ? `${a.verdict.decision === "confirmed" ? "Confirmed 确认" : "Dismissed 排除"} by ` +
                `${a.verdict.reviewer}${a.verdict.note ? `: ${a.verdict.note}` : ""}`
            : "Not reviewed 未复核",
        ),
      );
      if (canDecide()) {
        const note = el("input", { class: "alert-note", type: "text", maxLength: 2000, placeholder: "Note 说明" });
        note.setAttribute("aria-label", `Note on alert ${a.id}`);
        const error = el("p", { class: "form-error", role: "alert", hidden: true });
        const decide = async (decisionValue) => {
          error.hidden = true;
          try {
            await apiFetch(`/api/review/alerts/${a.id}/verdict`, {
              method: "POST",
              body: { decision: decisionValue, note: note.value },
            });
            await refresh();
          } catch (err) {
            showFormError(error, err);
          }
        };
        card.append(
          el(
            "div",
            { class: "alert-actions" },
            note,
            Object.assign(el("button", { type: "button", class: "button confirm-alert" }, "Confirm 确认"), {
              onclick: () => decide("confirmed"),
            }),
            Object.assign(el("button", { type: "button", class: "button dismiss-alert" }, "Dismiss 排除"), {
              onclick: () => decide("dismissed"),
            }),
          ),
          error,
        );
      }
      return card;
    }),
  );
}

function renderVerdictForm(tl) {
  const form = $("candidate-verdict-form");
  form.hidden = !canDecide();
  form.reset();
  $("category-field").hidden = true;
  $("verdict-error").hidden = true;
  const confirmed = tl.alerts.filter((a) => a.verdict && a.verdict.decision === "confirmed");
  const cited = $("cited-alerts");
  cited.replaceChildren(
    el("legend", {}, "Confirmed alerts it rests on 依据的已确认告警"),
    ...(confirmed.length
      ? confirmed.map((a) =>
          el(
            "label",
            {},
            el("input", { type: "checkbox", name: "alert", value: String(a.id), checked: true }),
            ` ${alertTypeLabel(a.type)} (${when(a.at)})`,
          ),
        )
      : [el("span", { class: "muted small" }, "No confirmed alert. 暂无已确认告警。")]),
  );
  cited.hidden = true;
  $("verdict-history").replaceChildren(
    ...tl.verdict_history.map((v) =>
      el(
        "li",
        { "data-outcome": v.outcome },
        `${when(v.decided_at)} ${v.reviewer}: ${verdictText(v)}${v.note ? ` — ${v.note}` : ""}`,
      ),
    ),
  );
}

$("candidate-verdict-form").addEventListener("change", () => {
  const outcome = new FormData($("candidate-verdict-form")).get("outcome");
  $("category-field").hidden = outcome !== "violation";
  $("cited-alerts").hidden = outcome !== "violation";
});

$("candidate-verdict-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  const outcome = data.get("outcome");
  const errorBox = $("verdict-error");
  errorBox.hidden = true;
  if (!outcome) {
    showFormError(errorBox, new ApiError(0, "missing", "Choose an outcome. 请选择结论。"));
    return;
  }
  const body = {
    outcome,
    note: $("verdict-note").value,
    category: outcome === "violation" ? $("verdict-category").value || null : null,
    alert_ids: outcome === "violation" ? data.getAll("alert").map(Number) : [],
  };
  try {
    await apiFetch(`/api/review/candidates/${state.candidateId}/verdict`, {
      method: "POST",
      body,
    });
    await refresh();
  } catch (err) {
    showFormError(errorBox, err);
  }
});

async function refresh() {
  await loadSitting(state.sittingId);
  if (state.candidateId) await openCandidate(state.candidateId);
}

// ---- records ---------------------------------------------------------------------------

function renderValue(value) {
  if (Array.isArray(value)) {
    if (!value.length) return el("span", { class: "muted" }, "none 无");
    const keys = [...new Set(value.flatMap((v) => (v && typeof v === "object" ? Object.keys(v) : [])))]
      .filter((k) => !["data", "alert_ids"].includes(k));
    return el(
      "table",
      { class: "data" },
      el("thead", {}, el("tr", {}, ...keys.map((k) => el("th", {}, k)))),
      el(
        "tbody",
        {},
        ...value.map((v) => el("tr", {}, ...keys.map((k) => el("td", {}, v[k] === null || v[k] === undefined ? "" : String(v[k]))))),
      ),
    );
  }
  if (value && typeof value === "object") {
    return el(
      "dl",
      { class: "record-dl" },
      ...Object.entries(value).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]),
    );
  }
  return el("span", {}, String(value));
}

function renderRecord(record) {
  state.record = record;
  const panel = $("record-panel");
  panel.hidden = false;
  panel.dataset.kind = record.kind;
  panel.dataset.locked = String(record.locked);
  $("record-title").textContent = record.label;
  $("record-state").textContent = record.locked
    ? `Locked 已锁定 by ${record.locked_by} ${when(record.locked_at)} · sha256 ${record.locked_sha256.slice(0, 16)}…`
    : `Version ${record.version}${record.updated_by ? `, last saved by ${record.updated_by}` : ""}`;
  const sections = Object.entries(record.content)
    .filter(([key]) => key !== "text")
    .map(([key, value]) =>
      el(
        "section",
        { class: "record-section", "data-field": key },
        el("h4", {}, RECORD_LABELS[key] || key),
        renderValue(value),
      ),
    );
  $("record-content").replaceChildren(...sections);
  const text = record.content.text || {};
  $("record-fields").replaceChildren(
    ...Object.entries(record.text_fields).map(([key, label]) => {
      const id = `record-text-${key}`;
      return el(
        "div",
        { class: "field" },
        el("label", { htmlFor: id }, label),
        el("textarea", { id, name: key, rows: 3, value: text[key] || "", disabled: record.locked || !canDecide() }),
      );
    }),
  );
  $("record-save").hidden = record.locked || !canDecide();
  $("record-refresh").hidden = record.locked || !canDecide();
  $("record-lock").hidden = record.locked || !(state.user && LOCK_ROLES.has(state.user.role));
  $("record-error").hidden = true;
}

async function openRecord(kind) {
  try {
    renderRecord(await apiFetch(`/api/review/sittings/${state.sittingId}/records/${kind}`));
    $("record-panel").scrollIntoView({ block: "start" });
  } catch (err) {
    showPageError(err);
  }
}

for (const button of document.querySelectorAll("[data-record]")) {
  button.addEventListener("click", () => openRecord(button.dataset.record));
}

async function recordAction(path, method, body) {
  const r = state.record;
  try {
    renderRecord(
      await apiFetch(`/api/review/sittings/${state.sittingId}/records/${r.kind}${path}`, { method, body }),
    );
  } catch (err) {
    showFormError($("record-error"), err);
  }
}

$("record-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = {};
  for (const area of $("record-fields").querySelectorAll("textarea")) text[area.name] = area.value;
  recordAction("", "PUT", { content: { text }, version: state.record.version });
});
$("record-refresh").addEventListener("click", () =>
  recordAction("/refresh", "POST", { version: state.record.version }),
);
$("record-lock").addEventListener("click", () => {
  if (!window.confirm("Lock this record? It can no longer be changed. 锁定后不可修改，确定吗？")) return;
  recordAction("/lock", "POST", { version: state.record.version });
});
$("record-close").addEventListener("click", () => {
  $("record-panel").hidden = true;
});

// ---- go --------------------------------------------------------------------------------

wireRecording();
start();
