// The exam-room record (考场记录), live: attendance, absentees and late arrivals, violations
// and their handling, incidents (recorded here), time extensions and the supervision log of
// one sitting (one room, or every room of the invigilator). It reloads whenever the console
// socket says something happened; exports as CSV or a printable page (drafts until the
// sitting is over). Opened from the room view: record.html?sitting=N[&room=R].

import { ApiError, apiFetch, clearSession, getToken, onUnauthorized } from "./api.js";
import {
  alertTypeLabel,
  formatDateTime,
  INCIDENT_CATEGORIES,
  parseTime,
  setTimeZone,
  severityLabel,
} from "./labels.js";
import { ReconnectingSocket, socketUrl } from "./socket.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const sittingId = params.get("sitting");
const roomId = params.get("room");
const RELOAD_MS = 1500;

onUnauthorized(() => {
  clearSession();
  window.location.replace("index.html?expired=1");
});

function when(iso) {
  return formatDateTime(parseTime(iso));
}

function who(c) {
  if (!c) return "—";
  return `${c.seat ? `#${c.seat} ` : ""}${c.name} (${c.id_number})`;
}

function cell(value) {
  const td = document.createElement("td");
  if (value instanceof Node) td.append(value);
  else td.textContent = value ?? "";
  return td;
}

function fillTable(table, head, rows, rowAttrs = () => ({})) {
  const thead = document.createElement("thead");
  const tr = document.createElement("tr");
  for (const h of head) {
    const th = document.createElement("th");
    th.textContent = h;
    tr.append(th);
  }
  thead.append(tr);
  const tbody = document.createElement("tbody");
  if (!rows.length) {
    const empty = document.createElement("tr");
    const td = cell("None 无");
    td.colSpan = head.length;
    td.className = "none";
    empty.append(td);
    tbody.append(empty);
  }
  for (const row of rows) {
    const r = document.createElement("tr");
    for (const [k, v] of Object.entries(rowAttrs(row.source))) r.dataset[k] = v;
    for (const value of row.cells) r.append(cell(value));
    tbody.append(r);
  }
  table.replaceChildren(thead, tbody);
}

function evidence(url) {
  if (!url) return "";
  const a = document.createElement("a");
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener";
  const img = document.createElement("img");
  img.src = url;
  img.alt = "Evidence 证据";
  img.loading = "lazy";
  a.append(img);
  return a;
}

function render(rec) {
  const s = rec.sitting;
  const sm = rec.summary;
  setTimeZone(s.time_zone); // the sitting's times with their offset, not the browser's
  document.title = `考场记录 ${s.name} · Proctor`;
  $("record-place").textContent =
    `${s.name} · ${s.kind_title} · ${rec.rooms.map((r) => r.name).join(", ") || "—"}`;
  $("record-draft").hidden = s.over;
  const staff = [...new Set(rec.rooms.flatMap((r) => r.invigilators))];
  const facts = [
    ["Sitting 场次", `${s.name} · ${s.kind_title} ${s.subject || ""}`],
    [
      "Time 时间",
      `${when(s.starts_at)} – ${when(s.ends_at)} (last end 最后结束 ${when(s.last_end)})` +
        (s.time_zone ? ` · time zone 时区 ${s.time_zone} (${s.utc_offset || ""})` : ""),
    ],
    ["Rooms 考场", rec.rooms.map((r) => r.name).join("; ") || "—"],
    ["Invigilators 监考", staff.join("; ") || "—"],
    [
      "Attendance 出勤",
      `expected 应考 ${sm.expected} · present 实考 ${sm.present} · absent 缺考 ${sm.absent} · late 迟到 ${sm.late}`,
    ],
    [
      "Violations 违纪",
      `alerts 告警 ${sm.alerts} (open 未处理 ${sm.open_alerts}) · screenshots 截图 ${sm.violation_records} · ` +
        `warnings 警告 ${sm.warnings ?? 0} · ended 终止考试 ${sm.terminated ?? 0} · ` +
        `incidents 突发事件 ${sm.incidents} · extensions 延时 ${sm.extensions}`,
    ],
    ["Updated 更新", when(rec.generated_at)],
  ];
  $("record-summary").replaceChildren(
    ...facts.flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      return [dt, dd];
    }),
  );

  fillTable(
    $("attendance"),
    ["Seat 座位", "Name 姓名", "ID number 身份证号", "Attendance 出勤", "Arrived 到达", "Late 迟到", "Step 步骤", "Alerts 告警", "Records 违纪记录"],
    rec.attendance.map((a) => ({
      source: a,
      cells: [
        a.seat ?? "",
        a.name,
        a.id_number,
        a.present ? "present 出席" : "absent 缺考",
        when(a.arrived_at),
        a.late ? `${Math.round(a.late_seconds / 60)} min` : "",
        a.step_title || "",
        a.alerts,
        a.violations,
      ],
    })),
    (a) => ({ present: String(a.present), late: String(a.late), candidateId: String(a.id) }),
  );
  fillTable(
    $("violations"),
    ["Time 时间", "Candidate 考生", "What 类型", "Severity 级别", "Status 状态", "Note 说明", "Handling 处理", "Evidence 证据"],
    rec.violations.map((v) => ({
      source: v,
      cells: [
        when(v.at),
        who(v.candidate),
        v.source === "alert" ? alertTypeLabel(v.type) : v.title,
        severityLabel(v.severity),
        v.status,
        v.note || "",
        v.handling.map((h) => `${h.what} · ${h.by || ""} · ${when(h.at)} · ${h.reason}`).join("\n"),
        evidence(v.evidence_url),
      ],
    })),
    (v) => ({ source: v.source, status: v.status }),
  );
  fillTable(
    $("incidents"),
    ["Time 时间", "Room 考场", "Candidate 考生", "Category 类别", "What happened 情况", "By 记录人"],
    rec.incidents.map((i) => ({
      source: i,
      cells: [when(i.at), i.room || "", i.candidate ? who(i.candidate) : "", i.category_title, i.description, i.by || ""],
    })),
  );
  fillTable(
    $("extensions"),
    ["Time 时间", "Candidate 考生", "Extension 延时", "Reason 原因", "By 批准人"],
    rec.extensions.map((e) => ({
      source: e,
      cells: [when(e.at), e.everyone ? "everyone 全体" : who(e.candidate), `+${e.minutes} min`, e.reason, e.by || ""],
    })),
  );
  fillTable(
    $("log"),
    ["Time 时间", "Candidate 考生", "Action 操作", "By 操作人", "Detail 内容"],
    rec.log.map((i) => ({
      source: i,
      cells: [when(i.at), who(i.candidate), i.what, i.by || "", i.reason || ""],
    })),
    (i) => ({ kind: i.kind }),
  );
  const rooms = $("incident-room");
  const chosen = rooms.value;
  rooms.replaceChildren(...rec.rooms.map((r) => new Option(r.name, String(r.id))));
  if (chosen) rooms.value = chosen;
  $("incident-form").hidden = rec.rooms.length === 0;
  const q = new URLSearchParams();
  if (roomId) q.set("room_id", roomId);
  if (!s.over) q.set("draft", "1");
  const base = `/api/console/sittings/${encodeURIComponent(sittingId)}/record`;
  $("export-csv").href = `${base}.csv?${q}`;
  $("export-html").href = `${base}.html?${q}`;
}

let loading = null;
let again = false;
async function load() {
  if (loading) {
    again = true;
    return;
  }
  const q = roomId ? `?room_id=${encodeURIComponent(roomId)}` : "";
  loading = apiFetch(`/api/console/sittings/${encodeURIComponent(sittingId)}/record${q}`)
    .then((rec) => {
      render(rec);
      $("record-error").hidden = true;
    })
    .catch((err) => {
      if (err instanceof ApiError && err.status === 401) return;
      $("record-error").textContent = `Could not load the record 无法加载考场记录: ${err.message}`;
      $("record-error").hidden = false;
    })
    .finally(() => {
      loading = null;
      if (again) {
        again = false;
        load();
      }
    });
}

let reloadTimer = null;
function scheduleLoad() {
  if (reloadTimer) return;
  reloadTimer = window.setTimeout(() => {
    reloadTimer = null;
    load();
  }, RELOAD_MS);
}

$("incident-category").replaceChildren(
  ...Object.entries(INCIDENT_CATEGORIES).map(([k, v]) => new Option(v, k)),
);
$("incident-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("incident-error");
  error.hidden = true;
  try {
    await apiFetch(`/api/console/rooms/${encodeURIComponent($("incident-room").value)}/incidents`, {
      method: "POST",
      body: {
        category: $("incident-category").value,
        description: $("incident-description").value,
      },
    });
    $("incident-description").value = "";
    load();
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
});

if (!sittingId) {
  $("record-error").textContent = "No sitting given (record.html?sitting=N). 未指定场次。";
  $("record-error").hidden = false;
} else {
  load();
  const socket = new ReconnectingSocket(() =>
    socketUrl("/ws/console", {
      sitting_id: sittingId,
      room_id: roomId,
      token: socket.failuresInARow >= 2 ? getToken() : null,
    }),
  );
  socket.addEventListener("state", (e) => {
    $("record-live").dataset.state = e.detail.state;
    $("record-live-text").textContent =
      e.detail.state === "open" ? "Live 实时更新" : e.detail.state === "closed" ? "Offline 已断开" : "Connecting… 连接中";
  });
  socket.addEventListener("open", () => load());
  socket.addEventListener("message", (e) => {
    if (!["health"].includes(e.detail.type)) scheduleLoad();
  });
  socket.start();
}
