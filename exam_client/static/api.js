// Candidate-side HTTP: one fetch wrapper that sends the session (Bearer token from
// sessionStorage, or the HTTP-only cookie) and turns every failure into an ApiError with
// the server's machine code and its bilingual message (docs/api.md).

export const TOKEN_KEY = 'proctor.candidate.token'; // written by login.js

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0: the server could not be reached
    this.code = code;
  }
}

export function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function forgetToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled
  }
}

/**
 * Fresh ICE servers for this session (issue 20): TURN credentials are short-lived and made
 * per session, so each new peer connection asks for them; ``fallback`` (the list that came
 * with the login) serves when the request fails.
 * @param {string|null} [token]
 * @param {RTCIceServer[]} [fallback]
 * @returns {() => Promise<RTCIceServer[]>}
 */
export function iceServersSource(token, fallback = []) {
  return async () => {
    try {
      const body = await call('/api/ice-servers', { token, timeoutMs: 5000 });
      return body.ice_servers || fallback;
    } catch {
      return fallback;
    }
  };
}

/**
 * @param {string} path
 * @param {{method?: string, json?: unknown, body?: BodyInit, contentType?: string,
 *          token?: string|null, timeoutMs?: number}} [options]
 */
export async function call(path, options = {}) {
  const { method = 'GET', json, body, contentType, timeoutMs = 20000 } = options;
  const token = options.token === undefined ? readToken() : options.token;
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    if (contentType) headers['Content-Type'] = contentType;
    init.body = body;
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  init.signal = abort.signal;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(
      0,
      'network',
      '无法连接考试服务器，正在重试… Cannot reach the exam server; retrying…',
    );
  } finally {
    clearTimeout(timer);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const code = data?.error?.code || `http_${response.status}`;
    const message =
      data?.error?.message ||
      (response.status >= 500
        ? '服务器暂时出错，请稍后重试。 The server had a problem; try again shortly.'
        : `请求失败（HTTP ${response.status}）。 Request failed (HTTP ${response.status}).`);
    throw new ApiError(response.status, code, message);
  }
  return data;
}
