// The device check's network check (issue 20): can this network reach the TURN relay over
// UDP, TCP and TLS; the round trip and a sustained upload over the path the exam's media
// will take (a WebRTC data channel to the server with the same ICE servers, POST
// /api/network/probe); and, in Chinese and English, what to change when something fails.

import { call, iceServersSource } from './api.js';

const GATHER_MS = 8000;
const OPEN_MS = 15000;
const PINGS = 5;
const UPLOAD_MS = 5000;
const CHUNK = 16 * 1024;
/** what the exam sends: the camera (600 kbit/s), the microphone, with headroom */
export const NEEDED_UPLOAD_BYTES_PER_S = 125_000;
export const HIGH_RTT_MS = 400;

export const ADVICE = {
  relay_unreachable:
    '无法连接中继服务器：请换用其他网络（如手机热点），或请网络管理员放行 TCP 443 端口和 UDP 3478 端口。 ' +
    'The relay server cannot be reached: use another network (a phone hotspot, for example), or ask ' +
    'the network administrator to allow TCP port 443 and UDP port 3478.',
  udp_blocked:
    '您的网络阻止了 UDP：考试画面将经 TLS 中继传输，可以考试，但若能换用允许 UDP 的网络（家庭宽带、手机热点）会更稳定。 ' +
    'Your network blocks UDP: the exam will go through the relay over TLS, which works; a network ' +
    'that allows UDP (home broadband, a phone hotspot) is steadier.',
  no_path:
    '画面无法到达考试服务器：请换用其他网络，关闭 VPN 或代理后重试。 ' +
    'The picture cannot reach the exam server: try another network, and turn off any VPN or proxy.',
  high_rtt:
    '网络延迟较高：请靠近路由器、改用有线网络，或关闭其他占用网络的设备。 ' +
    'The network is slow to answer: move closer to the router, use a cable, or stop other devices ' +
    'using the network.',
  slow_upload:
    '上传带宽不足：请关闭其他上传或视频通话的程序和设备，靠近路由器或改用有线网络。 ' +
    'Upload too slow for the exam: close other programs and devices that upload or make video ' +
    'calls, move closer to the router or use a cable.',
  ok: '网络良好。 The network is fine.',
};

function transportOf(url) {
  if (url.startsWith('turns:')) return 'tls';
  const m = /[?&]transport=(udp|tcp)/.exec(url);
  return m ? m[1] : 'udp';
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Is a relay allocated at this one TURN URL? {ok, ms} */
async function relayAt(server, url) {
  const pc = new RTCPeerConnection({
    iceServers: [{ ...server, urls: [url] }],
    iceTransportPolicy: 'relay',
  });
  const started = performance.now();
  try {
    pc.createDataChannel('reach');
    const found = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), GATHER_MS);
      pc.addEventListener('icecandidate', (event) => {
        if (event.candidate && event.candidate.type === 'relay') {
          clearTimeout(timer);
          resolve(true);
        } else if (!event.candidate) {
          clearTimeout(timer);
          resolve(false);
        }
      });
    });
    await pc.setLocalDescription(await pc.createOffer());
    const ok = await found;
    return { ok, ms: ok ? Math.round(performance.now() - started) : null };
  } finally {
    pc.close();
  }
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_MS);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function opened(channel) {
  if (channel.readyState === 'open') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), OPEN_MS);
    channel.addEventListener('open', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function selectedPath(pc) {
  const stats = await pc.getStats();
  let pairId = null;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
  });
  const pair = pairId && stats.get(pairId);
  const local = pair && stats.get(pair.localCandidateId);
  if (!local) return null;
  return local.candidateType === 'relay' ? `relay/${local.relayProtocol || '?'}` : local.candidateType;
}

/** Round trip (median of PINGS) and a sustained upload over the exam's own path. */
async function probe(servers) {
  const pc = new RTCPeerConnection({ iceServers: servers });
  const channel = pc.createDataChannel('probe', { ordered: true });
  channel.binaryType = 'arraybuffer';
  const inbox = [];
  let waiter = null;
  channel.addEventListener('message', (event) => {
    inbox.push(event.data);
    if (waiter) waiter();
  });
  const next = async (match, ms) => {
    const until = performance.now() + ms;
    for (;;) {
      const i = inbox.findIndex(match);
      if (i >= 0) return inbox.splice(i, 1)[0];
      const left = until - performance.now();
      if (left <= 0) return null;
      await new Promise((resolve) => {
        waiter = resolve;
        setTimeout(resolve, left);
      });
      waiter = null;
    }
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const answer = await call('/api/network/probe', {
      method: 'POST',
      json: { sdp: pc.localDescription.sdp, type: 'offer' },
    });
    await pc.setRemoteDescription(answer);
    if (!(await opened(channel))) return { ok: false };
    const path = await selectedPath(pc);
    const rtts = [];
    for (let i = 0; i < PINGS; i += 1) {
      const text = `ping:${i}:${Math.random()}`;
      const sent = performance.now();
      channel.send(text);
      if ((await next((m) => m === text, 3000)) !== null) rtts.push(performance.now() - sent);
    }
    rtts.sort((a, b) => a - b);
    const rtt = rtts.length ? Math.round(rtts[Math.floor(rtts.length / 2)]) : null;
    // sustained upload: keep the channel's buffer full for UPLOAD_MS
    const chunk = new Uint8Array(CHUNK);
    crypto.getRandomValues(chunk);
    channel.bufferedAmountLowThreshold = 256 * 1024;
    let sent = 0;
    const started = performance.now();
    while (performance.now() - started < UPLOAD_MS && channel.readyState === 'open') {
      if (channel.bufferedAmount > 1024 * 1024) {
        await Promise.race([
          new Promise((resolve) =>
            channel.addEventListener('bufferedamountlow', resolve, { once: true })),
          sleep(500),
        ]);
        continue;
      }
      channel.send(chunk);
      sent += CHUNK;
    }
    // the server's count of what arrived, once the buffer has drained (or 3 s on)
    let report = null;
    const until = performance.now() + 3000;
    while (performance.now() < until) {
      const m = await next((x) => typeof x === 'string' && x.startsWith('{'), until - performance.now());
      if (m === null) break;
      report = JSON.parse(m);
      if (report.bytes >= sent - CHUNK) break;
    }
    const rate = report && report.seconds > 0 ? Math.round(report.bytes / report.seconds) : 0;
    return { ok: true, path, rtt_ms: rtt, upload_bytes_per_s: rate, upload_bytes: report?.bytes ?? 0 };
  } catch (error) {
    return { ok: false, error: String(error?.message || error) };
  } finally {
    channel.close();
    pc.close();
  }
}

/** Advice codes (keys of ADVICE) for a result. */
export function adviceFor(result) {
  const codes = [];
  const t = result.turn;
  if (t.tested && !t.udp && !t.tcp && !t.tls) codes.push('relay_unreachable');
  else if (t.tested && !t.udp) codes.push('udp_blocked');
  if (!result.probe.ok) codes.push('no_path');
  else {
    if (result.probe.rtt_ms === null || result.probe.rtt_ms > HIGH_RTT_MS) codes.push('high_rtt');
    if (result.probe.upload_bytes_per_s < NEEDED_UPLOAD_BYTES_PER_S) codes.push('slow_upload');
  }
  return codes.length ? codes : ['ok'];
}

/**
 * The whole check. Returns {turn: {tested, udp, tcp, tls, ms: {...}}, probe: {ok, path,
 * rtt_ms, upload_bytes_per_s}, advice: [code...], ok}.
 */
export async function networkCheck() {
  const servers = await iceServersSource()();
  const turn = { tested: false, udp: false, tcp: false, tls: false, ms: {} };
  for (const server of servers) {
    const urls = Array.isArray(server.urls) ? server.urls : [server.urls];
    for (const url of urls) {
      if (!/^turns?:/.test(url)) continue;
      turn.tested = true;
      const kind = transportOf(url);
      const got = await relayAt(server, url);
      turn[kind] = turn[kind] || got.ok;
      if (got.ok) turn.ms[kind] = got.ms;
    }
  }
  const result = { turn, probe: await probe(servers) };
  result.advice = adviceFor(result);
  result.ok = result.probe.ok && !result.advice.includes('slow_upload');
  return result;
}
