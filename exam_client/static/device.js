// The device-check step: camera, microphone, phone and upload bandwidth, measured here and
// on the server, and the network (network.js: the TURN relay over UDP/TCP/TLS, round trip
// and sustained upload over the exam's own path, advice), then reported (POST
// /api/flow/device/report; the network part is advice and does not fail the check).
//
// Hooks for tests: #device-results li[data-check][data-ok], li[data-check="network-advice"]
// [data-code].

import { call } from './api.js';
import { ADVICE, HIGH_RTT_MS, NEEDED_UPLOAD_BYTES_PER_S, networkCheck } from './network.js';

const UPLOAD_BYTES = 4 * 1024 * 1024;
const LISTEN_MS = 3000;

function randomBytes(size) {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
  }
  return data;
}

/** The loudest RMS level (0-1) the microphone gives within LISTEN_MS. */
async function microphoneLevel(stream) {
  const track = stream?.getAudioTracks()[0];
  if (!track || track.readyState !== 'live') return { ok: false, level: 0, reason: 'no track' };
  const Context = window.AudioContext || window.webkitAudioContext;
  const context = new Context();
  try {
    await context.resume().catch(() => {});
    const source = context.createMediaStreamSource(new MediaStream([track]));
    const analyser = context.createAnalyser();
    analyser.fftSize = 2048;
    source.connect(analyser);
    const buffer = new Float32Array(analyser.fftSize);
    let max = 0;
    const until = performance.now() + LISTEN_MS;
    while (performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      analyser.getFloatTimeDomainData(buffer);
      let sum = 0;
      for (const v of buffer) sum += v * v;
      max = Math.max(max, Math.sqrt(sum / buffer.length));
    }
    return { ok: true, level: Number(max.toFixed(4)), label: track.label };
  } finally {
    context.close().catch(() => {});
  }
}

async function upload() {
  const data = randomBytes(UPLOAD_BYTES);
  const started = performance.now();
  const result = await call('/api/flow/device/upload', {
    method: 'POST',
    body: new Blob([data]),
    contentType: 'application/octet-stream',
    timeoutMs: 120000,
  });
  const seconds = (performance.now() - started) / 1000;
  return { ...result, client_bytes_per_s: Math.round(UPLOAD_BYTES / Math.max(seconds, 0.001)) };
}

function item(list, check, ok, zh, en, detail = '') {
  const li = document.createElement('li');
  li.dataset.check = check;
  li.dataset.ok = String(ok);
  li.textContent = `${ok ? '✓' : '✗'} ${zh} ${en}${detail ? ` — ${detail}` : ''}`;
  list.append(li);
}

/** A microphone's RMS level (0-1) on the meter's 0-100 scale: a speaking voice (about
 *  0.02-0.2 RMS) shows mid-bar. */
export function micScale(rms) {
  return Math.min(100, Math.round(Math.sqrt(Math.max(0, rms)) * 160));
}

/** Bytes per second in both units people meet: MB/s (megabytes, what the exam requires)
 *  and Mbit/s (megabits, what internet plans quote): 2 MB/s = 16 Mbit/s. */
export function formatRate(bytesPerS) {
  const mbits = (bytesPerS * 8) / 1_000_000;
  return `${(bytesPerS / 1_000_000).toFixed(2)} MB/s (${mbits.toFixed(mbits < 10 ? 1 : 0)} Mbit/s)`;
}

export function showReport(list, report) {
  list.replaceChildren();
  const d = report.details || {};
  item(list, 'camera', report.camera_ok, '摄像头', 'Camera',
    d.camera?.server_receives_first_view ? '服务器已收到画面 picture received' : '服务器未收到画面 no picture at the server');
  item(list, 'microphone', report.microphone_ok, '麦克风', 'Microphone',
    `音量 level ${micScale(d.microphone?.level ?? 0)} / 100`);
  item(list, 'phone', report.phone_ok, '手机（第二视角）', 'Phone (second view)');
  item(list, 'upload', report.upload_ok, '上传带宽', 'Upload',
    `${formatRate(report.upload_bytes_per_s)} (≥ ${formatRate(d.upload?.required_bytes_per_s ?? 0)})`);
  showNetwork(list, d.client || {});
  item(list, 'overall', report.passed, '总体', 'Overall', report.passed ? '通过 passed' : '未通过 not passed');
}

function showNetwork(list, c) {
  if (c.network_advice === undefined) return;
  const mark = (v) => (v ? '✓' : '✗');
  const relayOk = Boolean(c.turn_udp || c.turn_tcp || c.turn_tls) || !c.turn_tested;
  item(list, 'network-relay', relayOk, '中继服务器', 'Relay (TURN)',
    c.turn_tested
      ? `UDP ${mark(c.turn_udp)} TCP ${mark(c.turn_tcp)} TLS ${mark(c.turn_tls)}`
      : '未配置 none configured');
  const rttOk = c.rtt_ms !== null && c.rtt_ms !== undefined && c.rtt_ms <= HIGH_RTT_MS;
  item(list, 'network-rtt', rttOk, '网络延迟', 'Round trip',
    rttOk || c.rtt_ms ? `${c.rtt_ms} ms${c.network_path ? ` (${c.network_path})` : ''}` : '—');
  const rate = c.relay_upload_bytes_per_s || 0;
  item(list, 'network-upload', rate >= NEEDED_UPLOAD_BYTES_PER_S, '考试通道上传', 'Upload on the exam path',
    `${formatRate(rate)} (≥ ${formatRate(NEEDED_UPLOAD_BYTES_PER_S)})`);
  for (const code of String(c.network_advice).split(',').filter(Boolean)) {
    const li = document.createElement('li');
    li.dataset.check = 'network-advice';
    li.dataset.code = code;
    li.dataset.ok = String(code === 'ok');
    li.textContent = ADVICE[code] || code;
    list.append(li);
  }
}

/**
 * @param {{stream: MediaStream|null, streaming: boolean, results: HTMLElement}} o
 * @returns the report and the new flow state
 */
export async function runDeviceCheck({ stream, streaming, results }) {
  results.replaceChildren();
  const video = stream?.getVideoTracks()[0];
  const settings = video?.getSettings?.() || {};
  const camera = {
    ok: Boolean(video && video.readyState === 'live'),
    streaming,
    width: settings.width || null,
    height: settings.height || null,
    label: video?.label || null,
  };
  item(results, 'running', true, '正在检测…', 'Checking…');
  const microphone = await microphoneLevel(stream);
  const up = await upload();
  const net = await networkCheck();
  const body = await call('/api/flow/device/report', {
    method: 'POST',
    json: {
      camera,
      microphone,
      client: {
        user_agent: navigator.userAgent,
        client_upload_bytes_per_s: up.client_bytes_per_s,
        server_upload_bytes_per_s: up.bytes_per_s,
        turn_tested: net.turn.tested,
        turn_udp: net.turn.udp,
        turn_tcp: net.turn.tcp,
        turn_tls: net.turn.tls,
        rtt_ms: net.probe.rtt_ms ?? null,
        relay_upload_bytes_per_s: net.probe.upload_bytes_per_s ?? 0,
        network_path: net.probe.path || null,
        network_advice: net.advice.join(','),
      },
    },
  });
  showReport(results, body.report);
  return body;
}
