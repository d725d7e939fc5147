// The room's handover notes (交接说明, issue 23): e.g. when a second invigilator takes
// over, what the first wants them to know. Shown to every invigilator of the room when
// they open it (GET /api/console/rooms/{id}/handover, newest first); a new one is left with
// POST; the console socket's `action` messages of kind handover_note add it live.
//
// Hooks for tests: #handover-panel, #handover-list li.handover-item[data-id] .handover-text,
// #handover-input, #handover-add, #handover-error.

import { ApiError, apiFetch } from "./api.js";
import { formatClock, formatDateTime, parseTime } from "./labels.js";

const SHOWN = 5;
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export class HandoverPanel {
  constructor() {
    this.panel = $("handover-panel");
    this.list = $("handover-list");
    this.input = $("handover-input");
    this.error = $("handover-error");
    this.button = $("handover-add");
    this.roomId = null;
    this.generation = 0;
    $("handover-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.add();
    });
  }

  /** Show the notes of this room (null: several rooms shown, nothing to hand over). */
  setRoom(roomId) {
    const id = roomId ? String(roomId) : null;
    if (id === this.roomId) return;
    this.roomId = id;
    this.generation += 1;
    this.list.replaceChildren();
    this.error.hidden = true;
    this.panel.hidden = !id;
    if (id) this.load();
  }

  async load() {
    const generation = this.generation;
    try {
      const rows = await apiFetch(`/api/console/rooms/${encodeURIComponent(this.roomId)}/handover`);
      if (generation !== this.generation) return;
      this.list.replaceChildren();
      for (const row of [...rows].reverse()) this.show(row);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
    }
  }

  show(row) {
    if (this.list.querySelector(`li[data-id="${CSS.escape(String(row.id))}"]`)) return;
    const li = el("li", "handover-item");
    li.dataset.id = String(row.id);
    const when = parseTime(row.at);
    const time = el("time", "muted", formatClock(when));
    if (row.at) time.dateTime = row.at;
    time.title = formatDateTime(when);
    li.append(
      time,
      " ",
      el("strong", "handover-author", row.staff_name || ""),
      el("p", "handover-text", row.reason),
    );
    this.list.prepend(li); // newest on top
    while (this.list.children.length > SHOWN) this.list.lastElementChild.remove();
  }

  /** A console socket message. */
  onMessage(msg) {
    const a = msg?.type === "action" ? msg.action : null;
    if (!a || a.kind !== "handover_note" || String(a.room_id) !== this.roomId) return;
    this.show(a);
  }

  async add() {
    if (!this.roomId) return;
    this.button.disabled = true;
    this.error.hidden = true;
    const value = this.input.value;
    try {
      const row = await apiFetch(`/api/console/rooms/${encodeURIComponent(this.roomId)}/handover`, {
        method: "POST",
        body: { text: value },
      });
      this.show(row);
      if (this.input.value === value) this.input.value = ""; // not what was typed meanwhile
    } catch (err) {
      this.error.textContent = err instanceof ApiError ? err.message : "Could not save 保存失败";
      this.error.hidden = false;
    } finally {
      this.button.disabled = false;
    }
  }
}
