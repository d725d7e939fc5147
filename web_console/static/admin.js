// Exam administration (docs/api.md "Administration" and "Invigilation"): sittings, roster
// and question-bank imports with their line-numbered errors, the paper's blueprint, the
// candidates' steps with the invigilator's actions (admit after failed photo checks,
// release a session, give time back), grading, results and device-check reports.
//
// Hooks for tests: #sittings tr[data-sitting-id], #sitting-panel, #import-errors tbody tr,
// #candidates tr[data-candidate-id][data-step], #grading tr[data-answer-id], #results tr,
// #admin-message[data-kind].

import { ApiError, apiFetch, clearSession, getToken, getUser, saveSession, staffLogin } from "./api.js";
import { ROLES, flowStepLabel, roleLabel, sittingKindLabel } from "./labels.js";

const $ = (id) => document.getElementById(id);
let current = null; // the selected sitting

// the roles a new account may have, in the server's words (proctor/auth/roles.py)
for (const [role, words] of Object.entries(ROLES)) {
  const option = document.createElement("option");
  option.value = role;
  option.textContent = words;
  $("new-staff-role").append(option);
}
let refreshTimer = null;

const EXAMPLE_BLUEPRINT = {
  bank: "my-bank",
  sections: [
    { type: "single", count: 10, points: 4 },
    { type: "multiple", count: 5, points: 6 },
    { type: "true_false", count: 10, points: 2 },
    { type: "short", count: 1, points: 10 },
  ],
};

function say(text, kind = "info") {
  const box = $("admin-message");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "—" : String(text);
  row.append(td);
  return td;
}

/** A time in the sitting's time zone (issue 23: not the browser's), with its offset. */
function when(iso, zone) {
  if (!iso) return "—";
  const options = {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
    timeZoneName: "shortOffset",
  };
  try {
    return new Date(iso).toLocaleString("zh-CN", zone ? { ...options, timeZone: zone } : options);
  } catch {
    return new Date(iso).toLocaleString("zh-CN", options);
  }
}

/** datetime-local value (local time) → ISO with the browser's offset */
function isoFromLocal(value) {
  const date = new Date(value);
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0");
  const mm = String(Math.abs(offset) % 60).padStart(2, "0");
  return `${value.length === 16 ? `${value}:00` : value}${sign}${hh}:${mm}`;
}

async function upload(path, form) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form, headers, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "network_error", "Cannot reach the server. 无法连接服务器。");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      body?.error?.code || `http_${response.status}`,
      body?.error?.message || `HTTP ${response.status}`,
    );
    error.details = body?.error;
    throw error;
  }
  return body;
}

function showImportErrors(error) {
  const box = $("import-errors");
  const tbody = box.querySelector("tbody");
  tbody.replaceChildren();
  if (!error?.details?.errors) {
    box.hidden = true;
    return;
  }
  $("import-errors-title").textContent = error.message;
  for (const e of error.details.errors) {
    const tr = document.createElement("tr");
    tr.dataset.line = String(e.line);
    cell(tr, e.line || "file");
    cell(tr, e.field || "");
    cell(tr, e.message);
    tbody.append(tr);
  }
  box.hidden = false;
}

// ------------------------------------------------------------------ login

async function start() {
  if (!getToken()) {
    $("admin-login").hidden = false;
    return;
  }
  try {
    const me = await apiFetch("/api/staff/me");
    $("admin-user").textContent = `${me.display_name} (${me.role})`;
  } catch (error) {
    if (error.status === 401) {
      clearSession();
      $("admin-login").hidden = false;
      return;
    }
  }
  $("admin-login").hidden = true;
  $("admin-main").hidden = false;
  $("admin-logout").hidden = false;
  await loadSittings();
  await loadStaff();
}

$("admin-login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const body = await staffLogin($("admin-username").value.trim(), $("admin-password").value);
    saveSession(body.token, body.user);
    say("");
    await start();
  } catch (error) {
    say(error.message, "error");
  }
});

$("admin-logout").addEventListener("click", async () => {
  await apiFetch("/api/staff/logout", { method: "POST" }).catch(() => {});
  clearSession();
  location.reload();
});

// ------------------------------------------------------------------ sittings

async function loadSittings() {
  let sittings;
  try {
    sittings = await apiFetch("/api/admin/sittings");
  } catch (error) {
    // invigilators may not list sittings here: fall back to the console's list
    if (error.status !== 403) throw error;
    sittings = await apiFetch("/api/console/sittings");
  }
  const tbody = $("sittings").querySelector("tbody");
  tbody.replaceChildren();
  for (const s of sittings) {
    const tr = document.createElement("tr");
    tr.dataset.sittingId = String(s.id);
    tr.dataset.selected = String(current?.id === s.id);
    cell(tr, s.id);
    cell(tr, s.name);
    cell(tr, sittingKindLabel(s.kind));
    cell(tr, s.password ?? "");
    cell(tr, when(s.starts_at, s.time_zone));
    cell(tr, when(s.ends_at, s.time_zone));
    cell(tr, s.registered ?? "");
    cell(
      tr,
      s.paper
        ? `${s.paper.questions} questions 题`
        : s.kind === "device_check"
          ? "not needed 无需试卷"
          : "none yet 尚无",
    );
    const td = document.createElement("td");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "button open-sitting";
    open.textContent = "Open 打开";
    open.addEventListener("click", () => openSitting(s));
    td.append(open);
    tr.append(td);
    tbody.append(tr);
  }
  return sittings;
}

$("sitting-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = event.target.elements;
  let flow = null;
  if (f.flow.value.trim()) {
    try {
      flow = JSON.parse(f.flow.value);
    } catch {
      say("The rules are not valid JSON. 规则不是有效的JSON。", "error");
      return;
    }
  }
  try {
    const s = await apiFetch("/api/admin/sittings", {
      method: "POST",
      body: {
        name: f.name.value,
        kind: f.kind.value,
        password: f.password.value,
        exam: f.exam.value,
        subject: f.subject.value,
        starts_at: isoFromLocal(f.starts_at.value),
        ends_at: isoFromLocal(f.ends_at.value),
        flow,
      },
    });
    say(`Sitting ${s.id} created. 场次已创建。`, "ok");
    await loadSittings();
    await openSitting(s);
  } catch (error) {
    say(error.message, "error");
  }
});

async function openSitting(s) {
  current = s;
  for (const tr of $("sittings").querySelectorAll("tr[data-sitting-id]")) {
    tr.dataset.selected = String(Number(tr.dataset.sittingId) === s.id);
  }
  $("sitting-panel").hidden = false;
  $("sitting-title").textContent = `${s.name} (${sittingKindLabel(s.kind)}) #${s.id}`;
  $("results-csv").href = `/api/admin/sittings/${s.id}/results.csv`;
  $("answers-csv").href = `/api/admin/sittings/${s.id}/answers.csv`;
  const blueprint = s.paper?.blueprint || EXAMPLE_BLUEPRINT;
  $("paper-form").elements.blueprint.value = JSON.stringify(blueprint, null, 1);
  showImportErrors(null);
  await refreshSitting();
}

async function refreshSitting() {
  if (!current) return;
  clearTimeout(refreshTimer);
  try {
    const detail = await apiFetch(`/api/admin/sittings/${current.id}`).catch((e) => {
      if (e.status === 403) return current;
      throw e;
    });
    current = detail;
    renderFacts(detail);
    await Promise.all([
      loadCandidates(),
      loadSeating(),
      loadGrading(),
      loadResults(),
      loadDevices(),
    ]);
  } catch (error) {
    say(error.message, "error");
  }
  refreshTimer = setTimeout(refreshSitting, 10000);
}

/** {"answering": 3, "waiting": 1} → each step in its words with its count (issue 23: no
 * raw codes or "{}" on the page). */
function stepsText(steps) {
  const entries = Object.entries(steps || {}).filter(([, n]) => n);
  if (!entries.length) return "nobody has started yet 尚无考生进入";
  return entries.map(([step, n]) => `${flowStepLabel(step)} ${n}`).join(" · ");
}

const IDENTITY_METHODS = { face: "face 人脸比对", manual: "manual 人工核验" };

function renderFacts(s) {
  const dl = $("sitting-info");
  dl.replaceChildren();
  const facts = [
    ["Password 口令", s.password],
    ["Exam 考试", s.exam],
    ["Starts 开始", when(s.starts_at, s.time_zone)],
    ["Ends 结束", when(s.ends_at, s.time_zone)],
    ["Registered 报名", s.registered],
    ["Steps 进度", stepsText(s.steps)],
    [
      "Paper 试卷",
      s.paper
        ? `${s.paper.questions} questions 题 from 题库 ${s.paper.blueprint.bank}`
        : "none 尚无",
    ],
  ];
  for (const [k, v] of facts) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v ?? "—";
    dl.append(dt, dd);
  }
  const rules = $("rules").querySelector("tbody");
  rules.replaceChildren();
  for (const [k, v] of Object.entries(s.flow || {})) {
    if (k === "pledge_text") continue;
    const tr = document.createElement("tr");
    tr.dataset.rule = k;
    cell(tr, k);
    cell(tr, v === null ? "none" : v);
    rules.append(tr);
  }
}

$("rules-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = event.target.elements.flow;
  let flow;
  try {
    flow = JSON.parse(box.value);
  } catch {
    flow = null;
  }
  if (!flow || typeof flow !== "object" || Array.isArray(flow)) {
    say('The rules must be a JSON object, e.g. {"earliest_submit_minutes": 30}. 规则须为JSON对象。', "error");
    return;
  }
  try {
    await apiFetch(`/api/admin/sittings/${current.id}`, { method: "PATCH", body: { flow } });
    say("Rules saved. 规则已保存。", "ok");
    box.value = "";
    await refreshSitting();
  } catch (error) {
    say(error.message, "error");
  }
});

// ------------------------------------------------------------------ imports and paper

$("roster-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = event.target.elements;
  const form = new FormData();
  if (!f.file.files[0]) return;
  form.append("file", f.file.files[0]);
  if (f.photos.files[0]) form.append("photos", f.photos.files[0]);
  form.append("check_photos", f.check_photos.checked ? "true" : "false");
  say("Importing… 正在导入…");
  try {
    const r = await upload(`/api/admin/sittings/${current.id}/roster`, form);
    showImportErrors(null);
    say(`Roster imported: ${r.added} added, ${r.updated} updated, ${r.photos} photos. 名单已导入。`, "ok");
    await refreshSitting();
  } catch (error) {
    showImportErrors(error);
    say(error.message, "error");
  }
});

$("bank-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = event.target.elements;
  if (!f.file.files[0]) return;
  const form = new FormData();
  form.append("file", f.file.files[0]);
  form.append("bank", f.bank.value);
  try {
    const r = await upload("/api/admin/banks/import", form);
    showImportErrors(null);
    say(`Bank ${r.bank}: ${r.added} added, ${r.updated} updated, ${r.unchanged} unchanged. 题库已导入。`, "ok");
  } catch (error) {
    showImportErrors(error);
    say(error.message, "error");
  }
});

$("paper-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  let blueprint;
  try {
    blueprint = JSON.parse(event.target.elements.blueprint.value);
  } catch {
    say("The blueprint is not valid JSON. 组卷规则不是有效的JSON。", "error");
    return;
  }
  try {
    const paper = await apiFetch(`/api/admin/sittings/${current.id}/paper`, { method: "PUT", body: blueprint });
    $("paper-summary").textContent = `${paper.questions.length} questions, ${paper.total_points} points`;
    say("Paper assembled. 组卷完成。", "ok");
    await refreshSitting();
  } catch (error) {
    say(error.message, "error");
  }
});

// ------------------------------------------------------------------ candidates

async function act(path, body, done) {
  try {
    await apiFetch(path, { method: "POST", body });
    say(done, "ok");
    await refreshSitting();
  } catch (error) {
    say(error.message, "error");
  }
}

function actionButton(label, handler) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "button";
  b.textContent = label;
  b.addEventListener("click", handler);
  return b;
}

async function loadCandidates() {
  const rows = await apiFetch(`/api/invigilate/candidates?sitting_id=${current.id}`);
  const tbody = $("candidates").querySelector("tbody");
  tbody.replaceChildren();
  const who = $("extend-form").elements.who;
  const chosen = who.value;
  who.replaceChildren(new Option("the whole sitting 全场", "all"));
  for (const c of rows) {
    who.append(new Option(`${c.name} ${c.id_number}`, String(c.candidate_id)));
    const tr = document.createElement("tr");
    tr.dataset.candidateId = String(c.candidate_id);
    tr.dataset.step = c.step;
    cell(tr, c.name);
    cell(tr, c.id_number);
    cell(tr, c.step_title || flowStepLabel(c.step));
    const id = cell(
      tr,
      c.identity
        ? c.identity.passed
          ? `passed 已通过 (${IDENTITY_METHODS[c.identity.method] || "—"})`
          : `${c.identity.failures}/${c.identity.max_failures} failed 未通过`
        : "",
    );
    id.dataset.needs = String(Boolean(c.identity?.needs_invigilator));
    cell(
      tr,
      c.phone
        ? c.phone.connected
          ? "streaming 传输中"
          : c.phone.paired
            ? "paired 已配对"
            : "not paired 未配对"
        : "",
    );
    cell(tr, c.progress ? `${c.progress.answered}/${c.progress.total}` : "");
    cell(tr, c.timing && c.step === "answering" ? `${Math.round(c.timing.seconds_left / 60)} min` : "");
    const actions = document.createElement("td");
    actions.className = "actions-cell";
    if (c.identity?.needs_invigilator) {
      const reason = document.createElement("input");
      reason.className = "admit-reason";
      reason.placeholder = "reason 原因 (e.g. ID card checked)";
      actions.append(
        reason,
        actionButton("Admit 人工核验通过", () =>
          act(`/api/invigilate/candidates/${c.candidate_id}/admit`, { reason: reason.value },
            `${c.name} admitted. 已人工核验通过。`)),
        actionButton("Let retry 允许重拍", () =>
          act(`/api/invigilate/candidates/${c.candidate_id}/identity-retry`,
            { reason: reason.value || "retry" }, `${c.name} may retry. 允许重新核验。`)),
      );
    }
    if (c.step !== "absent") {
      actions.append(actionButton("Release login 解除登录", () =>
        act(`/api/invigilate/candidates/${c.candidate_id}/release`, undefined,
          `${c.name} may log in on another device. 已解除登录。`)));
    }
    tr.append(actions);
    tbody.append(tr);
  }
  if ([...who.options].some((o) => o.value === chosen)) who.value = chosen;
}

$("refresh-candidates").addEventListener("click", refreshSitting);

$("extend-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = event.target.elements;
  await act(
    "/api/invigilate/extensions",
    {
      sitting_id: current.id,
      candidate_ids: f.who.value === "all" ? null : [Number(f.who.value)],
      minutes: Number(f.minutes.value),
      reason: f.reason.value,
    },
    "Time extended. 已顺延。",
  );
});

// ------------------------------------------------------------------ rooms and seating
// Issue 23 item 4: imported candidates are in no room, so no invigilator sees them until
// they are seated. Automatic seating only seats the unseated (in new rooms): nobody already
// seated moves, and no attempt is touched.

let seatingShown = ""; // what the tables show: not redrawn (losing a half-made choice) if same


async function seatingAction(method, path, body, done) {
  try {
    await apiFetch(path, { method, body });
    say(done, "ok");
    seatingShown = "";
    await refreshSitting();
  } catch (error) {
    say(error.message, "error");
  }
}

async function loadSeating() {
  let roster;
  let rooms;
  let staff;
  try {
    [roster, rooms, staff] = await Promise.all([
      apiFetch(`/api/admin/sittings/${current.id}/candidates`),
      apiFetch(`/api/console/rooms?sitting_id=${current.id}`),
      apiFetch("/api/console/staff?role=invigilator"),
    ]);
  } catch (error) {
    if (error.status !== 403) throw error;
    return; // not a manager: the section stays empty
  }
  const shown = JSON.stringify([roster, rooms, staff]);
  if (shown === seatingShown) return;
  seatingShown = shown;
  const unseated = roster.filter((c) => !c.room);
  const warning = $("unseated-warning");
  warning.hidden = unseated.length === 0;
  warning.dataset.count = String(unseated.length);
  warning.textContent =
    unseated.length === 1
      ? "1 candidate is not in any room — invigilators cannot see them. 1名考生未安排考场，监考老师看不到。"
      : `${unseated.length} candidates are not in any room — invigilators cannot see them. ` +
        `${unseated.length}名考生未安排考场，监考老师看不到。`;
  $("seat-auto").hidden = unseated.length === 0;

  const byRoom = new Map(rooms.map((r) => [r.id, []]));
  for (const c of roster) if (c.room && byRoom.has(c.room.id)) byRoom.get(c.room.id).push(c);
  const tbody = $("rooms").querySelector("tbody");
  tbody.replaceChildren();
  for (const r of rooms) {
    const tr = document.createElement("tr");
    tr.dataset.roomId = String(r.id);
    tr.dataset.understaffed = String(r.understaffed);
    cell(tr, r.name);
    cell(tr, `${r.seated} / ${r.capacity}`);
    cell(tr, byRoom.get(r.id).map((c) => `${c.room.seat}. ${c.name}`).join(", ") || "—");
    const td = document.createElement("td");
    const tools = document.createElement("div"); // a flex box inside: the cell stays a cell
    tools.className = "actions-cell";
    td.append(tools);
    const pick = document.createElement("select");
    pick.multiple = true;
    pick.className = "room-staff";
    pick.size = Math.min(4, Math.max(2, staff.length));
    const mine = new Set(r.invigilators.map((i) => i.id));
    for (const u of staff) {
      const option = new Option(`${u.display_name} (${u.username})`, String(u.id));
      option.selected = mine.has(u.id);
      pick.append(option);
    }
    const needed = document.createElement("span");
    needed.className = "muted";
    needed.textContent = r.understaffed
      ? `needs ${r.invigilators_required} 需${r.invigilators_required}名`
      : "";
    tools.append(
      pick,
      actionButton("Save invigilators 保存监考安排", () =>
        seatingAction(
          "PUT",
          `/api/console/rooms/${r.id}/invigilators`,
          { staff_ids: [...pick.selectedOptions].map((o) => Number(o.value)) },
          `${r.name}: invigilators saved. 监考安排已保存。`,
        )),
      needed,
    );
    tr.append(td);
    tbody.append(tr);
  }

  const seating = $("seating").querySelector("tbody");
  seating.replaceChildren();
  for (const c of [...unseated, ...roster.filter((x) => x.room)]) {
    const tr = document.createElement("tr");
    tr.dataset.candidateId = String(c.id);
    tr.dataset.seated = String(Boolean(c.room));
    cell(tr, c.name);
    cell(tr, c.id_number);
    cell(tr, c.step ? flowStepLabel(c.step) : "not logged in 未登录");
    const where = cell(tr, c.room ? `${c.room.name}, seat ${c.room.seat} 座` : "no room 未安排");
    where.dataset.needs = String(!c.room);
    const td = document.createElement("td");
    const tools = document.createElement("div"); // a flex box inside: the cell stays a cell
    tools.className = "actions-cell";
    td.append(tools);
    const to = document.createElement("select");
    to.className = "move-room";
    for (const r of rooms) {
      if (r.id !== c.room?.id) to.append(new Option(r.name, String(r.id)));
    }
    if (to.options.length) {
      tools.append(
        to,
        actionButton(c.room ? "Move 调座" : "Seat 安排", () =>
          seatingAction(
            "POST",
            `/api/console/rooms/${to.value}/candidates`,
            { candidate_ids: [c.id] },
            `${c.name}: seated. 已安排考场。`,
          )),
      );
    }
    tr.append(td);
    seating.append(tr);
  }
}

$("seat-auto").addEventListener("click", () =>
  seatingAction(
    "POST",
    `/api/console/sittings/${current.id}/rooms/auto`,
    { invigilator_ids: [] },
    "The unseated candidates are seated in new rooms; assign their invigilators below. " +
      "未入座考生已安排到新考场，请在下方安排监考老师。",
  ));

$("room-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const f = event.target.elements;
  seatingAction(
    "POST",
    "/api/console/rooms",
    {
      sitting_id: current.id,
      name: f.name.value,
      capacity: Number(f.capacity.value),
      invigilators_required: Number(f.invigilators_required.value),
    },
    `Room ${f.name.value.trim()} created. 考场已创建。`,
  );
});

// ------------------------------------------------------------------ staff accounts

async function loadStaff() {
  let staff = [];
  try {
    staff = await apiFetch("/api/console/staff");
  } catch (error) {
    if (error.status !== 403) throw error;
    $("staff-panel").hidden = true;
    return;
  }
  const tbody = $("staff").querySelector("tbody");
  tbody.replaceChildren();
  for (const u of staff) {
    const tr = document.createElement("tr");
    tr.dataset.username = u.username;
    cell(tr, u.display_name);
    cell(tr, u.username);
    cell(tr, roleLabel(u.role));
    tbody.append(tr);
  }
}

$("staff-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = event.target.elements;
  try {
    const made = await apiFetch("/api/admin/staff", {
      method: "POST",
      body: {
        display_name: f.display_name.value.trim(),
        username: f.username.value.trim(),
        password: f.password.value,
        role: f.role.value,
      },
    });
    say(`Account ${made.username} created (${roleLabel(made.role)}). 账号已创建。`, "ok");
    f.password.value = "";
    await loadStaff();
    seatingShown = "";
    if (current) await refreshSitting();
  } catch (error) {
    say(error.message, "error");
  }
});

// ------------------------------------------------------------------ grading, results

async function loadGrading() {
  const tbody = $("grading").querySelector("tbody");
  let queue = [];
  try {
    queue = await apiFetch(`/api/admin/sittings/${current.id}/grading`);
  } catch (error) {
    if (error.status !== 403) throw error;
  }
  tbody.replaceChildren();
  for (const item of queue) {
    const tr = document.createElement("tr");
    tr.dataset.answerId = String(item.answer_id);
    cell(tr, item.stem);
    cell(tr, item.reference);
    cell(tr, item.answer);
    const td = document.createElement("td");
    td.className = "actions-cell";
    const points = document.createElement("input");
    points.type = "number";
    points.min = "0";
    points.max = String(item.max_points);
    points.step = "0.5";
    points.className = "grade-points";
    points.style.width = "5rem";
    td.append(points, ` / ${item.max_points} `, actionButton("Save 保存", async () => {
      try {
        await apiFetch(`/api/admin/answers/${item.answer_id}/grade`, {
          method: "POST",
          body: { points: Number(points.value), note: "" },
        });
        say("Graded. 已评分。", "ok");
        await refreshSitting();
      } catch (error) {
        say(error.message, "error");
      }
    }));
    tr.append(td);
    tbody.append(tr);
  }
}

async function loadResults() {
  const tbody = $("results").querySelector("tbody");
  let rows = [];
  try {
    rows = await apiFetch(`/api/admin/sittings/${current.id}/results`);
  } catch (error) {
    if (error.status !== 403) throw error;
  }
  tbody.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.candidateId = String(r.candidate_id);
    cell(tr, r.name);
    cell(tr, r.id_number);
    cell(tr, flowStepLabel(r.step));
    cell(tr, IDENTITY_METHODS[r.identity] || r.identity);
    cell(tr, r.objective_score);
    cell(tr, r.grading_pending ? "pending 待评" : r.total_score);
    cell(tr, r.passed === null ? "—" : r.passed ? "yes 合格" : "no 不合格");
    tbody.append(tr);
  }
}

async function loadDevices() {
  const tbody = $("device-reports").querySelector("tbody");
  let rows = [];
  if (current.kind === "device_check") {
    try {
      rows = await apiFetch(`/api/admin/sittings/${current.id}/device-reports`);
    } catch (error) {
      if (error.status !== 403) throw error;
    }
  }
  tbody.replaceChildren();
  const mark = (ok) => (ok ? "✓" : "✗");
  for (const r of rows) {
    const tr = document.createElement("tr");
    cell(tr, r.name);
    cell(tr, mark(r.camera_ok));
    cell(tr, `${mark(r.microphone_ok)} ${r.details?.microphone?.level ?? ""}`);
    cell(tr, mark(r.phone_ok));
    cell(tr, `${mark(r.upload_ok)} ${(r.upload_bytes_per_s / 1e6).toFixed(2)} MB/s`);
    cell(tr, mark(r.passed));
    cell(tr, when(r.created_at));
    tbody.append(tr);
  }
}

const user = getUser();
if (user) $("admin-user").textContent = `${user.display_name} (${user.role})`;
start().catch((error) => say(error.message, "error"));
