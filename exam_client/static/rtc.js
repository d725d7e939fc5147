// Send a local MediaStream to the proctoring server over WebRTC, and keep it sent.
//
//   const controller = startStream({ view: 'first', stream, onState });
//   controller.stop();
//
// One RTCPeerConnection per attempt: add the tracks, createOffer, wait until ICE
// gathering is complete (the server wants every candidate in the offer), POST the offer
// to /api/candidate/rtc/offer with the view, apply the answer. When the connection fails
// or stays disconnected, a new offer is made after a backoff (the server replaces the
// previous connection of the view).
//
// onState(state, detail) gets:
//   'connecting'    first attempt under way
//   'streaming'     connected, media flowing
//   'reconnecting'  lost (or could not reach the server); detail.delayMs until next try
//   'error'         gave up; detail.code is the server's error code
//                   ('not_authenticated' means: log in again)
// Used by the exam page (first view) and the phone page (second view).

const DEFAULT_OFFER_URL = '/api/candidate/rtc/offer';

class OfferError extends Error {
  constructor(code, message, status, retry) {
    super(message);
    this.code = code;
    this.status = status;
    this.retry = retry;
  }
}

function iceGatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onChange);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === 'complete') finish();
    };
    const onCandidate = (event) => {
      if (!event.candidate) finish();
    };
    // an unreachable STUN/TURN server must not hold the offer back for ever
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener('icegatheringstatechange', onChange);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

// the least video bit rate a reduced frame rate is given (bits per second)
const MIN_REDUCED_BITRATE = 100_000;

/**
 * The video bit rate for sending at `rate` frames/s: `maxBitrate` at the full rate,
 * the same bits per frame below it (issue 22: a page sending 3 of its 10 frames a second
 * with the full rate's bits would make each frame three times as large, for the server
 * to receive, decrypt and decode, while analysis only needs the full rate's picture).
 */
export function bitrateAt(maxBitrate, rate, fullRate) {
  if (!maxBitrate || !(rate > 0) || !(fullRate > 0) || rate >= fullRate) return maxBitrate;
  return Math.max(MIN_REDUCED_BITRATE, Math.round((maxBitrate * rate) / fullRate));
}

async function limitVideo(pc, { maxBitrate, maxFramerate }) {
  for (const sender of pc.getSenders()) {
    if (!sender.track || sender.track.kind !== 'video') continue;
    try {
      const params = sender.getParameters();
      if (!params.encodings || params.encodings.length === 0) continue;
      for (const encoding of params.encodings) {
        if (maxBitrate) encoding.maxBitrate = maxBitrate;
        if (maxFramerate) encoding.maxFramerate = maxFramerate;
      }
      await sender.setParameters(params);
    } catch (error) {
      console.debug('setParameters failed (kept browser defaults)', error);
    }
  }
}

async function postOffer(url, token, body) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers,
      body: JSON.stringify(body),
    });
  } catch {
    throw new OfferError('network', 'cannot reach the server', 0, true);
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const code = answer?.error?.code || `http_${response.status}`;
    const message = answer?.error?.message || `HTTP ${response.status}`;
    // 5xx, 408 and 429 may pass, and an offer overtaken by a newer one of this view
    // (offer_superseded); other 4xx will not get better by trying again
    const retry =
      response.status >= 500 ||
      response.status === 408 ||
      response.status === 429 ||
      code === 'offer_superseded';
    throw new OfferError(code, message, response.status, retry);
  }
  if (!answer?.sdp) throw new OfferError('bad_answer', 'the answer has no SDP', 200, true);
  return answer;
}

/**
 * @param {object} options
 * @param {'first'|'second'} options.view
 * @param {MediaStream} options.stream   owned by the caller (stop() leaves it running)
 * @param {(state: string, detail?: object) => void} [options.onState]
 * @param {RTCIceServer[]|(() => Promise<RTCIceServer[]>)} [options.iceServers]  a list, or
 *        a function asked before each connection (fresh TURN credentials)
 * @param {string} [options.token]       Bearer token; without it the session cookie is used
 * @param {number} [options.maxBitrate]  bits per second for the video sender at the full
 *        rate (below it, the same bits per frame: bitrateAt)
 * @param {number} [options.maxFramerate]  the full rate
 * @param {boolean} [options.followServerRate]  start at the rate the server's answer names
 *        (send_fps: the analysis rate while nobody watches live, issue 22); the caller
 *        passes later changes (send_rate messages on its socket) to setMaxFramerate
 */
export function startStream({
  view,
  stream,
  onState = () => {},
  iceServers = [],
  token = null,
  maxBitrate = 600_000,
  maxFramerate = null,
  followServerRate = false,
  offerUrl = DEFAULT_OFFER_URL,
  gatherTimeoutMs = 8000,
  minDelayMs = 1000,
  maxDelayMs = 15000,
} = {}) {
  let pc = null;
  let state = 'idle';
  let stopped = false;
  let failures = 0;
  let timer = null;
  let rate = maxFramerate; // the frame rate the video is sent at now

  const emit = (next, detail = {}) => {
    state = next;
    try {
      onState(next, detail);
    } catch (error) {
      console.error(error);
    }
  };

  const closePc = () => {
    if (pc) {
      const old = pc;
      pc = null;
      try {
        old.close();
      } catch {
        // already closed
      }
    }
  };

  const normaliseIce = (servers) =>
    (servers || [])
      .map((s) => (typeof s === 'string' ? { urls: s } : s))
      .filter((s) => s && s.urls);

  function scheduleReconnect(reason) {
    if (stopped || timer) return;
    failures += 1;
    const base = Math.min(maxDelayMs, minDelayMs * 2 ** (failures - 1));
    const delayMs = Math.round(base * (0.8 + 0.4 * Math.random()));
    emit('reconnecting', { delayMs, reason });
    timer = setTimeout(() => {
      timer = null;
      if (stopped) return;
      if (pc && pc.connectionState === 'connected') {
        failures = 0;
        emit('streaming');
        return;
      }
      connect();
    }, delayMs);
  }

  function onConnectionState(mine) {
    if (mine !== pc || stopped) return;
    switch (mine.connectionState) {
      case 'connected':
        failures = 0;
        if (timer) {
          clearTimeout(timer);
          timer = null;
        }
        emit('streaming');
        break;
      case 'failed':
      case 'disconnected':
        scheduleReconnect(mine.connectionState);
        break;
      default:
        break;
    }
  }

  async function connect() {
    if (stopped) return;
    closePc();
    if (failures === 0) emit('connecting');
    const servers = typeof iceServers === 'function' ? await iceServers() : iceServers;
    if (stopped) return;
    const mine = new RTCPeerConnection({ iceServers: normaliseIce(servers) });
    pc = mine;
    mine.addEventListener('connectionstatechange', () => onConnectionState(mine));
    try {
      for (const track of stream.getTracks()) mine.addTrack(track, stream);
      await mine.setLocalDescription(await mine.createOffer());
      await iceGatheringComplete(mine, gatherTimeoutMs);
      if (mine !== pc || stopped) return;
      const local = mine.localDescription;
      const answer = await postOffer(offerUrl, token, {
        sdp: local.sdp,
        type: local.type,
        view,
      });
      if (mine !== pc || stopped) return;
      await mine.setRemoteDescription({ type: answer.type || 'answer', sdp: answer.sdp });
      if (followServerRate && answer.send_fps > 0) rate = answer.send_fps;
      await limitVideo(mine, {
        maxBitrate: bitrateAt(maxBitrate, rate, maxFramerate),
        maxFramerate: rate,
      });
    } catch (error) {
      if (mine !== pc || stopped) return;
      if (error instanceof OfferError && !error.retry) {
        closePc();
        stopped = error.code === 'not_authenticated' || stopped;
        emit('error', { code: error.code, message: error.message, status: error.status });
        return;
      }
      console.warn('stream attempt failed', error);
      scheduleReconnect(error.code || String(error));
    }
  }

  const onOnline = () => {
    // the network came back: do not wait out the backoff
    if (!stopped && timer) {
      clearTimeout(timer);
      timer = null;
      connect();
    }
  };
  window.addEventListener('online', onOnline);
  let listening = true;

  connect();

  return {
    get state() {
      return state;
    },
    get pc() {
      return pc;
    },
    /** Make a new offer now (e.g. after a "Retry" click). */
    restart() {
      if (timer) {
        clearTimeout(timer);
        timer = null;
      }
      stopped = false;
      failures = 0;
      if (!listening) {
        window.addEventListener('online', onOnline);
        listening = true;
      }
      connect();
    },
    /** The frame rate the video is sent at now (null: the browser's). */
    get maxFramerate() {
      return rate;
    },
    /** Send the video at this frame rate from now on (setParameters: no new offer). */
    async setMaxFramerate(fps) {
      if (!(fps > 0)) return;
      rate = fps;
      if (pc) {
        await limitVideo(pc, {
          maxBitrate: bitrateAt(maxBitrate, rate, maxFramerate),
          maxFramerate: rate,
        });
      }
    },
    /** Close the connection; the stream's tracks are left to the caller. */
    stop() {
      stopped = true;
      if (timer) {
        clearTimeout(timer);
        timer = null;
      }
      window.removeEventListener('online', onOnline);
      listening = false;
      closePc();
      emit('idle');
    },
  };
}
