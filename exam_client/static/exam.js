// The candidate's exam page: who am I (GET /api/candidate/me), camera + microphone sent
// to the server as the first view (rtc.js), and the invigilator's on-screen warnings
// (danmaku) from WS /ws/candidate, each acknowledged once it has been shown.
//
// Hooks for tests: #stream-status[data-state] (idle|requesting|connecting|streaming|
// reconnecting|denied|error), #ws-status[data-state] (connecting|open|closed),
// #danmaku-layer > .danmaku[data-id], #danmaku-log, main#paper.

import { startStream } from './rtc.js';

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
    iceServers: media.ice_servers || [],
    maxBitrate: VIDEO_MAX_BITRATE,
    maxFramerate: media.fps,
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
    while (pendingSeen.length && ws.readyState === WebSocket.OPEN) ws.send(pendingSeen.shift());
  });

  ws.addEventListener('message', (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message?.type === 'danmaku') showDanmaku(message);
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

// ------------------------------------------------------------------ start

async function main() {
  setStatus('idle');
  const me = await fetchMe();
  if (!me) return;
  showProfile(me);
  media = { ...DEFAULT_MEDIA, ...(me.media || {}) };
  openSocket();
  watchPermissions();
  await startMedia();
}

main();
