// The paper (step 7): questions in this candidate's order, every answer saved when it is
// given. A save is "saved" only once the server acknowledged it (it answers after the
// commit); until then it stays queued, in localStorage too, and is sent again after a
// network drop or a reload. Each question carries a counter (seq) so that an older save
// arriving late never overwrites a newer one.
//
// Hooks for tests: #paper article.question[data-question-id][data-type][data-save]
// (none|pending|saved|error), its inputs, #save-status[data-state] (saved|saving|offline),
// #question-nav li[data-answered][data-flagged][data-flag-save] (pending while a flag
// change is on its way), article .flag-button[aria-pressed].
//
// A question can be flagged for review (标记, issue 23): shown in the navigator and counted
// before the hand-in; kept on the server with the attempt (PUT /api/flow/flags/{id}), so a
// reload or another computer shows the same flags.

import { ApiError, call } from './api.js';

const TYPE_TEXT = {
  single: ['单选题', 'single choice'],
  multiple: ['多选题', 'multiple choice'],
  true_false: ['判断题', 'true or false'],
  short: ['简答题', 'short answer'],
};
const LETTERS = 'ABCDEFGH';
const STOP_CODES = new Set([
  'time_over', 'already_submitted', 'wrong_step', 'not_authenticated',
  'exam_paused', 'exam_terminated',
]);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function answered(value) {
  return !(value === null || value === undefined || value === '' ||
    (Array.isArray(value) && value.length === 0));
}

export class PaperView {
  /**
   * @param {object} o
   * @param {HTMLElement} o.container   #paper
   * @param {HTMLElement} o.nav         #question-nav
   * @param {HTMLElement} o.status      #save-status
   * @param {HTMLElement} o.progress    #progress
   * @param {number} o.candidateId
   * @param {(error: ApiError) => void} o.onStop  the server refuses answers (time over...)
   * @param {(count: number) => void} [o.onFlags]  the number of flagged questions changed
   */
  constructor({ container, nav, status, progress, candidateId, onStop, onFlags }) {
    this.container = container;
    this.nav = nav;
    this.status = status;
    this.progress = progress;
    this.onStop = onStop;
    this.onFlags = onFlags || (() => {});
    this.flagged = new Set(); // question ids flagged for review
    this.flagKey = `proctor.flags.${candidateId}`;
    this.flagChain = Promise.resolve(); // flag changes go to the server one after another
    this.storageKey = `proctor.pending.${candidateId}`;
    this.questions = [];
    this.values = new Map(); // question id → value shown
    this.seqs = new Map(); // question id → newest counter used or acknowledged
    this.pending = new Map(); // question id → {value, seq} not yet acknowledged
    this.locked = false;
    this.flushing = false;
    this.retryDelay = 1000;
    this.timers = new Map();
    this.loaded = false;
  }

  async load() {
    const body = await call('/api/flow/paper');
    this.questions = body.questions;
    this.flagged = new Set((body.flagged || []).map(Number));
    // flag changes this page made that the server may not have had (a reload on the way)
    const unsent = this.readFlags();
    for (const [id, on] of Object.entries(unsent)) {
      const qid = Number(id);
      if (!this.questions.some((q) => q.id === qid)) continue;
      if (on) this.flagged.add(qid);
      else this.flagged.delete(qid);
      this.sendFlag(qid, on);
    }
    for (const [id, saved] of Object.entries(body.answers || {})) {
      this.values.set(Number(id), saved.value);
      this.seqs.set(Number(id), saved.seq);
    }
    // saves this page made that the server may not have had: send them again
    for (const [id, item] of Object.entries(this.readStored())) {
      const qid = Number(id);
      if (!this.questions.some((q) => q.id === qid)) continue;
      if (item.seq > (this.seqs.get(qid) || 0)) {
        this.pending.set(qid, item);
        this.values.set(qid, item.value);
        this.seqs.set(qid, item.seq);
      }
    }
    this.render();
    this.loaded = true;
    this.flush();
    window.addEventListener('online', () => this.flush());
  }

  readStored() {
    try {
      return JSON.parse(localStorage.getItem(this.storageKey) || '{}') || {};
    } catch {
      return {};
    }
  }

  store() {
    try {
      const out = {};
      for (const [id, item] of this.pending) out[id] = item;
      if (this.pending.size) localStorage.setItem(this.storageKey, JSON.stringify(out));
      else localStorage.removeItem(this.storageKey);
    } catch {
      // storage full or disabled: the in-memory queue still retries
    }
  }

  // ---------------------------------------------------------------- rendering

  render() {
    this.container.replaceChildren();
    this.nav.replaceChildren();
    for (const q of this.questions) {
      this.container.append(this.renderQuestion(q));
      const item = el(
        'li',
        {
          dataset: {
            q: String(q.id),
            answered: String(answered(this.values.get(q.id))),
            flagged: String(this.flagged.has(q.id)),
          },
        },
        el('a', { href: `#q-${q.id}`, textContent: String(q.number) }),
      );
      this.nav.append(item);
    }
    this.updateProgress();
    this.updateStatus();
    this.onFlags(this.flagged.size);
  }

  flagButton(q) {
    const button = el('button', { type: 'button', className: 'flag-button secondary' });
    const show = () => {
      const on = this.flagged.has(q.id);
      button.setAttribute('aria-pressed', String(on));
      button.textContent = on ? '已标记 ⚑ Flagged' : '标记 ⚐ Flag for review';
      button.title = on ? '取消标记 Remove the flag' : '标记此题，交卷前再检查 Flag to check it before handing in';
    };
    show();
    button.addEventListener('click', () => this.toggleFlag(q, show));
    return button;
  }

  readFlags() {
    try {
      return JSON.parse(localStorage.getItem(this.flagKey) || '{}') || {};
    } catch {
      return {};
    }
  }

  storeFlag(qid, on) {
    try {
      const unsent = this.readFlags();
      if (on === null) delete unsent[qid];
      else unsent[qid] = on;
      if (Object.keys(unsent).length) localStorage.setItem(this.flagKey, JSON.stringify(unsent));
      else localStorage.removeItem(this.flagKey);
    } catch {
      // storage disabled: the change is still sent
    }
  }

  /** Send one flag change (after those before it); kept in localStorage until the server
   *  acknowledged it, so a reload on the way sends it again. */
  sendFlag(qid, on) {
    this.storeFlag(qid, on);
    const item = () => this.nav.querySelector(`li[data-q="${qid}"]`);
    if (item()) item().dataset.flagSave = 'pending';
    this.flagChain = this.flagChain.then(async () => {
      try {
        await call(`/api/flow/flags/${qid}`, { method: 'PUT', json: { flagged: on } });
        if (this.readFlags()[qid] === on) this.storeFlag(qid, null);
      } catch (error) {
        if (error instanceof ApiError && STOP_CODES.has(error.code)) {
          this.storeFlag(qid, null);
          this.lock();
          this.onStop(error);
        } else if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
          this.storeFlag(qid, null); // never taken (e.g. not on this paper)
        }
        // a network failure: kept in localStorage, sent again with the next load
      } finally {
        if (item() && !(qid in this.readFlags())) delete item().dataset.flagSave;
      }
    });
    return this.flagChain;
  }

  toggleFlag(q, show) {
    if (this.locked) return;
    const on = !this.flagged.has(q.id);
    if (on) this.flagged.add(q.id);
    else this.flagged.delete(q.id);
    show();
    const item = this.nav.querySelector(`li[data-q="${q.id}"]`);
    if (item) item.dataset.flagged = String(on);
    this.onFlags(this.flagged.size);
    this.sendFlag(q.id, on);
  }

  renderQuestion(q) {
    const [zh, en] = TYPE_TEXT[q.type] || [q.type, ''];
    const article = el('article', {
      className: 'question',
      id: `q-${q.id}`,
      dataset: { questionId: String(q.id), type: q.type, save: this.pending.has(q.id) ? 'pending' : (answered(this.values.get(q.id)) ? 'saved' : 'none') },
    });
    article.append(
      el(
        'h3',
        {},
        el('span', { className: 'number', textContent: `${q.number}.` }),
        el('span', { className: 'qtype', textContent: `[${zh} · ${en}]` }),
        el('span', { className: 'stem', textContent: q.stem }),
        el('span', { className: 'points', textContent: `（${q.points}分 · ${q.points} pts）` }),
        this.flagButton(q),
      ),
    );
    const value = this.values.get(q.id);
    const name = `q${q.id}`;
    const body = el('div', { className: 'answer' });
    if (q.type === 'single' || q.type === 'multiple') {
      q.options.forEach((option, i) => {
        const input = el('input', {
          type: q.type === 'single' ? 'radio' : 'checkbox',
          name,
          value: option.key,
        });
        input.checked = q.type === 'single' ? value === option.key
          : Array.isArray(value) && value.includes(option.key);
        input.addEventListener('change', () => this.changed(q));
        body.append(
          el('label', { className: 'option' }, input,
            el('span', { className: 'letter', textContent: LETTERS[i] }),
            el('span', { className: 'text', textContent: option.text })),
        );
      });
    } else if (q.type === 'true_false') {
      for (const [v, label] of [['true', '对 ✓ True'], ['false', '错 ✗ False']]) {
        const input = el('input', { type: 'radio', name, value: v });
        input.checked = value === (v === 'true');
        input.addEventListener('change', () => this.changed(q));
        body.append(el('label', { className: 'option' }, input,
          el('span', { className: 'text', textContent: label })));
      }
    } else {
      const area = el('textarea', { name, rows: 5, maxLength: 5000 });
      area.value = typeof value === 'string' ? value : '';
      area.addEventListener('input', () => {
        clearTimeout(this.timers.get(q.id));
        this.timers.set(q.id, setTimeout(() => this.changed(q), 800));
      });
      area.addEventListener('blur', () => {
        clearTimeout(this.timers.get(q.id));
        this.changed(q);
      });
      body.append(area);
    }
    article.append(body);
    return article;
  }

  readValue(q) {
    const article = this.container.querySelector(`article[data-question-id="${q.id}"]`);
    if (q.type === 'single') {
      return article.querySelector('input:checked')?.value ?? null;
    }
    if (q.type === 'multiple') {
      const keys = [...article.querySelectorAll('input:checked')].map((i) => i.value);
      return keys.length ? keys.sort() : null;
    }
    if (q.type === 'true_false') {
      const v = article.querySelector('input:checked')?.value;
      return v === undefined ? null : v === 'true';
    }
    const text = article.querySelector('textarea').value;
    return text.trim() ? text : null;
  }

  // ---------------------------------------------------------------- saving

  changed(q) {
    if (this.locked) return;
    const value = this.readValue(q);
    if (JSON.stringify(value) === JSON.stringify(this.values.get(q.id) ?? null) &&
        !this.pending.has(q.id)) return;
    const seq = (this.seqs.get(q.id) || 0) + 1;
    this.seqs.set(q.id, seq);
    this.values.set(q.id, value);
    this.pending.set(q.id, { value, seq });
    this.store();
    this.mark(q.id, 'pending');
    this.updateProgress();
    this.flush();
  }

  mark(qid, state) {
    const article = this.container.querySelector(`article[data-question-id="${qid}"]`);
    if (article) article.dataset.save = state;
    const item = this.nav.querySelector(`li[data-q="${qid}"]`);
    if (item) item.dataset.answered = String(answered(this.values.get(qid)));
  }

  updateProgress() {
    const done = this.questions.filter((q) => answered(this.values.get(q.id))).length;
    this.progress.textContent = `已答 ${done} / ${this.questions.length} · answered`;
  }

  updateStatus(offline = false) {
    let state = 'saved';
    let text = '所有答案已保存 <span class="en">All answers saved</span>';
    if (this.pending.size && offline) {
      state = 'offline';
      text = `${this.pending.size} 个答案尚未保存，网络恢复后自动保存 <span class="en">${this.pending.size} answer(s) not saved yet: they are sent when the network is back</span>`;
    } else if (this.pending.size) {
      state = 'saving';
      text = '正在保存… <span class="en">Saving…</span>';
    }
    this.status.dataset.state = state;
    this.status.innerHTML = text;
  }

  get allSaved() {
    return this.pending.size === 0;
  }

  async flush() {
    if (this.flushing || this.locked) return;
    this.flushing = true;
    try {
      while (this.pending.size && !this.locked) {
        const [qid, item] = this.pending.entries().next().value;
        this.updateStatus();
        let saved;
        try {
          saved = await call(`/api/flow/answers/${qid}`, {
            method: 'PUT',
            json: { value: item.value, seq: item.seq },
          });
        } catch (error) {
          if (error instanceof ApiError && STOP_CODES.has(error.code)) {
            this.lock();
            this.onStop(error);
            return;
          }
          if (error instanceof ApiError && error.status >= 400 && error.status < 500 &&
              error.status !== 408 && error.status !== 429) {
            // this answer will never be taken (e.g. bad_answer): drop it, say so
            if (this.pending.get(qid) === item) this.pending.delete(qid);
            this.store();
            this.mark(qid, 'error');
            continue;
          }
          this.updateStatus(true);
          const delay = this.retryDelay;
          this.retryDelay = Math.min(this.retryDelay * 2, 10000);
          setTimeout(() => {
            this.flushing = false;
            this.flush();
          }, delay);
          return;
        }
        this.retryDelay = 1000;
        if (saved.seq > (this.seqs.get(qid) || 0)) this.seqs.set(qid, saved.seq);
        const current = this.pending.get(qid);
        if (current && current.seq <= saved.seq) {
          this.pending.delete(qid);
          this.store();
          this.mark(qid, 'saved');
        }
      }
      this.updateStatus();
    } finally {
      if (this.flushing) this.flushing = false;
    }
  }

  lock() {
    this.locked = true;
    for (const input of this.container.querySelectorAll('input, textarea, .flag-button')) {
      input.disabled = true;
    }
  }

  /** Answers are taken again (the invigilator resumed the exam): send what waited. */
  unlock() {
    if (!this.locked) return;
    this.locked = false;
    for (const input of this.container.querySelectorAll('input, textarea, .flag-button')) {
      input.disabled = false;
    }
    this.flush();
  }
}
