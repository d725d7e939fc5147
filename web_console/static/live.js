// WebRTC for the opened candidate: the live view of one view (the server relays what it
// receives: video, and the microphone on the first view) and the two-way voice call
// (this browser's microphone out, the candidate's microphone in). Offers carry every ICE
// candidate (the server does not trickle), as on the candidate page.

import { ApiError, apiFetch } from "./api.js";

/** Fresh ICE servers (TURN credentials for this console session; issue 20). */
async function iceServers() {
  try {
    return (await apiFetch("/api/ice-servers", { timeoutMs: 5000 })).ice_servers || [];
  } catch {
    return [];
  }
}

const GATHER_TIMEOUT_MS = 5000;
const STATS_MS = 1000;

function iceGatheringComplete(pc, timeoutMs = GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      window.clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const timer = window.setTimeout(finish, timeoutMs);
    pc.addEventListener("icegatheringstatechange", onChange);
  });
}

/** Sum of one kind of RTP stats (bytesReceived of inbound-rtp, bytesSent of outbound-rtp). */
export async function rtpBytes(pc, type, kind = "audio") {
  let total = 0;
  if (!pc) return total;
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === type && (s.kind || s.mediaType) === kind) {
      total += type === "inbound-rtp" ? s.bytesReceived || 0 : s.bytesSent || 0;
    }
  });
  return total;
}

/**
 * One view of one candidate, live. Events on the figure: data-state = connecting | live |
 * unavailable | failed | idle. Tries again every few seconds while the view is down.
 */
export class LiveView {
  constructor(candidateId, view, figure) {
    this.candidateId = candidateId;
    this.view = view;
    this.figure = figure;
    this.video = figure.querySelector("video");
    this.stateEl = figure.querySelector(".live-state");
    this.pc = null;
    this.stopped = false;
    this.retryTimer = null;
  }

  setState(state, text) {
    this.figure.dataset.state = state;
    if (this.stateEl) this.stateEl.textContent = text || "";
  }

  async start() {
    this.stopped = false;
    window.clearTimeout(this.retryTimer);
    this.closePc();
    this.setState("connecting", "connecting… 连接中");
    const servers = await iceServers();
    if (this.stopped) return; // stopped while asking for the ICE servers
    const pc = (this.pc = new RTCPeerConnection({ iceServers: servers }));
    pc.addTransceiver("video", { direction: "recvonly" });
    if (this.view === "first") pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.addEventListener("track", (event) => {
      stream.addTrack(event.track);
      this.video.srcObject = stream;
      this.video.play().catch(() => {});
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") this.setState("live", "live 实时");
      else if (["failed", "disconnected", "closed"].includes(pc.connectionState)) {
        this.setState("failed", "lost 断开");
        this.retry();
      }
    });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
      if (pc !== this.pc) return;
      const answer = await apiFetch(
        `/api/console/candidates/${encodeURIComponent(this.candidateId)}/live/offer`,
        { method: "POST", body: { sdp: pc.localDescription.sdp, type: "offer", view: this.view } },
      );
      if (pc !== this.pc) return;
      await pc.setRemoteDescription(answer);
    } catch (err) {
      if (pc !== this.pc) return;
      const down = err instanceof ApiError && err.code === "not_streaming";
      this.setState(down ? "unavailable" : "failed", down ? "not streaming 未推流" : err.message);
      this.closePc();
      this.retry();
    }
  }

  retry(ms = 5000) {
    if (this.stopped) return;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.start(), ms);
  }

  closePc() {
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      try {
        pc.close();
      } catch {
        /* closed */
      }
    }
  }

  stop() {
    this.stopped = true;
    window.clearTimeout(this.retryTimer);
    this.closePc();
    this.video.srcObject = null;
    this.setState("idle", "");
  }
}

/**
 * A voice call with one candidate. Dispatches "state" (detail {state, message?}) with
 * state = starting | connecting | live | ended | failed, and "stats" (detail {sent,
 * received}: audio bytes) every second while the call is up.
 */
export class VoiceCall extends EventTarget {
  constructor(candidateId, audioEl) {
    super();
    this.candidateId = candidateId;
    this.audioEl = audioEl;
    this.pc = null;
    this.mic = null;
    this.callId = null;
    this.state = "idle";
    this.statsTimer = null;
  }

  setState(state, message = "") {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, message } }));
  }

  async start() {
    this.setState("starting");
    try {
      this.mic = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (err) {
      this.setState("failed", `Microphone not available 麦克风不可用: ${err.message || err.name}`);
      return;
    }
    const pc = (this.pc = new RTCPeerConnection({ iceServers: await iceServers() }));
    for (const track of this.mic.getAudioTracks()) pc.addTrack(track, this.mic);
    pc.addEventListener("track", (event) => {
      this.audioEl.srcObject = event.streams[0] || new MediaStream([event.track]);
      this.audioEl.play().catch(() => {});
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") this.setState("live");
      else if (pc.connectionState === "failed") {
        this.setState("failed", "Connection lost 连接断开");
        this.hangUp();
      }
    });
    this.setState("connecting");
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
      const answer = await apiFetch(
        `/api/console/candidates/${encodeURIComponent(this.candidateId)}/voice/offer`,
        { method: "POST", body: { sdp: pc.localDescription.sdp, type: "offer" } },
      );
      this.callId = answer.call_id;
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    } catch (err) {
      this.setState("failed", err.message || "Could not start the call 无法开始通话");
      this.hangUp();
      return;
    }
    this.statsTimer = window.setInterval(() => this.readStats(), STATS_MS);
  }

  async readStats() {
    if (!this.pc) return;
    const [sent, received] = await Promise.all([
      rtpBytes(this.pc, "outbound-rtp"),
      rtpBytes(this.pc, "inbound-rtp"),
    ]);
    this.dispatchEvent(new CustomEvent("stats", { detail: { sent, received } }));
  }

  hangUp() {
    window.clearInterval(this.statsTimer);
    this.statsTimer = null;
    if (this.pc) {
      try {
        this.pc.close();
      } catch {
        /* closed */
      }
      this.pc = null;
    }
    if (this.mic) {
      for (const track of this.mic.getTracks()) track.stop();
      this.mic = null;
    }
    this.audioEl.srcObject = null;
  }

  /** End the call (the server records it and tells the candidate's page). The server is
   * told first: closing the connection first made it record "invigilator connection
   * lost" before the request arrived. */
  async end() {
    const pc = this.pc;
    this.pc = null; // its closing is ours, not a lost connection
    try {
      await apiFetch(`/api/console/candidates/${encodeURIComponent(this.candidateId)}/voice`, {
        method: "DELETE",
        timeoutMs: 5000,
      });
    } finally {
      this.pc = pc;
      this.hangUp();
      this.setState("ended");
    }
  }
}
