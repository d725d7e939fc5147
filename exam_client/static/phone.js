// The phone page (second view, 鹰眼监控): opened from the QR code on the candidate's
// computer. The one-time pairing token in the URL's fragment (#pair=...) is exchanged for
// a phone session (POST /api/phone/pair); the session may stream the second view only.
// The phone session is kept in sessionStorage so that a reload does not need a new QR code.
//
// When the candidate's exam ends (handed in, device check done, ended by the invigilator)
// the server says so over /ws/phone (and refuses a new offer with 409 exam_over): the page
// stops its camera and says that it may be closed.
//
// The same socket carries send_rate (issue 22): the side view is sent at the analysis rate
// while nobody watches it live, at the full rate while an invigilator does.
//
// Hooks for tests: #phone-stream-status[data-state] (pairing|requesting|connecting|
// streaming|reconnecting|error|finished), #phone-error, #phone-finished,
// #phone-wake[data-state] (idle|on|released|unsupported|failed)[data-acquired] (issue 23:
// the screen is kept on with the Screen Wake Lock while the phone streams, taken again
// when the page comes back into view; where the browser cannot, the page says what to do).

import { ApiError, call, iceServersSource } from './api.js';
import { startStream } from './rtc.js';

const PHONE_TOKEN_KEY = 'proctor.phone.token';
const $ = (id) => document.getElementById(id);
const statusEl = $('phone-stream-status');
const errorEl = $('phone-error');
const retry = $('phone-retry');
const video = $('phone-view');

const TEXT = {
  pairing: ['正在连接…', 'Connecting…'],
  requesting: ['请允许使用摄像头', 'Allow the camera, please'],
  connecting: ['正在连接监考服务器…', 'Connecting to the proctoring server…'],
  streaming: ['第二视角已连接，请保持本页面打开', 'Second view connected: keep this page open'],
  reconnecting: ['连接中断，正在重新连接…', 'Connection lost — reconnecting…'],
  error: ['出现问题', 'Something went wrong'],
  finished: ['考试已结束，手机摄像头已关闭，可以关闭本页面。',
    'Finished: the camera is off, you may close this page.'],
};
const ENDED_STEPS = new Set(['submitted', 'finished', 'refused', 'terminated']);

function setState(state, message = '') {
  statusEl.dataset.state = state;
  const [zh, en] = TEXT[state] || TEXT.error;
  statusEl.innerHTML = `${zh} <span class="en">${en}</span>`;
  errorEl.textContent = message;
  errorEl.hidden = !message;
  retry.hidden = state !== 'error';
}

function stored() {
  try {
    return sessionStorage.getItem(PHONE_TOKEN_KEY);
  } catch {
    return null;
  }
}

function keep(token) {
  try {
    sessionStorage.setItem(PHONE_TOKEN_KEY, token);
  } catch {
    // storage disabled: a reload needs a new QR code
  }
}

async function session() {
  const match = /(?:^|[#&])pair=([^&]+)/.exec(location.hash);
  if (match) {
    const body = await call('/api/phone/pair', {
      method: 'POST',
      json: { token: decodeURIComponent(match[1]) },
      token: null,
    });
    keep(body.token);
    history.replaceState(null, '', location.pathname); // the token is used up
    return body;
  }
  const token = stored();
  if (!token) {
    throw new ApiError(401, 'pairing_invalid',
      '请用手机扫描电脑上的二维码打开本页。 Open this page by scanning the QR code on the computer.');
  }
  const me = await call('/api/phone/me', { token });
  return { token, candidate: me.candidate, step: me.step, media: null };
}

let controller = null;
let localStream = null;
let finished = false;
let socket = null;
let socketDelay = 1000;

// ---- Screen Wake Lock: a phone that goes to sleep stops its camera
const wakeEl = $('phone-wake');
let wakeLock = null;
let wakeWanted = false;
const WAKE_TEXT = {
  on: ['屏幕常亮已开启，请保持本页面在前台。', 'The screen stays on: keep this page in front.'],
  released: ['屏幕常亮已暂停，回到本页面后自动恢复。', 'Screen-on paused: it resumes when this page is back in front.'],
  unsupported: ['本浏览器无法自动保持屏幕常亮：请在手机设置中把“自动锁屏”设为“永不”，并保持本页面在前台。',
    'This browser cannot keep the screen on: set auto-lock to Never in the phone\'s settings and keep this page in front.'],
  failed: ['无法保持屏幕常亮：请在手机设置中把“自动锁屏”设为“永不”，并保持本页面在前台。',
    'The screen could not be kept on: set auto-lock to Never in the phone\'s settings and keep this page in front.'],
};

function showWake(state, detail = '') {
  wakeEl.dataset.state = state;
  wakeEl.hidden = state === 'idle';
  const [zh, en] = WAKE_TEXT[state] || ['', ''];
  const enEl = document.createElement('span');
  enEl.className = 'en';
  enEl.textContent = en;
  wakeEl.replaceChildren(zh, ' ', enEl);
  wakeEl.title = detail;
}

async function keepScreenOn() {
  wakeWanted = true;
  if (finished || wakeLock || document.visibilityState !== 'visible') return;
  if (!navigator.wakeLock?.request) {
    showWake('unsupported');
    return;
  }
  try {
    const lock = await navigator.wakeLock.request('screen');
    if (finished) {
      lock.release().catch(() => {});
      return;
    }
    wakeLock = lock;
    wakeEl.dataset.acquired = String(Number(wakeEl.dataset.acquired || 0) + 1);
    showWake('on');
    lock.addEventListener('release', () => {
      if (wakeLock === lock) wakeLock = null;
      if (!finished) showWake('released');
    });
  } catch (error) {
    showWake('failed', `${error?.name || ''} ${error?.message || ''}`.trim());
  }
}

// a browser without it: say so at once, before the phone is set up
if (!navigator.wakeLock?.request) showWake('unsupported');

// the browser lets the lock go when the page is hidden: take it again on return
document.addEventListener('visibilitychange', () => {
  if (wakeWanted && document.visibilityState === 'visible') keepScreenOn();
});

function releaseScreen() {
  wakeWanted = false;
  const lock = wakeLock;
  wakeLock = null;
  lock?.release().catch(() => {});
  showWake('idle');
}

/** The exam is over: stop the camera and the stream for good, say the page may close. */
function finish() {
  finished = true;
  releaseScreen();
  controller?.stop();
  controller = null;
  if (localStream) for (const track of localStream.getTracks()) track.stop();
  localStream = null;
  video.srcObject = null;
  video.hidden = true;
  document.body.dataset.finished = 'true';
  $('phone-hints').hidden = true;
  $('phone-finished').hidden = false;
  setState('finished'); // the session stays: a reload asks the server and says the same
  statusEl.hidden = true; // #phone-finished says it, larger
  if (socket) {
    const ws = socket;
    socket = null;
    ws.close();
  }
}

/** Listen for the end of the exam (the server pushes the candidate's step changes). */
function listen(token) {
  if (finished) return;
  const url = new URL('/ws/phone', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('token', token);
  const ws = new WebSocket(url);
  socket = ws;
  ws.addEventListener('open', () => {
    socketDelay = 1000;
  });
  ws.addEventListener('message', (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message?.type === 'send_rate' && message.view === 'second') {
      // an invigilator opened (or closed) the live view: full rate, or the analysis rate
      controller?.setMaxFramerate(message.fps);
      return;
    }
    if (message?.ended || ENDED_STEPS.has(message?.step)) finish();
  });
  ws.addEventListener('close', (event) => {
    if (socket !== ws || finished) return;
    socket = null;
    if (event.code === 4401 || event.code === 4403) return; // the session is gone
    setTimeout(() => listen(token), socketDelay);
    socketDelay = Math.min(socketDelay * 2, 15000);
  });
}

async function run() {
  if (finished) return;
  setState('pairing');
  let paired;
  try {
    paired = await session();
  } catch (error) {
    if (error instanceof ApiError && error.code === 'exam_over') {
      finish();
      return;
    }
    setState('error', error.message);
    return;
  }
  $('phone-who').textContent = `考生 Candidate: ${paired.candidate.name}`;
  if (ENDED_STEPS.has(paired.step)) {
    finish();
    return;
  }
  if (!socket) listen(paired.token);
  const media = paired.media || { width: 640, height: 480, fps: 5, ice_servers: [] };
  setState('requesting');
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: {
        facingMode: { ideal: 'environment' },
        width: { ideal: media.width },
        height: { ideal: media.height },
        frameRate: { ideal: media.fps, max: media.fps },
      },
      audio: false,
    });
  } catch (error) {
    setState('error',
      `无法打开摄像头（${error?.name || error}）：请在浏览器设置中允许本网站使用摄像头。 ` +
      `Cannot open the camera (${error?.message || error}): allow this site to use it.`);
    return;
  }
  if (finished) {
    for (const track of stream.getTracks()) track.stop();
    return;
  }
  localStream = stream;
  video.srcObject = stream;
  video.play().catch(() => {});
  keepScreenOn();
  controller = startStream({
    view: 'second',
    stream,
    token: paired.token,
    iceServers: iceServersSource(paired.token, media.ice_servers || []),
    maxBitrate: 400_000,
    maxFramerate: media.fps,
    followServerRate: true, // the analysis rate until an invigilator watches (issue 22)
    onState: (state, detail = {}) => {
      if (state === 'idle' || finished) return;
      if (state === 'error' && detail.code === 'exam_over') {
        finish();
        return;
      }
      setState(state, state === 'error' ? detail.message || '' : '');
    },
  });
}

retry.addEventListener('click', () => {
  controller?.stop();
  if (localStream) for (const track of localStream.getTracks()) track.stop();
  localStream = null;
  run();
});

run();
