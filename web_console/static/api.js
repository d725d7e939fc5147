// HTTP helpers for the console: one fetch wrapper that turns every failure into an
// ApiError carrying the server's machine code and human message (docs/api.md:
// {"error": {"code", "message"}}), plus the staff session kept in sessionStorage.

import { solveChallenge } from "/exam/pow.js"; // the one copy, shared with the candidates' login

const TOKEN_KEY = "proctor.staff.token";
const USER_KEY = "proctor.staff.user";

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the server could not be reached
   * @param {string} code stable machine code from the server (or a local one)
   * @param {string} message sentence for a person
   */
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

// ---- session ---------------------------------------------------------------------------

function readStorage(key) {
  try {
    return window.sessionStorage.getItem(key);
  } catch {
    return null; // storage disabled: fall back to the HTTP-only cookie alone
  }
}

function writeStorage(key, value) {
  try {
    if (value === null) window.sessionStorage.removeItem(key);
    else window.sessionStorage.setItem(key, value);
  } catch {
    /* storage disabled: the cookie still authenticates */
  }
}

export function getToken() {
  return readStorage(TOKEN_KEY);
}

/** @returns {{id: number, username: string, display_name: string, role: string} | null} */
export function getUser() {
  const raw = readStorage(USER_KEY);
  if (!raw) return null;
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}

export function saveSession(token, user) {
  writeStorage(TOKEN_KEY, token || null);
  writeStorage(USER_KEY, user ? JSON.stringify(user) : null);
}

export function clearSession() {
  writeStorage(TOKEN_KEY, null);
  writeStorage(USER_KEY, null);
}

// ---- fetch -----------------------------------------------------------------------------

let unauthorizedHandler = null;

/** Called (once per failing request) whenever the server answers 401. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

const FALLBACK_MESSAGES = {
  400: "The request was not accepted. 请求无效。",
  401: "Please log in again. 请重新登录。",
  403: "You are not allowed to do this. 无权限。",
  404: "Not found. 未找到。",
  422: "Some input is not valid. 输入无效。",
  429: "Too many requests, please wait. 请求过多，请稍候。",
};

async function errorFromResponse(response) {
  let code = `http_${response.status}`;
  let message = FALLBACK_MESSAGES[response.status] ||
    (response.status >= 500
      ? "The server had a problem. 服务器出错，请稍后重试。"
      : `Request failed (${response.status}). 请求失败。`);
  try {
    const body = await response.json();
    if (body && typeof body === "object" && body.error && typeof body.error === "object") {
      if (body.error.code) code = String(body.error.code);
      if (body.error.message) message = String(body.error.message);
      if (body.error.challenge) {
        const error = new ApiError(response.status, code, message);
        error.challenge = String(body.error.challenge);
        error.bits = Number(body.error.bits);
        return error;
      }
    } else if (body && typeof body.detail === "string") {
      message = body.detail; // plain FastAPI HTTPException shape
    }
  } catch {
    /* not JSON: keep the fallback */
  }
  return new ApiError(response.status, code, message);
}

/**
 * Call the server. Resolves with the parsed JSON body (or null when empty); rejects with
 * ApiError. Sends the session cookie and, if known, the bearer token.
 *
 * @param {string} path absolute path such as "/api/console/sittings"
 * @param {{method?: string, body?: unknown, signal?: AbortSignal, timeoutMs?: number}} [options]
 */
export async function apiFetch(path, options = {}) {
  const { method = "GET", body, signal, timeoutMs = 15000 } = options;
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }

  const timeout = new AbortController();
  const timer = window.setTimeout(() => timeout.abort(), timeoutMs);
  const onOuterAbort = () => timeout.abort();
  if (signal) {
    if (signal.aborted) timeout.abort();
    else signal.addEventListener("abort", onOuterAbort, { once: true });
  }
  init.signal = timeout.signal;

  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (signal && signal.aborted) throw new ApiError(0, "aborted", "Request cancelled.");
    if (timeout.signal.aborted) {
      throw new ApiError(0, "timeout", "The server did not answer in time. 服务器响应超时。");
    }
    throw new ApiError(0, "network_error", "Cannot reach the server. 无法连接服务器。");
  } finally {
    window.clearTimeout(timer);
    if (signal) signal.removeEventListener("abort", onOuterAbort);
  }

  if (!response.ok) {
    const error = await errorFromResponse(response);
    if (response.status === 401 && unauthorizedHandler) unauthorizedHandler(error);
    throw error;
  }
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(response.status, "bad_response", "The server sent an unreadable answer.");
  }
}

/**
 * POST /api/staff/login. Past the rate limit the server asks for a proof of work
 * (docs/api.md "Login rate limit"): solve it (about a second) and send the login again.
 */
export async function staffLogin(username, password) {
  try {
    return await apiFetch("/api/staff/login", { method: "POST", body: { username, password } });
  } catch (error) {
    if (!(error instanceof ApiError) || !error.challenge) throw error;
    const solution = await solveChallenge(error.challenge, error.bits);
    return apiFetch("/api/staff/login", {
      method: "POST",
      body: { username, password, challenge: error.challenge, solution },
    });
  }
}
