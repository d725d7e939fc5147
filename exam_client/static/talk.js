// Talking back to the invigilator (issue 23), on the exam page from login until the exam
// ends (the waiting room and answering included):
//   - raise a hand (举手求助) with a short message: POST /api/flow/help; the state of the
//     newest one (open, then answered) from GET /api/flow/help and the socket's
//     help_resolved message;
//   - warnings (弹幕警告) stay in a box until the candidate presses "我已知晓 I understand"
//     (POST /api/flow/warnings/{id}/acknowledge); the ones not acknowledged come back
//     after a reload (GET /api/flow/warnings).
//
// Hooks for tests: #help-button, #help-dialog, #help-text, #help-count, #help-send,
// #help-error, #help-status[data-state] (none|open|answered); #warnings (hidden when none),
// #warning-list li.warning[data-id] .warning-text, button.warning-ack.

import { ApiError, call } from './api.js';

const $ = (id) => document.getElementById(id);
const HELP_MAX = 200;

const helpButton = $('help-button');
const helpDialog = $('help-dialog');
const helpText = $('help-text');
const helpCount = $('help-count');
const helpError = $('help-error');
const helpStatus = $('help-status');
const warningsBox = $('warnings');
const warningList = $('warning-list');

let helpId = null;

function showHelpState(item) {
  if (!item) {
    helpStatus.dataset.state = 'none';
    helpStatus.hidden = true;
    helpId = null;
    return;
  }
  helpId = item.id;
  helpStatus.hidden = false;
  if (item.status === 'open') {
    helpStatus.dataset.state = 'open';
    helpStatus.innerHTML =
      '已举手，监考老师已收到 <span class="en">Hand raised: the invigilator has been told</span>';
  } else {
    helpStatus.dataset.state = 'answered';
    helpStatus.innerHTML =
      '监考老师已处理你的求助 <span class="en">The invigilator has answered your raised hand</span>';
  }
}

async function loadHelp() {
  try {
    const rows = await call('/api/flow/help');
    showHelpState(rows[0] || null);
  } catch {
    // shown again at the next socket message or reload
  }
}

function countChars() {
  const n = [...helpText.value].length;
  helpCount.textContent = `${n}/${HELP_MAX}`;
}

helpButton.addEventListener('click', () => {
  helpError.hidden = true;
  countChars();
  if (typeof helpDialog.showModal === 'function') helpDialog.showModal();
  else helpDialog.setAttribute('open', '');
  helpText.focus();
});
$('help-cancel').addEventListener('click', () => helpDialog.close());
helpText.addEventListener('input', countChars);
$('help-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const send = $('help-send');
  send.disabled = true;
  helpError.hidden = true;
  try {
    const item = await call('/api/flow/help', { method: 'POST', json: { text: helpText.value } });
    helpText.value = '';
    helpDialog.close();
    showHelpState(item);
  } catch (error) {
    helpError.textContent = error instanceof ApiError ? error.message : String(error);
    helpError.hidden = false;
    if (error instanceof ApiError && error.code === 'hand_already_raised') loadHelp();
  } finally {
    send.disabled = false;
  }
});

// ------------------------------------------------------------------ warnings

function showWarningsBox() {
  warningsBox.hidden = warningList.children.length === 0;
}

/** A warning the candidate has not acknowledged yet: kept in the box until they do. */
export function holdWarning(message) {
  const id = Number(message.id);
  if (!Number.isFinite(id) || message.acknowledged_at) return;
  if (warningList.querySelector(`li[data-id="${id}"]`)) return;
  const li = document.createElement('li');
  li.className = 'warning';
  li.dataset.id = String(id);
  const text = document.createElement('p');
  text.className = 'warning-text';
  text.textContent = String(message.text ?? '');
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'warning-ack';
  button.innerHTML = '我已知晓 <span class="en">I understand</span>';
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await call(`/api/flow/warnings/${id}/acknowledge`, { method: 'POST' });
      li.remove();
      showWarningsBox();
    } catch (error) {
      button.disabled = false;
      if (error instanceof ApiError && error.status === 404) {
        li.remove();
        showWarningsBox();
      }
    }
  });
  li.append(text, button);
  warningList.append(li);
  showWarningsBox();
}

async function loadWarnings() {
  try {
    for (const row of await call('/api/flow/warnings')) holdWarning(row);
  } catch {
    // again when the socket reconnects
  }
}

/** The candidate socket opened (again): what may have been missed meanwhile. */
export function onSocketOpen() {
  loadWarnings();
  loadHelp();
}

/** A candidate socket message. */
export function onSocketMessage(message) {
  if (message?.type === 'danmaku') holdWarning(message);
  // the server's message bus came back (or this socket fell behind): what was sent
  // meanwhile is in the database, so load it again
  else if (message?.type === 'overflow') onSocketOpen();
  else if (message?.type === 'help_resolved' && message.id === helpId) loadHelp();
}

/** The flow's step: a hand can be raised until the exam ends. */
export function setStep(step, ended) {
  helpButton.hidden = ended || !step;
  if (ended && helpDialog.open) helpDialog.close();
}
