// Staff login: POST /api/staff/login, keep the token and user for this tab, go to the room.

import { saveSession, staffLogin } from "./api.js";

const form = document.getElementById("login-form");
const username = document.getElementById("username");
const password = document.getElementById("password");
const submit = document.getElementById("login-submit");
const errorBox = document.getElementById("login-error");
const notice = document.getElementById("login-notice");

const params = new URLSearchParams(window.location.search);
if (params.get("expired")) {
  notice.textContent = "Your session has ended, please log in again. 会话已过期，请重新登录。";
  notice.hidden = false;
} else if (params.get("logout")) {
  notice.textContent = "You have logged out. 已退出登录。";
  notice.hidden = false;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function clearError() {
  errorBox.textContent = "";
  errorBox.hidden = true;
  username.removeAttribute("aria-invalid");
  password.removeAttribute("aria-invalid");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  const user = username.value.trim();
  const pass = password.value;
  if (!user || !pass) {
    showError("Enter your username and password. 请输入用户名和密码。");
    (user ? password : username).setAttribute("aria-invalid", "true");
    (user ? password : username).focus();
    return;
  }

  submit.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    const body = await staffLogin(user, pass);
    saveSession(body && body.token, body && body.user);
    // reviewers work on the evidence timelines; everyone else starts in the room
    const role = body && body.user && body.user.role;
    window.location.assign(role === "reviewer" ? "review.html" : "room.html");
  } catch (err) {
    showError(err.message || "Login failed. 登录失败。");
    password.value = "";
    password.setAttribute("aria-invalid", "true");
    password.focus();
    submit.disabled = false;
    form.removeAttribute("aria-busy");
  }
});
