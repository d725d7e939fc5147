// Words shown to the invigilator, English + Chinese as in the exam documents, and small
// formatting helpers. Pure functions: no DOM, easy to reuse in other console pages.

// The words for the server's codes come from the server's own tables (alert types, flow
// steps, roles, violation and incident categories, console actions, sitting kinds):
// /console/tables.js is rendered from them
// (proctor/invigilation/labels.py). Re-exported here, so pages import every word from one
// place; the import is resolved before any page code runs.
import {
  ACTIONS,
  ALERT_TYPES,
  FLOW_STEPS,
  INCIDENT_CATEGORIES,
  ROLES,
  ROLES_THAT,
  SITTING_KINDS,
  VIOLATION_CATEGORIES,
  VIOLATIONS_ENDING_EXAM,
} from "./tables.js";

export {
  ACTIONS,
  ALERT_TYPES,
  FLOW_STEPS,
  INCIDENT_CATEGORIES,
  ROLES,
  ROLES_THAT,
  SITTING_KINDS,
  VIOLATION_CATEGORIES,
  VIOLATIONS_ENDING_EXAM,
};

export const SEVERITIES = {
  critical: "Critical 严重",
  warning: "Warning 警告",
  info: "Info 提示",
};

export const VIEWS = {
  first: "First view 第一视角",
  second: "Second view 第二视角",
};

export const DANMAKU_STATES = {
  sent: "sent 已发送",
  delivered: "delivered 已送达",
  seen: "shown, not acknowledged 已显示，未确认",
  acknowledged: "acknowledged 已知晓",
};


// Detector names the server may use, mapped to words. Unknown names are humanised.
const DETECTORS = {
  objects: ["Object detection", "物体识别"],
  object: ["Object detection", "物体识别"],
  object_detection: ["Object detection", "物体识别"],
  objects_detection: ["Object detection", "物体识别"],
  yolox: ["Object detection", "物体识别"],
  device: ["Object detection", "物体识别"],
  devices: ["Object detection", "物体识别"],
  persons: ["Person detection", "人体检测"],
  person: ["Person detection", "人体检测"],
  face: ["Face detection", "人脸检测"],
  faces: ["Face detection", "人脸检测"],
  face_detection: ["Face detection", "人脸检测"],
  face_mesh: ["Face landmarks", "人脸关键点"],
  landmarks: ["Face landmarks", "人脸关键点"],
  face_landmarks: ["Face landmarks", "人脸关键点"],
  head_pose: ["Head pose", "头部姿态"],
  gaze: ["Gaze", "视线"],
  identity: ["Identity check", "身份比对"],
  face_identity: ["Identity check", "身份比对"],
  face_recognition: ["Identity check", "身份比对"],
  embedder: ["Identity check", "身份比对"],
  face_covered: ["Face-covered check", "面部遮挡检测"],
  camera_blocked: ["Camera-blocked check", "摄像头遮挡检测"],
  blocked: ["Camera-blocked check", "摄像头遮挡检测"],
  vad: ["Voice activity", "语音检测"],
  voice: ["Voice activity", "语音检测"],
  voice_activity: ["Voice activity", "语音检测"],
  speech: ["Voice activity", "语音检测"],
  audio: ["Voice activity", "语音检测"],
};

function humanise(name) {
  const words = String(name).replace(/[_-]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : "Unknown";
}

export function alertTypeLabel(type) {
  return ALERT_TYPES[type] || humanise(type || "alert");
}

export function severityLabel(severity) {
  return SEVERITIES[severity] || humanise(severity || "info");
}

export function viewLabel(view) {
  return VIEWS[view] || (view ? humanise(view) : "");
}

export function sittingKindLabel(kind) {
  return SITTING_KINDS[kind] || (kind ? humanise(kind) : "");
}

/** @returns {[string, string|null]} English words and Chinese words (or null). */
export function detectorLabel(name) {
  const key = String(name || "").toLowerCase();
  return DETECTORS[key] || [humanise(key), null];
}

/** "110101199001011234" → "**************1234"; short numbers are fully masked. */
export function maskIdNumber(idNumber) {
  const text = String(idNumber ?? "");
  if (text.length <= 4) return "*".repeat(text.length);
  return "*".repeat(text.length - 4) + text.slice(-4);
}

export function lastFour(idNumber) {
  const text = String(idNumber ?? "");
  return text.length > 4 ? text.slice(-4) : "";
}

/** Parse an ISO time; null when missing or unreadable. */
export function parseTime(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

// Times are shown in the sitting's time zone (issue 23: not the browser's), set by the
// page once it knows the sitting (``setTimeZone(sitting.time_zone)``); date-and-time
// strings carry the offset ("GMT+8").
let timeFormat;
let dateTimeFormat;
let shortDateTimeFormat;
let currentZone;

function makeFormats(zone) {
  const tz = zone ? { timeZone: zone } : {};
  timeFormat = new Intl.DateTimeFormat("zh-CN", {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
    ...tz,
  });
  dateTimeFormat = new Intl.DateTimeFormat("zh-CN", {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
    timeZoneName: "shortOffset",
    ...tz,
  });
  shortDateTimeFormat = new Intl.DateTimeFormat("zh-CN", {
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
    ...tz,
  });
}

/** Show every time in ``zone`` (an IANA name such as "Asia/Shanghai"); unknown names
 * are ignored (the times stay in the previous zone). */
export function setTimeZone(zone) {
  if (!zone || zone === currentZone) return;
  try {
    makeFormats(zone);
    currentZone = zone;
  } catch (err) {
    makeFormats(currentZone);
  }
}

export function currentTimeZone() {
  return currentZone || Intl.DateTimeFormat().resolvedOptions().timeZone;
}

makeFormats(undefined);

/**
 * How an alert's episode stands (issue 18): "ongoing since 10:02:03 · 3:05" while
 * its condition lasts (counted to ``now``), "lasted 3:05 (10:02:03–10:05:08)" once
 * closed; "" for alerts from before episodes.
 */
export function episodeText(alert, now = Date.now()) {
  const started = parseTime(alert?.started_at);
  if (!started || !alert.last_seen_at) return "";
  if (alert.ongoing) {
    return `ongoing since 持续自 ${formatClock(started)} · ${formatDuration((now - started.getTime()) / 1000)}`;
  }
  const ended = parseTime(alert.ended_at) || parseTime(alert.last_seen_at);
  const seconds = (ended.getTime() - started.getTime()) / 1000;
  return `lasted 持续 ${formatDuration(seconds)} (${formatClock(started)}–${formatClock(ended)})`;
}

/** Keep every ``[data-episode-ongoing]`` element's running duration up to date. */
export function tickEpisodes(root = document) {
  for (const el of root.querySelectorAll("[data-episode-ongoing='true']")) {
    el.textContent = episodeText({
      started_at: el.dataset.startedAt,
      last_seen_at: el.dataset.startedAt,
      ongoing: true,
    });
  }
}

export function formatClock(date) {
  return date ? timeFormat.format(date) : "--:--:--";
}

/** "2026/12/07 09:02:46 GMT+8": the date and time, then the offset. */
export function formatDateTime(date) {
  if (!date) return "";
  const parts = dateTimeFormat.formatToParts(date);
  const zone = parts.find((p) => p.type === "timeZoneName")?.value || "";
  const rest = parts
    .filter((p) => p.type !== "timeZoneName")
    .map((p) => p.value)
    .join("")
    .replace(/\s+/g, " ")
    .trim();
  return zone ? `${rest} ${zone}` : rest;
}

export function formatShortDateTime(date) {
  return date ? shortDateTimeFormat.format(date) : "";
}

/**
 * Everything that is wrong according to a /health body (or the socket's "health"
 * message), as sentences: "Object detection disabled: model yolox_nano missing".
 * An empty list means all is well.
 *
 * @param {any} health
 * @returns {{key: string, level: "disabled"|"degraded"|"problem", text: string,
 *            zh: string|null}[]}
 */
export function healthProblems(health) {
  const problems = [];
  if (!health || typeof health !== "object") return problems;
  const models = health.models && typeof health.models === "object" ? health.models : {};
  const detectors =
    health.detectors && typeof health.detectors === "object" ? health.detectors : {};

  const modelBroken = (model) => model && (model.present === false || Boolean(model.problem));
  const modelReason = (name, model) => `model ${name} ${model.problem || "missing"}`;

  // The missing model behind a detector, to explain a disabled detector without reason.
  const modelProblemFor = (detector) => {
    for (const [modelName, model] of Object.entries(models)) {
      if (!modelBroken(model) || !Array.isArray(model.used_by)) continue;
      if (model.used_by.includes(detector)) return modelReason(modelName, model);
    }
    return null;
  };

  const explained = new Set();
  for (const [name, info] of Object.entries(detectors)) {
    if (!info || typeof info !== "object") continue;
    const [en, zh] = detectorLabel(name);
    if (info.enabled === false) {
      const reason = info.reason || modelProblemFor(name) || "no reason given";
      problems.push({
        key: `detector:${name}`,
        level: "disabled",
        text: `${en} disabled: ${reason}`,
        zh: zh ? `${zh}已停用` : "已停用",
      });
      explained.add(name);
    } else if (info.reason) {
      // enabled, but running with less than it should (e.g. one of two models missing)
      const note = String(info.reason).replace(/^degraded:\s*/i, "");
      problems.push({
        key: `detector:${name}`,
        level: "degraded",
        text: `${en} degraded: ${note}`,
        zh: zh ? `${zh}功能受限` : "功能受限",
      });
      explained.add(name);
    }
  }

  // A broken model whose detectors the server did not list still disables them.
  for (const [modelName, model] of Object.entries(models)) {
    if (!modelBroken(model)) continue;
    const users = Array.isArray(model.used_by) ? model.used_by : [];
    const unexplained = users.filter((d) => !explained.has(d) && !(d in detectors));
    if (!users.length) {
      problems.push({
        key: `model:${modelName}`,
        level: "problem",
        text: `Model ${modelName}: ${model.problem || "missing"}`,
        zh: "模型不可用",
      });
    }
    for (const detector of unexplained) {
      const [en, zh] = detectorLabel(detector);
      problems.push({
        key: `detector:${detector}`,
        level: "disabled",
        text: `${en} disabled: ${modelReason(modelName, model)}`,
        zh: zh ? `${zh}已停用` : "已停用",
      });
      explained.add(detector);
    }
  }

  if (health.database && health.database !== "ok") {
    problems.push({
      key: "database",
      level: "problem",
      text: `Database: ${health.database}`,
      zh: "数据库异常",
    });
  }

  if (!problems.length && health.status && health.status !== "ok") {
    problems.push({
      key: "status",
      level: "problem",
      text: `Server status: ${health.status}`,
      zh: "服务器状态异常",
    });
  }
  // Two detector names may share words (objects/devices): say each sentence once.
  const said = new Set();
  return problems.filter((p) => !said.has(p.text) && said.add(p.text));
}

// ---- console (issue 5): flow steps, the escalation ladder, actions, incidents ----------

export function roleLabel(role) {
  return ROLES[role] || (role ? humanise(role) : "");
}

export function violationCategoryLabel(code) {
  return VIOLATION_CATEGORIES[code] || (code ? humanise(code) : "");
}

export const RUNGS = {
  hint: "Hint 自动提示",
  danmaku: "Danmaku 弹幕警告",
  voice: "Voice 语音",
  terminate: "Terminate 终止考试",
};


export const EVENTS = {
  media_connected: "Connected 已连接",
  media_lost: "Connection lost 断开",
  media_ended: "View ended with the exam 考试结束，画面结束",
  info_problem: "Details reported wrong 考生报告信息有误",
  info_problem_resolved: "Details problem resolved 信息问题已处理",
  help_request: "Raised hand 考生求助",
  help_request_resolved: "Raised hand answered 求助已处理",
  identity_check: "Photo check 拍照核验",
  identity_admitted: "Admitted after a manual check 人工核验通过",
  identity_retry_allowed: "Photo check opened again 允许重新拍照",
  identity_refused: "Not admitted after a manual check 人工核验不予通过",
  login: "Logged in 登录",
  submitted: "Handed in 交卷",
  time_extended: "Time extended 延时",
  exam_paused: "Paused 暂停",
  exam_resumed: "Resumed 恢复",
  exam_terminated: "Exam ended 终止考试",
  discipline_warning: "Warning 警告",
  // every kind the server records (issue 23: none shown as a raw code)
  info_confirmed: "Details confirmed 信息已确认",
  pledge_signed: "Pledge signed 已签署承诺书",
  pledge_refused: "Pledge refused 拒绝签署承诺书",
  pledge_reopened: "Pledge opened again 承诺书已重新开放",
  phone_paired: "Phone paired 手机已配对",
  phone_done: "Phone set up 手机已就位",
  answering_started: "Started answering 开始作答",
  device_checked: "Device check done 设备调试完成",
  session_released: "Session released 会话已释放",
  login_limit_cleared: "Login limit cleared 登录限制已解除",
  page_hidden: "Left the exam page 离开考试页面",
  page_visible: "Back on the exam page 回到考试页面",
  page_blur: "Window lost focus 窗口失去焦点",
  page_focus: "Window focused again 窗口重新获得焦点",
  page_fullscreen_exit: "Left full screen 退出全屏",
  page_fullscreen_enter: "Full screen 进入全屏",
  page_copy: "Copied 复制",
  page_cut: "Cut 剪切",
  page_paste: "Pasted 粘贴",
  page_contextmenu: "Right-click menu 右键菜单",
  page_print: "Print 打印",
};


// Ready-made reasons for handling an alert (free text is always possible).
export const HANDLING_REASONS = {
  acknowledge: [
    "Warned the candidate 已警告考生",
    "Candidate corrected it 考生已纠正",
    "Recorded as a violation 已记录违纪",
  ],
  dismiss: [
    "False alarm 误报",
    "Allowed by the invigilator 经监考允许",
    "Technical problem, not the candidate 技术原因",
  ],
};

// Ready-made reasons for snoozing a candidate's alerts of one type.
export const SNOOZE_REASONS = [
  "Known and checked, not a violation 已核实，非违规",
  "Allowed object in the room 经允许的物品",
  "Candidate being helped by the invigilator 监考正在处理",
];

// An alert's status (the console, timelines, review).
export const ALERT_STATUSES = {
  open: "Open 待处理",
  acknowledged: "Acknowledged 已确认",
  dismissed: "Dismissed 已排除",
  confirmed: "Confirmed 已确认违规",
};

export function alertStatusLabel(status) {
  return ALERT_STATUSES[status] || (status ? humanise(status) : "");
}

export function flowStepLabel(step) {
  return FLOW_STEPS[step] || (step ? humanise(step) : "");
}

export function rungLabel(rung) {
  return RUNGS[rung] || (rung ? humanise(rung) : "");
}

export function actionLabel(kind) {
  return ACTIONS[kind] || (kind ? humanise(kind) : "");
}

export function eventLabel(kind) {
  return EVENTS[kind] || (kind ? humanise(kind) : "");
}

// Why a photo check passed or failed (proctor/exam/identity.py).
export const IDENTITY_REASONS = {
  mismatch: "not the same face 不一致",
  no_face: "no face 未检测到人脸",
  several_faces: "several faces 多张人脸",
  face_too_small: "face too small 人脸太小",
  no_registered_photo: "no registered photo 无报名照片",
  unavailable: "check unavailable 自动核验不可用",
  match: "match 一致",
  image_too_large: "picture too large 图片过大",
  bad_image: "unreadable picture 图片无法读取",
};

export function identityReasonLabel(reason) {
  return IDENTITY_REASONS[reason] || (reason ? humanise(reason) : "");
}

/** What an event says beyond its name (the text a candidate typed, a staff note), or "". */
export function eventDetail(kind, data) {
  const d = data || {};
  switch (kind) {
    case "info_problem":
      return `“${d.text || ""}”${d.resolved_at ? ` — resolved 已处理: ${d.note || ""}` : " — open 待处理"}`;
    case "info_problem_resolved":
      return `“${d.text || ""}” — ${d.by_name || ""}: ${d.note || ""}`;
    case "help_request":
      return `“${d.text || ""}”${d.resolved_at ? ` — answered 已处理 ${formatClock(parseTime(d.resolved_at))}: ${d.note || ""}` : " — open 待处理"}`;
    case "help_request_resolved": {
      const raised = parseTime(d.raised_at);
      const how = d.replied ? " (replied by danmaku 弹幕回复)" : "";
      return `“${d.text || ""}”${raised ? ` (raised 求助于 ${formatClock(raised)})` : ""} — ${d.by_name || ""}${how}: ${d.note || ""}`;
    }
    case "identity_admitted":
    case "identity_retry_allowed":
    case "identity_refused":
      return d.reason || "";
    case "identity_check":
      return d.passed ? "passed 通过" : `failed 未通过 (${identityReasonLabel(d.reason)})`;
    case "time_extended": {
      const who = [d.by_name, d.reason].filter(Boolean).join(": ");
      const all = d.whole_sitting ? " (whole sitting 全场)" : "";
      return `+${formatDuration(d.seconds || 0)}${all}${who ? ` — ${who}` : ""}`;
    }
    default:
      return "";
  }
}

/** 75 → "1:15", 3725 → "1:02:05" */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}
