// The candidate's exam page: the flow after login, step by step as the server's state
// machine says (GET /api/flow/state; one section per step), camera + microphone sent to
// the server as the first view (rtc.js) from the photo check until handing in, and the
// invigilator's on-screen warnings (danmaku) from WS /ws/candidate, each acknowledged once
// shown.
//
// Hooks for tests: main#flow[data-step], section#step-<step>, #steps li[data-step]
// [data-state] (done|current|todo), #stream-status[data-state] (idle|requesting|
// connecting|streaming|reconnecting|denied|error|ended), #ws-status[data-state] (connecting|
// open|closed), #danmaku-layer > .danmaku[data-id], #danmaku-log, #paper (paper.js),
// #identity-result[data-result], #phone-status[data-state], #countdown[data-seconds],
// #time-left, #submit-hint, #device-results (device.js).

import { ApiError, call, iceServersSource } from './api.js';
import { runDeviceCheck, formatRate, micScale, showReport } from './device.js';
import { PaperView } from './paper.js';
import { startStream } from './rtc.js';
import './console_link.js'; // the invigilator console's hints and voice calls (issue 5)
import * as talk from './talk.js'; // raise a hand; warnings kept until acknowledged (issue 23)
import { ENDED_STEPS as ENDED, STEP_NAMES } from './tables.js'; // proctor/invigilation/labels.py

const TOKEN_KEY = 'proctor.candidate.token'; // written by login.js
const DEFAULT_MEDIA = { width: 640, height: 480, fps: 10, ice_servers: [] };
const VIDEO_MAX_BITRATE = 600_000;

const $ = (id) => document.getElementById(id);
const statusEl = $('stream-status');
const wsStatusEl = $('ws-status');
const selfView = $('self-view');
const helpBox = $('media-help');
const helpText = $('media-help-text');
const retryButton = $('retry-media');
const layer = $('danmaku-layer');
const danmakuLog = $('danmaku-log');

function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}
const token = readToken();

function goToLogin() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // ignore
  }
  location.replace('index.html');
}

// ------------------------------------------------------------------ status line

const STATUS_TEXT = {
  idle: ['未开始', 'Not started'],
  requesting: [
    '正在请求摄像头和麦克风权限，请在浏览器弹出的提示中点击“允许”',
    'Asking for your camera and microphone: click “Allow” in the browser prompt',
  ],
  connecting: ['正在连接监考服务器…', 'Connecting to the proctoring server…'],
  streaming: ['监控中：摄像头和麦克风已连接', 'Streaming: camera and microphone connected'],
  reconnecting: ['连接中断，正在重新连接…', 'Connection lost — reconnecting…'],
  denied: ['摄像头或麦克风未被允许', 'Camera or microphone blocked'],
  error: ['出现问题', 'Something went wrong'],
  ended: ['考试已结束，摄像头已关闭', 'The exam is over: camera and microphone are off'],
  // a device check is not an exam: it ends as a check (issue 23)
  checked: ['设备检测已结束，摄像头已关闭', 'Device check over: camera and microphone are off'],
};

const DENIED_HELP =
  '考试全程必须开启摄像头和麦克风。请点击浏览器地址栏左侧的摄像头或锁形图标，' +
  '将“摄像头”和“麦克风”设为“允许”，然后点击“重试”。\n' +
  '如果仍然不行，请检查系统设置是否允许浏览器使用摄像头' +
  '（Windows：设置 › 隐私和安全性 › 相机 / 麦克风；macOS：系统设置 › 隐私与安全性 › 摄像头 / 麦克风）。\n' +
  'The camera and microphone must stay on for the whole exam. Click the camera or lock ' +
  'icon at the left of the address bar, set Camera and Microphone to “Allow”, then press ' +
  'Retry. If that does not help, allow the browser in your system privacy settings ' +
  '(Windows: Settings › Privacy & security › Camera / Microphone; macOS: System Settings › ' +
  'Privacy & Security › Camera / Microphone).';

function setStatus(state, detail = '') {
  statusEl.dataset.state = state;
  const [zh, en] = STATUS_TEXT[state] || STATUS_TEXT.error;
  statusEl.querySelector('.zh').textContent = zh;
  statusEl.querySelector('.en').textContent = en;
  statusEl.title = detail || '';
  const showHelp = state === 'denied' || state === 'error';
  helpBox.hidden = !showHelp;
  helpText.textContent = state === 'denied' ? DENIED_HELP : detail;
}

function setWsStatus(state) {
  wsStatusEl.dataset.state = state;
}

// ------------------------------------------------------------------ server calls

function authHeaders() {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

async function fetchMe() {
  for (let delay = 1000; ; delay = Math.min(delay * 2, 15000)) {
    let response;
    try {
      response = await fetch('/api/candidate/me', {
        headers: authHeaders(),
        credentials: 'same-origin',
      });
    } catch {
      setStatus('error', '无法连接考试服务器，正在重试… Cannot reach the exam server; retrying…');
      await new Promise((resolve) => setTimeout(resolve, delay));
      continue;
    }
    if (response.status === 401) {
      goToLogin();
      return null;
    }
    const body = await response.json().catch(() => null);
    if (response.ok && body) return body;
    const message = body?.error?.message || `HTTP ${response.status}`;
    setStatus('error', message);
    if (response.status < 500) return null;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function maskId(idNumber) {
  const s = String(idNumber || '');
  return s.length > 8 ? `${s.slice(0, 4)}${'*'.repeat(s.length - 8)}${s.slice(-4)}` : s;
}

const KIND_TEXT = { device_check: '设备调试', trial: '试考', formal: '正式考试' };

function showProfile(me) {
  $('candidate-name').textContent = me.candidate?.name || '';
  $('candidate-id-number').textContent = maskId(me.candidate?.id_number);
  const sitting = me.sitting || {};
  const kind = KIND_TEXT[sitting.kind] ? `（${KIND_TEXT[sitting.kind]}）` : '';
  $('sitting-name').textContent = `${sitting.name || ''}${kind}`;
}

// ------------------------------------------------------------------ camera + WebRTC

let media = DEFAULT_MEDIA;
let localStream = null;
let controller = null;

function mediaErrorMessage(error) {
  switch (error?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
    case 'PermissionDeniedError':
      return null; // → 'denied' with the how-to
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return '没有找到摄像头或麦克风，请连接后点击“重试”。 No camera or microphone found: connect one and press Retry.';
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return '摄像头或麦克风正被其他程序使用，请关闭其他程序（如会议软件）后点击“重试”。 The camera or microphone is in use by another program: close it (e.g. a meeting app) and press Retry.';
    default:
      return `无法打开摄像头或麦克风（${error?.name || error}）。 Cannot open the camera or microphone (${error?.message || error}).`;
  }
}

function stopMedia() {
  if (controller) {
    controller.stop();
    controller = null;
  }
  if (localStream) {
    for (const track of localStream.getTracks()) track.stop();
    localStream = null;
  }
  selfView.srcObject = null;
}

function onStreamState(state, detail = {}) {
  if (state === 'error' && detail.code === 'not_authenticated') {
    goToLogin();
    return;
  }
  if (state === 'idle') return; // our own stop()
  const text = detail.message ? `${detail.message}` : '';
  setStatus(state, text);
}

async function startMedia() {
  stopMedia();
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus(
      'error',
      '此浏览器无法使用摄像头：请用最新版 Chrome 或 Edge，通过 https 地址打开考试页面。 ' +
        'This browser cannot use the camera here: use a current Chrome or Edge and open the exam over https.',
    );
    return;
  }
  setStatus('requesting');
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: {
        width: { ideal: media.width },
        height: { ideal: media.height },
        frameRate: { ideal: media.fps, max: media.fps },
      },
      audio: true,
    });
  } catch (error) {
    const message = mediaErrorMessage(error);
    if (message === null) setStatus('denied');
    else setStatus('error', message);
    return;
  }
  localStream = stream;
  selfView.srcObject = stream;
  selfView.play().catch(() => {});
  for (const track of stream.getTracks()) {
    track.addEventListener('ended', () => {
      if (localStream !== stream) return;
      setStatus(
        'error',
        '摄像头或麦克风已断开，请重新连接后点击“重试”。 The camera or microphone was disconnected: reconnect it and press Retry.',
      );
    });
  }
  controller = startStream({
    view: 'first',
    stream,
    token,
    iceServers: iceServersSource(token, media.ice_servers || []),
    maxBitrate: VIDEO_MAX_BITRATE,
    maxFramerate: media.fps,
    followServerRate: true, // the analysis rate until an invigilator watches (issue 22)
    onState: onStreamState,
  });
}

retryButton.addEventListener('click', () => {
  startMedia();
});

// When the candidate allows the camera in the site settings, start again by itself.
async function watchPermissions() {
  if (!navigator.permissions?.query) return;
  for (const name of ['camera', 'microphone']) {
    try {
      const status = await navigator.permissions.query({ name });
      status.addEventListener('change', () => {
        if (status.state === 'granted' && statusEl.dataset.state === 'denied') startMedia();
      });
    } catch {
      // this browser cannot tell; the Retry button remains
    }
  }
}

// ------------------------------------------------------------------ danmaku

const SPEED_PX_PER_S = 160;
const MIN_DURATION_MS = 8000;
const STILL_DURATION_MS = 12000;
const reducedMotion = window.matchMedia?.('(prefers-reduced-motion: reduce)').matches;
const shown = new Set();
const laneFreeAt = [];
const waitingForVisible = [];

function pickLane(count, now) {
  for (let i = 0; i < count; i += 1) {
    if ((laneFreeAt[i] || 0) <= now) return i;
  }
  let best = 0;
  for (let i = 1; i < count; i += 1) {
    if ((laneFreeAt[i] || 0) < (laneFreeAt[best] || 0)) best = i;
  }
  return best;
}

function logDanmaku(text) {
  const item = document.createElement('li');
  const time = document.createElement('time');
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString('zh-CN', { hour12: false });
  item.append(time, document.createTextNode(text));
  danmakuLog.prepend(item);
}

function display({ id, text }) {
  const el = document.createElement('div');
  el.className = 'danmaku';
  el.dataset.id = String(id);
  el.textContent = text;
  layer.append(el);

  const layerWidth = layer.clientWidth;
  const height = el.offsetHeight;
  const laneHeight = height + 12;
  const top = Math.round(layer.clientHeight * 0.08);
  const lanes = Math.max(1, Math.min(8, Math.floor((layer.clientHeight * 0.75) / laneHeight)));
  const now = performance.now();
  const lane = pickLane(lanes, now);
  el.style.top = `${top + lane * laneHeight}px`;

  if (reducedMotion) {
    el.classList.add('still');
    laneFreeAt[lane] = now + STILL_DURATION_MS;
    setTimeout(() => el.remove(), STILL_DURATION_MS);
  } else {
    const width = el.offsetWidth;
    const distance = layerWidth + width;
    const duration = Math.max(MIN_DURATION_MS, (distance / SPEED_PX_PER_S) * 1000);
    // the lane is free again once this message's tail has come fully on screen
    laneFreeAt[lane] = now + ((width + 48) / distance) * duration;
    const animation = el.animate(
      [{ transform: 'translateX(0)' }, { transform: `translateX(${-distance}px)` }],
      { duration, easing: 'linear', fill: 'forwards' },
    );
    animation.finished.then(() => el.remove()).catch(() => el.remove());
  }
  logDanmaku(text);
  // acknowledge once the browser has actually painted it
  requestAnimationFrame(() => requestAnimationFrame(() => sendSeen(id)));
}

function showDanmaku(message) {
  const id = Number(message.id);
  if (!Number.isFinite(id)) return;
  if (shown.has(id)) {
    sendSeen(id); // redelivered: it was shown already, say so again
    return;
  }
  shown.add(id);
  const item = { id, text: String(message.text ?? '') };
  if (document.hidden) waitingForVisible.push(item);
  else display(item);
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) return;
  while (waitingForVisible.length) display(waitingForVisible.shift());
});

// ------------------------------------------------------------------ WebSocket

const WS_CLOSE_UNAUTHENTICATED = 4401; // the server's close codes (proctor/api/sockets.py)
const WS_CLOSE_FORBIDDEN = 4403;
let socket = null;
let wsDelay = 500;
const pendingSeen = [];

function sendSeen(id) {
  const message = JSON.stringify({ type: 'danmaku_seen', id });
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(message);
  else pendingSeen.push(message);
}

function openSocket() {
  const url = new URL('/ws/candidate', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (token) url.searchParams.set('token', token);
  setWsStatus('connecting');
  const ws = new WebSocket(url);
  socket = ws;
  let opened = false;

  ws.addEventListener('open', () => {
    opened = true;
    wsDelay = 500;
    setWsStatus('open');
    talk.onSocketOpen();
    while (pendingSeen.length && ws.readyState === WebSocket.OPEN) ws.send(pendingSeen.shift());
  });

  ws.addEventListener('message', (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    talk.onSocketMessage(message);
    if (message?.type === 'danmaku') showDanmaku(message);
    else if (message?.type === 'flow' || message?.type === 'time') refresh();
    else if (message?.type === 'send_rate' && message.view === 'first') {
      // an invigilator opened (or closed) the live view: full rate, or the analysis rate
      controller?.setMaxFramerate(message.fps);
    }
  });

  ws.addEventListener('close', async (event) => {
    if (socket !== ws) return;
    socket = null;
    setWsStatus('closed');
    if (event.code === WS_CLOSE_UNAUTHENTICATED) {
      goToLogin();
      return;
    }
    if (event.code === WS_CLOSE_FORBIDDEN) return; // not a candidate session: trying again will not help
    if (!opened) {
      // refused before opening: perhaps the session ended (a browser cannot see the 401)
      try {
        const response = await fetch('/api/candidate/me', {
          headers: authHeaders(),
          credentials: 'same-origin',
        });
        if (response.status === 401) {
          goToLogin();
          return;
        }
      } catch {
        // server unreachable: keep trying
      }
    }
    const delay = Math.round(wsDelay * (0.8 + 0.4 * Math.random()));
    wsDelay = Math.min(wsDelay * 2, 15000);
    setTimeout(openSocket, delay);
  });
}

// ------------------------------------------------------------------ the flow

// the camera and microphone stream from the photo check on (it needs the picture) until
// the paper is handed in
const CAMERA_STEPS = new Set(['identity', 'phone', 'waiting', 'answering', 'device_check']);
// the progress bar's names and the steps that end the exam: the server's tables
const ENDED_STEPS = new Set(ENDED);
const POLL_MS = { phone: 2000, identity: 4000, waiting: 10000, default: 15000 };

const flowEl = $('flow');
const flowError = $('flow-error');
let state = null;
let clockOffset = 0; // server time - local time, ms
let shownStep = null;
let paperView = null;
let pollTimer = null;
let tickTimer = null;
let starting = false;
let phoneDoneSent = false;
let pairing = null;
let pairingRequest = null; // the pairing being made: one at a time
let stoppedAt = null;

const serverNow = () => Date.now() + clockOffset;

function showFlowError(message) {
  flowError.textContent = message || '';
  flowError.hidden = !message;
}

function pad(n) {
  return String(Math.max(0, Math.floor(n))).padStart(2, '0');
}

function clock(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

// the sitting's time zone (issue 23): times are shown as the sitting reads them, with
// the offset, not in the browser's zone
let sittingZone;

function localTime(iso) {
  const options = { hour12: false, timeZoneName: 'shortOffset' };
  try {
    return new Date(iso).toLocaleString('zh-CN', sittingZone ? { ...options, timeZone: sittingZone } : options);
  } catch {
    return new Date(iso).toLocaleString('zh-CN', options);
  }
}

async function refresh() {
  const t0 = Date.now();
  let body;
  try {
    body = await call('/api/flow/state');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      goToLogin();
      return null;
    }
    showFlowError(error.message);
    schedulePoll(5000);
    return null;
  }
  const t1 = Date.now();
  clockOffset = Date.parse(body.server_now) - (t0 + t1) / 2;
  showFlowError('');
  render(body);
  return body;
}

function schedulePoll(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(refresh, ms);
}

async function act(path, options = {}) {
  showFlowError('');
  try {
    const body = await call(path, { method: 'POST', ...options });
    if (body && body.step && body.steps) render(body);
    return body;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      goToLogin();
      return null;
    }
    showFlowError(error.message);
    if (['wrong_step', 'already_submitted', 'exam_paused', 'exam_terminated'].includes(error.code)) {
      refresh();
    }
    return null;
  }
}

function renderSteps(body) {
  const list = $('steps');
  list.replaceChildren();
  const current = body.steps.indexOf(body.step);
  body.steps.forEach((step, i) => {
    const [zh, en] = STEP_NAMES[step] || [step, step];
    const li = document.createElement('li');
    li.dataset.step = step;
    li.dataset.state =
      ENDED_STEPS.has(body.step) || i < current ? 'done' : i === current ? 'current' : 'todo';
    li.innerHTML = `<span class="n">${i + 1}</span> ${zh} <span class="en">${en}</span>`;
    list.append(li);
  });
}

function render(body) {
  state = body;
  showProfile({ candidate: body.candidate, sitting: body.sitting });
  renderSteps(body);
  flowEl.dataset.step = body.step;
  for (const section of flowEl.querySelectorAll('section.step')) {
    section.hidden = section.id !== `step-${body.step}`;
  }
  const mediaState = statusEl.dataset.state;
  if (CAMERA_STEPS.has(body.step) && !localStream && !['requesting', 'denied'].includes(mediaState)) {
    startMedia();
  }
  talk.setStep(body.step, ENDED_STEPS.has(body.step));
  const endedAs = body.step === 'finished' ? 'checked' : 'ended';
  if (ENDED_STEPS.has(body.step) && statusEl.dataset.state !== endedAs) {
    stopMedia();
    setStatus(endedAs);
  }
  $('face-guide').hidden = body.step !== 'identity';
  if (body.step === 'device_check') micMeter.start();
  else micMeter.stop();
  showPaused(body);
  const entered = shownStep !== body.step;
  shownStep = body.step;
  const handler = STEP_RENDER[body.step];
  if (handler) handler(body, entered);
  enforceFullscreen();
  tick();
  schedulePoll(POLL_MS[body.step] || POLL_MS.default);
}

// -- 2. confirm
function renderConfirm(body, entered) {
  if (!entered) return;
  const c = body.candidate;
  $('info-name').textContent = c.name;
  $('info-id-number').textContent = c.id_number;
  $('info-occupation').textContent = c.occupation || '—';
  $('info-level').textContent = c.level || '—';
  sittingZone = body.sitting.time_zone || sittingZone;
  $('info-sitting').textContent = `${body.sitting.name}（${KIND_TEXT[body.sitting.kind] || ''}）`;
  $('info-time').textContent =
    `${localTime(body.sitting.starts_at)} – ${localTime(body.timing.ends_at)}`;
}
$('confirm-info').addEventListener('click', () => act('/api/flow/confirm'));
$('send-problem').addEventListener('click', async () => {
  const text = $('problem-text').value.trim();
  if (!text) return;
  const done = await act('/api/flow/report-problem', { json: { text } });
  if (done) $('problem-sent').hidden = false;
});

// -- 3. pledge
function renderPledge(body, entered) {
  if (entered) $('pledge-text').textContent = body.pledge.text;
}
$('pledge-read').addEventListener('change', (e) => {
  $('pledge-accept').disabled = !e.target.checked;
});
$('pledge-accept').addEventListener('click', () => act('/api/flow/pledge', { json: { accept: true } }));
$('pledge-refuse').addEventListener('click', () => {
  $('pledge-refuse-confirm').hidden = false;
});
$('pledge-refuse-no').addEventListener('click', () => {
  $('pledge-refuse-confirm').hidden = true;
});
$('pledge-refuse-yes').addEventListener('click', async () => {
  const body = await act('/api/flow/pledge', { json: { accept: false } });
  if (body) {
    stopMedia();
    shownStep = 'refused';
    flowEl.dataset.step = 'refused';
    for (const section of flowEl.querySelectorAll('section.step')) {
      section.hidden = section.id !== 'step-refused';
    }
    clearTimeout(pollTimer);
    forgetSession();
  }
});

// -- 4. identity
function renderIdentity(body) {
  const id = body.identity;
  $('identity-attempts').textContent =
    `自动核验：失败 ${id.failures} / ${id.max_failures} 次 · automatic check: ${id.failures} of ${id.max_failures} failed`;
  $('identity-wait').hidden = !id.needs_invigilator;
  $('capture-photo').disabled = id.needs_invigilator;
}

function captureFrame() {
  const video = selfView;
  if (!video.videoWidth) return Promise.resolve(null);
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.92));
}

$('capture-photo').addEventListener('click', async () => {
  const button = $('capture-photo');
  const result = $('identity-result');
  const blob = await captureFrame();
  if (!blob) {
    result.hidden = false;
    result.dataset.result = 'no_camera';
    result.textContent = '摄像头还没有画面，请稍候再试。 The camera shows no picture yet; try again in a moment.';
    return;
  }
  button.disabled = true;
  result.hidden = false;
  result.dataset.result = 'checking';
  result.textContent = '正在核验… Checking…';
  const body = await act('/api/flow/identity', {
    body: blob,
    contentType: 'image/jpeg',
    timeoutMs: 60000, // the face model runs on a busy server
  });
  button.disabled = false;
  if (!body) {
    result.dataset.result = 'error';
    result.textContent = flowError.textContent;
    return;
  }
  result.dataset.result = body.passed ? 'passed' : 'failed';
  result.dataset.reason = body.reason;
  result.textContent = body.message;
  await refresh();
});

// -- 5. phone
// One pairing at a time: each new one invalidates the QR codes before it, so a second
// request made while the first is on its way (the step's render, then a state refresh)
// would void the code on the screen just as the candidate scans it.
function newPairing() {
  if (!pairingRequest) {
    pairingRequest = makePairing().finally(() => {
      pairingRequest = null;
    });
  }
  return pairingRequest;
}

async function makePairing() {
  const body = await act('/api/flow/phone/pairing');
  if (!body) return;
  pairing = body;
  $('phone-qr').innerHTML = body.qr_svg.replace(/^<\?xml[^>]*>/, '');
  $('phone-link').href = body.url;
  $('phone-expires').textContent =
    `二维码 ${localTime(body.expires_at)} 前有效，只能使用一次 · valid once, until ${localTime(body.expires_at)}`;
}

function renderPhone(body, entered) {
  if (entered || !pairing) newPairing();
  const status = $('phone-status');
  if (body.phone.connected) {
    status.dataset.state = 'connected';
    status.innerHTML = '手机已连接 <span class="en">The phone is connected</span>';
    if (!phoneDoneSent) {
      phoneDoneSent = true;
      act('/api/flow/phone/done').finally(() => {
        phoneDoneSent = false;
      });
    }
  } else if (body.phone.paired) {
    status.dataset.state = 'paired';
    status.innerHTML = '手机已扫码，等待画面… <span class="en">Phone paired, waiting for its picture…</span>';
  } else if (!body.phone.required) {
    status.dataset.state = 'optional';
    act('/api/flow/phone/done');
  }
}
$('phone-new-qr').addEventListener('click', newPairing);

// -- 6. waiting: counts down on the server's clock, starts by itself; the exam rules
// (考生须知) from the sitting's rules and the documents' requirements (DOMAIN.md)
function examRules(body) {
  const r = body.rules || {};
  const items = [
    ['考试期间须独处于安静、明亮、封闭的房间，不得在公共场所参加考试，其他人不得进入。',
      'Sit alone in a quiet, bright, private room (no public places); nobody else may come in.'],
    ['摄像头和麦克风全程开启且不得遮挡；笔记本电脑接通电源；关闭其他程序（弹窗可能被判为作弊）。',
      'Camera and microphone stay on and uncovered throughout; laptop on mains power; close other apps (pop-ups may be judged as cheating).'],
  ];
  if (r.require_phone) {
    items.push(['手机（第二视角）放在身体侧后方约1米处，全程保持拍摄你、电脑屏幕和桌面，屏幕常亮并接通电源。',
      'The phone (second view) stays about 1 m to your side and behind you, showing you, the screen and the desk, screen on and charging.']);
  }
  items.push(['不得携带或使用与考试无关的资料和电子设备，不得交头接耳、左顾右盼、离开座位。',
    'No material or electronic device unrelated to the exam; no whispering, looking around or leaving the seat.']);
  const fullscreen = Boolean(body.page_watch?.fullscreen_required);
  items.push([`作答时不得离开考试页面${fullscreen ? '或退出全屏' : ''}（切屏），离开会被记录并报告监考老师。`,
    `While answering, do not leave the exam page${fullscreen ? ' or full screen' : ''}: leaving is recorded and reported to the invigilator.`]);
  if (r.earliest_submit_minutes > 0) {
    items.push([`开始作答 ${r.earliest_submit_minutes} 分钟后方可交卷；考试结束时未交卷的试卷将自动提交。`,
      `You may hand in after ${r.earliest_submit_minutes} minutes of answering; at the end an open paper is handed in automatically.`]);
  } else {
    items.push(['考试结束时未交卷的试卷将自动提交。', 'At the end an open paper is handed in automatically.']);
  }
  if (r.entry_closes_minutes_after) {
    items.push([`开考 ${r.entry_closes_minutes_after} 分钟后不得再进入考试（迟到）。`,
      `Entry closes ${r.entry_closes_minutes_after} minutes after the start (late).`]);
  }
  items.push(['监考老师的弹幕警告和语音提醒请立即遵守；遇到断网、断电等问题请保持在座位上，重新登录后继续作答。',
    "Follow the invigilator's on-screen warnings and voice at once; after a network or power failure stay in your seat and log in again to go on."]);
  return items;
}

function renderWaiting(body, entered) {
  if (!entered) return;
  $('exam-rules-list').replaceChildren(
    ...examRules(body).map(([zh, en]) => {
      const li = document.createElement('li');
      const enEl = document.createElement('span');
      enEl.className = 'en';
      enEl.textContent = en;
      li.append(zh, ' ', enEl);
      return li;
    }),
  );
}

async function startExam() {
  if (starting) return;
  starting = true;
  try {
    await act('/api/flow/start');
  } finally {
    starting = false;
  }
}

// -- 7. answering
async function renderAnswering(body, entered) {
  // watched from the moment the step shows (not after the paper has loaded: a leave while
  // it loads counts too)
  if (entered) watchPage();
  if (!paperView) {
    paperView = new PaperView({
      container: $('paper'),
      nav: $('question-nav'),
      status: $('save-status'),
      progress: $('progress'),
      candidateId: body.candidate.id,
      onStop: () => refresh(),
      onFlags: (count) => showFlagCount(count),
    });
    try {
      await paperView.load();
      if (state?.paused) paperView.lock(); // opened while paused: the paper waits
    } catch (error) {
      paperView = null;
      showFlowError(error.message);
    }
  }
}

// the sitting may require full screen while answering (issue 18): until the page is in
// full screen an overlay asks for it (entering needs the candidate's click)
function enforceFullscreen() {
  const required = Boolean(state?.page_watch?.fullscreen_required) && state?.step === 'answering';
  $('fullscreen-overlay').hidden = !required || Boolean(document.fullscreenElement);
  document.body.dataset.fullscreenRequired = String(required);
}
document.addEventListener('fullscreenchange', enforceFullscreen);
$('fullscreen-return').addEventListener('click', () => {
  document.documentElement.requestFullscreen?.().catch(() => {});
});

function showFlagCount(count) {
  const el = $('flag-count');
  el.dataset.count = String(count);
  el.hidden = count === 0;
  el.textContent = `已标记 ${count} 题 · ${count} flagged`;
}

function submitHint() {
  if (!state?.timing?.earliest_submit_at) return '';
  const left = (Date.parse(state.timing.earliest_submit_at) - serverNow()) / 1000;
  if (left <= 0) return '';
  return `开始作答${state.rules.earliest_submit_minutes}分钟后方可交卷，还需 ${clock(left)} · You can hand in in ${clock(left)}`;
}

$('submit-button').addEventListener('click', () => {
  const hint = submitHint();
  $('submit-hint').textContent = hint;
  if (hint) return;
  const unanswered = paperView ? paperView.questions.length - paperView.questions.filter(
    (q) => { const v = paperView.values.get(q.id); return !(v === null || v === undefined || v === '' || (Array.isArray(v) && !v.length)); },
  ).length : 0;
  const flagged = paperView ? paperView.flagged.size : 0;
  const zh = [];
  const en = [];
  if (unanswered) {
    zh.push(`还有 ${unanswered} 题未作答`);
    en.push(`${unanswered} question(s) unanswered`);
  }
  if (flagged) {
    zh.push(`${flagged} 题已标记待检查`);
    en.push(`${flagged} flagged for review`);
  }
  $('submit-confirm-text').textContent =
    `${zh.length ? `${zh.join('，')}。` : ''}交卷后不能再修改，确定交卷吗？ ` +
    `${en.length ? `${en.join('; ')}. ` : ''}You cannot change anything after handing in. Hand in now?`;
  $('submit-confirm-text').dataset.flagged = String(flagged);
  $('submit-confirm-text').dataset.unanswered = String(unanswered);
  $('submit-confirm').hidden = false;
});
$('submit-no').addEventListener('click', () => {
  $('submit-confirm').hidden = true;
});
$('submit-yes').addEventListener('click', async () => {
  $('submit-confirm').hidden = true;
  if (paperView && !paperView.allSaved) {
    await paperView.flush();
    if (!paperView.allSaved) {
      showFlowError('有答案尚未保存，请检查网络后再交卷。 Some answers are not saved yet: check the network, then hand in.');
      return;
    }
  }
  await act('/api/flow/submit');
});
$('fullscreen-button').addEventListener('click', () => {
  document.documentElement.requestFullscreen?.().catch(() => {});
});

// leaving the exam is itself an event (visibility, focus, full screen, copy/paste)
const pageEvents = [];
let watching = false;
function report(kind, detail = '') {
  pageEvents.push({ kind, at: new Date(serverNow()).toISOString(), detail });
  sendEvents();
}
let sendingEvents = false;
async function sendEvents() {
  if (sendingEvents || !pageEvents.length) return;
  sendingEvents = true;
  const batch = pageEvents.splice(0, 50);
  try {
    await call('/api/flow/events', { method: 'POST', json: { events: batch } });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500) {
      pageEvents.unshift(...batch); // try again later
      setTimeout(sendEvents, 3000);
    }
  } finally {
    sendingEvents = false;
    if (pageEvents.length) setTimeout(sendEvents, 200);
  }
}
function watchPage() {
  if (watching) return;
  watching = true;
  document.addEventListener('visibilitychange', () => report(document.hidden ? 'hidden' : 'visible'));
  window.addEventListener('blur', () => report('blur'));
  window.addEventListener('focus', () => report('focus'));
  document.addEventListener('fullscreenchange', () =>
    report(document.fullscreenElement ? 'fullscreen_enter' : 'fullscreen_exit'));
  for (const kind of ['copy', 'cut', 'paste', 'contextmenu']) {
    document.addEventListener(kind, (event) => {
      if (state?.step !== 'answering') return;
      event.preventDefault();
      report(kind);
    });
  }
}

// -- paused by the invigilator: an overlay, the paper waits, the clock stands still
let pausedShown = false;
function showPaused(body) {
  const paused = body.step === 'answering' && Boolean(body.paused);
  const overlay = $('paused-overlay');
  overlay.hidden = !paused;
  document.body.dataset.paused = String(paused);
  if (paused) {
    $('paused-time-left').textContent = clock(body.paused.seconds_left);
    $('submit-confirm').hidden = true;
    paperView?.lock();
    pausedShown = true;
  } else if (pausedShown) {
    pausedShown = false;
    if (body.step === 'answering' && stoppedAt === null) paperView?.unlock();
  }
}

// -- ended by the invigilator, with the category of the documents
function renderTerminated(body) {
  paperView?.lock();
  const t = body.termination || {};
  const el = $('terminated-message');
  el.dataset.category = t.category || '';
  el.textContent = `监考老师已终止你的考试：${t.zh || ''}。 The invigilator has ended your exam: ${t.en || ''}.`;
  $('timer').hidden = true;
}

// -- 8. submitted
function renderSubmitted(body) {
  paperView?.lock();
  const auto = body.submit_kind === 'auto';
  $('submitted-message').textContent = auto
    ? '考试时间到，试卷已自动提交。 Time was up: your paper was handed in automatically.'
    : '你的试卷已提交。 Your paper has been handed in.';
  const result = body.result;
  $('result').hidden = !result;
  if (result) {
    $('score').textContent = result.grading_pending
      ? `${result.objective_score}（客观题 objective; 简答题待评 short answers pending）`
      : String(result.total_score);
    $('result-verdict').textContent = result.grading_pending
      ? ''
      : result.passed
        ? `合格（${result.pass_score}分及格） Passed (pass mark ${result.pass_score})`
        : `不合格（${result.pass_score}分及格） Not passed (pass mark ${result.pass_score})`;
  }
  $('timer').hidden = true;
}

// -- device check
function renderDevice(body, entered) {
  if (entered) $('min-upload').textContent = formatRate(body.rules.min_upload_bytes_per_s);
}
$('device-run').addEventListener('click', async () => {
  const button = $('device-run');
  button.disabled = true;
  try {
    const result = await runDeviceCheck({
      stream: localStream,
      streaming: statusEl.dataset.state === 'streaming',
      results: $('device-results'),
    });
    showReport($('finished-results'), result.report);
    render({ ...result.state, device_check: result.state.device_check ?? {
      passed: result.report.passed,
      failed: ['camera', 'microphone', 'phone', 'upload'].filter((p) => !result.report[`${p}_ok`]),
    } });
  } catch (error) {
    showFlowError(error.message);
  } finally {
    button.disabled = false;
  }
});
const PART_NAMES = {
  camera: ['摄像头', 'camera'],
  microphone: ['麦克风', 'microphone'],
  phone: ['手机（第二视角）', 'phone (second view)'],
  upload: ['上传带宽', 'upload'],
};
function renderFinished(body) {
  const verdict = body.device_check;
  const title = $('finished-title');
  const passed = verdict ? verdict.passed : null;
  title.dataset.passed = passed === null ? '' : String(passed);
  const [zh, en] = passed === null
    ? ['设备检测完成', 'Device check done']
    : passed
      ? ['设备检测通过', 'Device check passed']
      : ['设备检测未通过', 'Device check not passed'];
  const enEl = document.createElement('span');
  enEl.className = 'en';
  enEl.textContent = en;
  title.replaceChildren(`${zh} `, enEl);
  const failed = (verdict?.failed || []).map((p) => PART_NAMES[p] || [p, p]);
  $('finished-message').textContent = passed === false
    ? `未通过：${failed.map(([z]) => z).join('、')}。请按提示调整后重新登录再检测一次；结果已提交给考务人员。 ` +
      `Not passed: ${failed.map(([, e]) => e).join(', ')}. Fix it, then log in again to check once more; the results went to the exam staff.`
    : '你的设备可以参加考试，结果已提交给考务人员。正式考试请使用同一台电脑和手机。 ' +
      'Your devices are ready for the exam; the results went to the exam staff. Use the same computer and phone for the exam.';
}

// a live microphone level while the device check is open (issue 23): the candidate sees
// the bar move when they speak, before and during the check
const micMeter = {
  context: null,
  listening: false,
  analyser: null,
  stream: null,
  timer: null,
  buffer: null,
  start() {
    if (this.timer) return;
    this.timer = setInterval(() => this.sample(), 100);
    if (this.listening) return;
    this.listening = true;
    // a browser that starts audio only after a gesture: any click or key resumes it
    document.addEventListener('pointerdown', () => this.context?.resume().catch(() => {}));
    document.addEventListener('keydown', () => this.context?.resume().catch(() => {}));
  },
  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.context?.close().catch(() => {});
    this.context = this.analyser = this.stream = null;
  },
  sample() {
    const track = localStream?.getAudioTracks()[0];
    if (!track || track.readyState !== 'live') return;
    if (this.stream !== localStream) {
      this.context?.close().catch(() => {});
      const Context = window.AudioContext || window.webkitAudioContext;
      this.context = new Context();
      this.context.resume().catch(() => {});
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 1024;
      this.context.createMediaStreamSource(new MediaStream([track])).connect(this.analyser);
      this.buffer = new Float32Array(this.analyser.fftSize);
      this.stream = localStream;
    }
    this.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (const v of this.buffer) sum += v * v;
    const level = micScale(Math.sqrt(sum / this.buffer.length));
    const meter = $('mic-meter');
    meter.value = level;
    meter.dataset.level = String(level);
    meter.dataset.peak = String(Math.max(Number(meter.dataset.peak || 0), level));
  },
};

// -- refused: the pledge refused, or not admitted after the invigilator's identity check
function renderRefused(body) {
  const byIdentity = body.identity?.method === 'refused';
  $('refused-pledge').hidden = byIdentity;
  $('refused-identity').hidden = !byIdentity;
}

const STEP_RENDER = {
  refused: renderRefused,
  confirm: renderConfirm,
  pledge: renderPledge,
  identity: renderIdentity,
  phone: renderPhone,
  answering: renderAnswering,
  submitted: renderSubmitted,
  terminated: renderTerminated,
  device_check: renderDevice,
  finished: renderFinished,
  waiting: renderWaiting,
};

// the countdowns, once a second on the server's clock
function tick() {
  clearTimeout(tickTimer);
  tickTimer = setTimeout(tick, 1000 - (Date.now() % 1000) + 5);
  if (!state) return;
  const now = serverNow();
  if (state.step === 'waiting') {
    const left = (Date.parse(state.timing.starts_at) - now) / 1000;
    const el = $('countdown');
    el.dataset.seconds = String(Math.max(0, Math.ceil(left)));
    el.textContent = clock(left);
    if (left <= 0) startExam();
  }
  const timer = $('timer');
  if (state.step === 'answering' || state.step === 'waiting') {
    // while paused the time left is frozen (the server's figure), it does not count down
    const left = state.paused
      ? state.paused.seconds_left
      : (Date.parse(state.timing.ends_at) - now) / 1000;
    timer.hidden = false;
    timer.dataset.seconds = String(Math.max(0, Math.ceil(left)));
    $('time-left').textContent = clock(left);
    if (state.step === 'answering') {
      $('submit-hint').textContent = submitHint();
      if (left <= 0 && stoppedAt === null) {
        stoppedAt = now;
        paperView?.lock();
        // the server hands the paper in at the end (plus a short grace): look again then
        schedulePoll((state.rules.end_grace_seconds + 2) * 1000);
      }
    }
  } else {
    timer.hidden = true;
  }
}

function forgetSession() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // ignore
  }
}

// ------------------------------------------------------------------ layout
// the top bar (timer, status) and the answer head (save state, hand-in, navigator) stay in
// view while the paper scrolls (exam.css): their heights, for what sticks below them and
// for a question scrolled to from the navigator
function watchHeights() {
  const root = document.documentElement;
  const topbar = document.querySelector('.topbar');
  const head = $('answer-head');
  const apply = () => {
    root.style.setProperty('--topbar-h', `${topbar.offsetHeight}px`);
    root.style.setProperty('--answer-head-h', `${head.offsetHeight}px`);
  };
  apply();
  if ('ResizeObserver' in window) {
    const observer = new ResizeObserver(apply);
    observer.observe(topbar);
    observer.observe(head);
  }
}
watchHeights();

// ------------------------------------------------------------------ start

async function main() {
  setStatus('idle');
  const me = await fetchMe();
  if (!me) return;
  media = { ...DEFAULT_MEDIA, ...(me.media || {}) };
  showProfile(me);
  openSocket();
  watchPermissions();
  await refresh();
}

main();
