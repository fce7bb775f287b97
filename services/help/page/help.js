// The person's side of live help. Talks only to this origin; renders everything as text.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { verification: null, token: sessionStorage.getItem("help-session") };
// The page's state, readable from the console (and by the browser test): nothing secret in it
// that the page does not already hold.
window.helpState = state;

function say(element, text) { element.textContent = text; element.hidden = !text; }

async function call(method, path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.detail || `HTTP ${response.status}`);
    error.problem = data;
    error.status = response.status;
    throw error;
  }
  return data;
}

async function loadPlatforms() {
  const select = $("platform");
  for (const platform of await call("GET", "/v1/help/platforms")) {
    const option = document.createElement("option");
    option.value = platform.name;
    option.textContent = platform.display_name;
    select.append(option);
  }
}

async function ask(event) {
  event.preventDefault();
  say($("problem"), "");
  try {
    const started = await call("POST", "/v1/help/verifications", {
      platform: $("platform").value, account: $("account").value,
    });
    state.verification = started.verification_id;
    say($("sent"), started.message);
    $("ask").hidden = true;
    $("check").hidden = false;
    $("code").focus();
  } catch (error) {
    say($("problem"), error.message);
  }
}

async function check(event) {
  event.preventDefault();
  say($("problem"), "");
  try {
    const session = await call(
      "POST", `/v1/help/verifications/${state.verification}/check`, { code: $("code").value },
    );
    state.token = session.session_token;
    sessionStorage.setItem("help-session", state.token);
    showSession();
  } catch (error) {
    const left = error.problem && error.problem.attempts_left;
    say($("problem"), left === undefined ? error.message : `${error.message} (${left} tries left)`);
  }
}

async function showSession() {
  if (!state.token) return;
  try {
    const session = await call("GET", "/v1/help/session", null, state.token);
    $("ask").hidden = true;
    $("check").hidden = true;
    $("verified").hidden = false;
    say($("session"), `Your ${session.platform} account is verified until ` +
      `${new Date(session.expires_at).toLocaleTimeString()}.`);
  } catch {
    sessionStorage.removeItem("help-session");
    state.token = null;
  }
}

function again() {
  $("check").hidden = true;
  $("ask").hidden = false;
  $("code").value = "";
  say($("problem"), "");
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask").addEventListener("submit", ask);
  $("check").addEventListener("submit", check);
  $("again").addEventListener("click", again);
  loadPlatforms().catch((error) => say($("problem"), error.message));
  showSession();
});
