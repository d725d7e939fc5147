// The phone page (second view, 鹰眼监控): opened from the QR code on the candidate's
// computer. The one-time pairing token in the URL's fragment (#pair=...) is exchanged for
// a phone session (POST /api/phone/pair); the session may stream the second view only.
// The phone session is kept in sessionStorage so that a reload does not need a new QR code.
//
// Hooks for tests: #phone-stream-status[data-state] (pairing|requesting|connecting|
// streaming|reconnecting|error), #phone-error.

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
};

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
  return { token, candidate: me.candidate, media: null };
}

let controller = null;

async function run() {
  setState('pairing');
  let paired;
  try {
    paired = await session();
  } catch (error) {
    setState('error', error.message);
    return;
  }
  $('phone-who').textContent = `考生 Candidate: ${paired.candidate.name}`;
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
  video.srcObject = stream;
  video.play().catch(() => {});
  controller = startStream({
    view: 'second',
    stream,
    token: paired.token,
    iceServers: iceServersSource(paired.token, media.ice_servers || []),
    maxBitrate: 400_000,
    maxFramerate: media.fps,
    onState: (state, detail = {}) => {
      if (state === 'idle') return;
      setState(state, state === 'error' ? detail.message || '' : '');
    },
  });
}

retry.addEventListener('click', () => {
  controller?.stop();
  run();
});

run();
