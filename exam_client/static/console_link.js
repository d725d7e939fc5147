// The candidate page's link to the invigilator console (issue 5), self-contained: imported
// once by exam.js, it opens its own WebSocket (/ws/candidate/console) and adds its own
// elements to the page (styled by exam.css: the pages allow no inline style, issue 20).
//
// - Automatic hints (the first rung of the escalation ladder): a banner telling the
//   candidate how to fix a condition (face not visible, phone view lost...), acknowledged
//   as seen once shown.
// - Voice calls started by the invigilator: the invigilator's voice plays through the
//   speakers (the candidate's microphone already reaches the server with the camera); the
//   invigilator ends the call.
//
// Hooks for tests: #console-hint[data-id][data-link=open|closed][hidden], #console-voice[data-state]
// (idle|connecting|live|ended) and its data-bytes-received (audio bytes received).

import { iceServersSource } from './api.js';

const TOKEN_KEY = 'proctor.candidate.token'; // written by login.js
const HINT_SHOW_MS = 20000;
const GATHER_TIMEOUT_MS = 5000;
const STATS_MS = 1000;

function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function el(tag, attrs = {}, text = '') {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

class ConsoleLink {
  constructor() {
    this.token = readToken();
    this.socket = null;
    this.delay = 500;
    this.pending = [];
    this.hintTimer = null;
    this.call = null; // {id, pc, timer}
    this.build();
    this.connect();
  }

  build() {
    this.hint = el('div', { id: 'console-hint', role: 'alert', hidden: '' });
    this.hintText = el('p');
    const ok = el('button', { type: 'button' }, '知道了 OK');
    ok.addEventListener('click', () => this.hideHint());
    this.hint.append(this.hintText, ok);
    this.voice = el('div', { id: 'console-voice', role: 'status', 'data-state': 'idle', hidden: '' });
    this.audio = el('audio', { autoplay: '' });
    document.body.append(this.hint, this.voice, this.audio);
  }

  // ---------------------------------------------------------------- socket

  connect() {
    const url = new URL('/ws/candidate/console', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.token) url.searchParams.set('token', this.token);
    const ws = new WebSocket(url);
    this.socket = ws;
    ws.addEventListener('open', () => {
      this.delay = 500;
      this.hint.dataset.link = 'open';
      while (this.pending.length && ws.readyState === WebSocket.OPEN) ws.send(this.pending.shift());
    });
    ws.addEventListener('message', (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onMessage(msg);
    });
    ws.addEventListener('close', (event) => {
      if (this.socket !== ws) return;
      this.socket = null;
      this.hint.dataset.link = 'closed';
      if (event.code === 4401 || event.code === 4403) return; // the exam page handles login
      const delay = Math.round(this.delay * (0.8 + 0.4 * Math.random()));
      this.delay = Math.min(this.delay * 2, 15000);
      setTimeout(() => this.connect(), delay);
    });
  }

  send(message) {
    const text = JSON.stringify(message);
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(text);
    else this.pending.push(text);
  }

  onMessage(msg) {
    switch (msg?.type) {
      case 'hint':
        this.showHint(msg);
        return;
      case 'voice_call':
        this.answerCall(msg);
        return;
      case 'voice_ended':
        if (this.call && this.call.id === msg.call_id) this.endCall();
        return;
      default:
    }
  }

  // ---------------------------------------------------------------- hints

  showHint(msg) {
    this.hintText.textContent = String(msg.text || '');
    this.hint.dataset.id = String(msg.id);
    this.hint.dataset.code = String(msg.code || '');
    this.hint.hidden = false;
    clearTimeout(this.hintTimer);
    this.hintTimer = setTimeout(() => this.hideHint(), HINT_SHOW_MS);
    const id = Number(msg.id);
    requestAnimationFrame(() => requestAnimationFrame(() => this.send({ type: 'hint_seen', id })));
  }

  hideHint() {
    clearTimeout(this.hintTimer);
    this.hint.hidden = true;
  }

  // ---------------------------------------------------------------- voice

  setVoice(state, text) {
    this.voice.dataset.state = state;
    this.voice.textContent = text;
    this.voice.hidden = state === 'idle';
  }

  async answerCall(msg) {
    // fresh TURN credentials first: the checks below then run without an await between them
    const iceServers = await iceServersSource(this.token)();
    if (this.call && this.call.id === msg.call_id && this.call.pc.connectionState !== 'failed') {
      return; // already answering this call
    }
    this.endCall(false);
    const pc = new RTCPeerConnection({ iceServers });
    const call = (this.call = { id: msg.call_id, pc, timer: null });
    const who = msg.from ? `（${msg.from}）` : '';
    this.setVoice('connecting', `监考老师${who}正在呼叫你… The invigilator is calling you…`);
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('track', (event) => {
      this.audio.srcObject = event.streams[0] || new MediaStream([event.track]);
      this.audio.play().catch(() => {});
    });
    pc.addEventListener('connectionstatechange', () => {
      if (this.call !== call) return;
      if (pc.connectionState === 'connected') {
        this.setVoice('live', `正在与监考老师${who}通话 In a call with the invigilator`);
      } else if (pc.connectionState === 'failed') {
        // try once more: the invigilator may still be there
        setTimeout(() => this.call === call && this.answerCall(msg), 2000);
      }
    });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      const response = await fetch('/api/candidate/voice/offer', {
        method: 'POST',
        credentials: 'same-origin',
        headers,
        body: JSON.stringify({ sdp: pc.localDescription.sdp, type: 'offer', call_id: msg.call_id }),
      });
      const answer = await response.json().catch(() => null);
      if (!response.ok || !answer?.sdp) throw new Error(answer?.error?.code || `HTTP ${response.status}`);
      if (this.call !== call) return;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      call.timer = setInterval(() => this.readStats(call), STATS_MS);
    } catch (error) {
      if (this.call !== call) return;
      this.setVoice('ended', `通话未接通 The call did not connect (${error.message})`);
      this.endCall(false);
    }
  }

  async readStats(call) {
    if (this.call !== call || !call.pc.getStats) return;
    let received = 0;
    (await call.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'audio') received += s.bytesReceived || 0;
    });
    this.voice.dataset.bytesReceived = String(received);
  }

  endCall(show = true) {
    const call = this.call;
    this.call = null;
    if (call) {
      clearInterval(call.timer);
      try {
        call.pc.close();
      } catch {
        // closed
      }
    }
    this.audio.srcObject = null;
    if (show && call) {
      this.setVoice('ended', '通话已结束 The call has ended');
      setTimeout(() => {
        if (!this.call) this.setVoice('idle', '');
      }, 5000);
    }
  }
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => pc.iceGatheringState === 'complete' && done();
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

export const consoleLink = new ConsoleLink();
