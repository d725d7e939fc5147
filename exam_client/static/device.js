// The device-check step: camera, microphone, phone and upload bandwidth, measured here and
// on the server, then reported (POST /api/flow/device/report).
//
// Hooks for tests: #device-results li[data-check][data-ok].

import { call } from './api.js';

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

export function formatRate(bytesPerS) {
  return `${(bytesPerS / 1_000_000).toFixed(2)} MB/s`;
}

export function showReport(list, report) {
  list.replaceChildren();
  const d = report.details || {};
  item(list, 'camera', report.camera_ok, '摄像头', 'Camera',
    d.camera?.server_receives_first_view ? '服务器已收到画面 picture received' : '服务器未收到画面 no picture at the server');
  item(list, 'microphone', report.microphone_ok, '麦克风', 'Microphone',
    `level ${d.microphone?.level ?? 0}`);
  item(list, 'phone', report.phone_ok, '手机（第二视角）', 'Phone (second view)');
  item(list, 'upload', report.upload_ok, '上传带宽', 'Upload',
    `${formatRate(report.upload_bytes_per_s)} (≥ ${formatRate(d.upload?.required_bytes_per_s ?? 0)})`);
  item(list, 'overall', report.passed, '总体', 'Overall', report.passed ? '通过 passed' : '未通过 not passed');
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
  const body = await call('/api/flow/device/report', {
    method: 'POST',
    json: {
      camera,
      microphone,
      client: {
        user_agent: navigator.userAgent,
        client_upload_bytes_per_s: up.client_bytes_per_s,
        server_upload_bytes_per_s: up.bytes_per_s,
      },
    },
  });
  showReport(results, body.report);
  return body;
}
