// Candidate login: sitting password + ID-card number → POST /api/candidate/login.
// The server sets the session cookie; the token is also kept in sessionStorage so that
// the exam page can send it as a Bearer token / ?token= when a cookie is not available.

import { solveChallenge } from './pow.js';

const TOKEN_KEY = 'proctor.candidate.token'; // also read by exam.js

const form = document.getElementById('login-form');
const passwordInput = document.getElementById('sitting-password');
const idInput = document.getElementById('id-number');
const errorBox = document.getElementById('login-error');
const button = document.getElementById('login-button');

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

// After too many failed logins the server asks for a proof of work (pow.js): about a
// second for the first one; it lets the right credentials in.
async function login(sittingPassword, idNumber, proof = null) {
  let response;
  try {
    response = await fetch('/api/candidate/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ sitting_password: sittingPassword, id_number: idNumber, ...(proof || {}) }),
    });
  } catch {
    throw new Error('无法连接考试服务器，请检查网络后重试。 Cannot reach the exam server; check your network and try again.');
  }
  const body = await response.json().catch(() => null);
  const challenge = body?.error?.challenge;
  if (response.status === 429 && challenge && !proof) {
    showError('正在进行登录验证，请稍候… Checking the login, please wait…');
    const solution = await solveChallenge(challenge, body.error.bits);
    return login(sittingPassword, idNumber, { challenge, solution });
  }
  if (!response.ok) {
    const message = body?.error?.message;
    throw new Error(message || `登录失败（HTTP ${response.status}）。 Login failed (HTTP ${response.status}).`);
  }
  if (!body?.token) {
    throw new Error('服务器应答有误，请稍后重试。 Unexpected answer from the server; try again later.');
  }
  return body;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const sittingPassword = passwordInput.value.trim();
  const idNumber = idInput.value.trim();
  if (!sittingPassword || !idNumber) {
    showError('请填写考试口令和身份证号。 Enter both the sitting password and your ID-card number.');
    (sittingPassword ? idInput : passwordInput).focus();
    return;
  }
  showError('');
  button.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    const body = await login(sittingPassword, idNumber);
    try {
      sessionStorage.setItem(TOKEN_KEY, body.token);
    } catch {
      // storage disabled: the session cookie still works
    }
    location.assign('exam.html');
  } catch (error) {
    showError(error.message);
    button.disabled = false;
    form.removeAttribute('aria-busy');
  }
});

passwordInput.focus();
