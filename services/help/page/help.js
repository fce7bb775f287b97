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
    const chatId = sessionStorage.getItem("help-chat");
    if (chatId) joinChat(chatId);
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

// Live chat --------------------------------------------------------------------------------
// Messages are numbered by the server (seq 1, 2, ...): the page keeps the last one it shows and
// asks for what came after it whenever it (re)connects, so a dropped connection loses nothing.
// A message the person writes gets an id of the page's own (client_id) and stays "pending"
// until the server has it; resending it after a reconnect stores it once.
// An account-access chat is attached to an appeal; when the appeal is decided, live help says
// the outcome in the chat (a system message with an `outcome`). The decision may come after
// the chat ended (the agent decides, then closes; or a reviewer decides later), so the page
// goes on listening after the end until the decision has shown, while the session lasts.
const chat = {
  id: null, lastSeq: 0, pending: [], socket: null, transport: null, closed: false,
  receipts: {}, retry: 0, typingSentAt: 0, readSent: 0,
  appealId: "", decided: false, awaitingDecision: false,
};
window.helpChat = chat;
const STATUS = {
  waiting: "Waiting for an agent. Keep this page open: you will see their answer here.",
  assigned: "You are chatting with an agent.",
  closed: "The chat has ended.",
};
const AWAITING_DECISION = "The decision on your appeal will show here when it is made; " +
  "it is sent to you as well.";

// Whether the page still wants news of the chat.
function listening() { return !chat.closed || chat.awaitingDecision; }

function clientId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function openChat(event) {
  event.preventDefault();
  say($("problem"), "");
  const topic = document.querySelector("input[name=topic]:checked").value;
  const body = { topic, language: $("language").value };
  const first = $("first").value.trim();
  if (first) body.message = first;
  if (topic === "feature_help") body.feature = $("feature").value.trim();
  try {
    const opened = await call("POST", "/v1/help/chats", body, state.token);
    joinChat(opened.chat_id);
  } catch (error) {
    say($("problem"), error.message);
  }
}

function joinChat(chatId) {
  chat.id = chatId;
  sessionStorage.setItem("help-chat", chatId);
  $("verified").hidden = true;
  $("chat").hidden = false;
  connect();
}

function connect() {
  if (!listening()) return;
  if (chat.transport === "poll" || !("WebSocket" in window)) { poll(); return; }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/help/chats/${chat.id}/socket`);
  let opened = false;
  chat.socket = socket;
  socket.onopen = () => {
    opened = true;
    chat.retry = 0;
    chat.transport = "socket";
    socket.send(JSON.stringify({ type: "hello", token: state.token, after: chat.lastSeq }));
    for (const message of chat.pending) sendFrame(message);
  };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "updates") apply(frame);
    else if (frame.type === "error") say($("problem"), frame.detail);
  };
  socket.onclose = (event) => {
    chat.socket = null;
    if (event.code === 4401) { expired(); return; }
    // A socket that never opened (a proxy that does not pass WebSockets): long-poll instead.
    if (!opened) chat.transport = "poll";
    reconnectLater();
  };
}

function reconnectLater() {
  if (!listening()) return;
  chat.retry = Math.min(chat.retry + 1, 5);
  setTimeout(connect, 250 * 2 ** chat.retry);
}

async function poll() {
  chat.transport = "poll";
  while (listening()) {
    try {
      for (const message of chat.pending) await postMessage(message);
      const updates = await call(
        "GET", `/v1/help/chats/${chat.id}/updates?after=${chat.lastSeq}&wait_s=20`,
        null, state.token,
      );
      chat.retry = 0;
      apply(updates);
    } catch (error) {
      if (error.status === 401) { expired(); return; }
      chat.retry = Math.min(chat.retry + 1, 5);
      await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** chat.retry));
    }
  }
}

function expired() {
  chat.closed = true;
  chat.awaitingDecision = false;
  say($("problem"), "Your help session has expired: verify your account again to go on.");
  sessionStorage.removeItem("help-session");
}

function apply(updates) {
  if (updates.state && updates.state.appeal_id) chat.appealId = updates.state.appeal_id;
  for (const message of updates.messages || []) {
    if (message.seq <= chat.lastSeq) continue;
    chat.lastSeq = message.seq;
    chat.pending = chat.pending.filter((p) => p.client_id !== message.client_id);
    if (isDecision(message)) chat.decided = true;
    render(message);
  }
  chat.receipts = updates.receipts || chat.receipts;
  $("typing").hidden = !chat.receipts.agent_typing;
  markReceipts();
  const current = updates.state && updates.state.state;
  if (current) say($("chat-status"), STATUS[current] || current);
  if (current === "closed") {
    chat.closed = true;
    $("compose").hidden = true;
    $("leave").hidden = true;
    chat.awaitingDecision = Boolean(chat.appealId) && !chat.decided;
    if (chat.awaitingDecision) {
      say($("chat-status"), `${STATUS.closed} ${AWAITING_DECISION}`);
    } else {
      sessionStorage.removeItem("help-chat");
      if (chat.socket) chat.socket.close();
    }
  }
  sendRead();
}

function isDecision(message) { return message.party === "system" && Boolean(message.outcome); }

function size(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} bytes`;
}

// Attachments are references (a media type, an https URL, a size): shown as plain links that
// open in a new tab without telling the other site where they came from.
function renderAttachments(item, attachments) {
  if (!attachments || !attachments.length) return;
  const box = document.createElement("span");
  box.className = "attachments";
  for (const attachment of attachments) {
    const label = `${attachment.media_type}, ${size(attachment.size_bytes)}`;
    let entry;
    if (String(attachment.uri).startsWith("https://")) {
      entry = document.createElement("a");
      entry.href = attachment.uri;
      entry.target = "_blank";
      entry.rel = "noopener noreferrer nofollow";
    } else {
      entry = document.createElement("span");
    }
    entry.className = "attachment";
    entry.textContent = label;
    box.append(entry);
  }
  item.append(box);
}

function render(message) {
  const item = document.createElement("li");
  item.className = message.party;
  item.dataset.seq = message.seq;
  item.textContent = message.text;  // text, never HTML
  if (isDecision(message)) {
    // The outcome of the person's appeal: set apart from the chat's other notices.
    item.classList.add("decision", `outcome-${message.outcome}`);
    item.dataset.outcome = message.outcome;
  }
  renderAttachments(item, message.attachments);
  if (message.party === "person") {
    const mark = document.createElement("span");
    mark.className = "mark";
    item.append(mark);
  }
  const pendingItem = document.querySelector(`#messages li[data-client="${message.client_id}"]`);
  if (pendingItem) pendingItem.replaceWith(item); else $("messages").append(item);
  item.scrollIntoView({ block: "end" });
}

function markReceipts() {
  for (const item of document.querySelectorAll("#messages li.person[data-seq]")) {
    const seq = Number(item.dataset.seq);
    const mark = item.querySelector(".mark");
    if (seq <= (chat.receipts.agent_read || 0)) mark.textContent = "Read";
    else if (seq <= (chat.receipts.agent_delivered || 0)) mark.textContent = "Delivered";
    else mark.textContent = "Sent";
  }
}

function sendFrame(frame) {
  if (chat.socket && chat.socket.readyState === WebSocket.OPEN) {
    chat.socket.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

async function postMessage(message) {
  await call("POST", `/v1/help/chats/${chat.id}/messages`,
    { client_id: message.client_id, text: message.text }, state.token);
}

function sendRead() {
  if (document.hidden || chat.lastSeq <= chat.readSent) return;
  chat.readSent = chat.lastSeq;
  if (!sendFrame({ type: "read", up_to: chat.lastSeq })) {
    call("POST", `/v1/help/chats/${chat.id}/receipts`, { read_up_to: chat.lastSeq }, state.token)
      .catch(() => { chat.readSent = 0; });
  }
}

function compose(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text || chat.closed) return;
  const message = { type: "send", client_id: clientId(), text };
  chat.pending.push(message);
  const item = document.createElement("li");
  item.className = "person pending";
  item.dataset.client = message.client_id;
  item.textContent = text;
  $("messages").append(item);
  $("text").value = "";
  if (!sendFrame(message) && chat.transport === "poll") {
    postMessage(message).catch((error) => say($("problem"), error.message));
  }
}

function typing() {
  const now = Date.now();
  if (now - chat.typingSentAt < 3000) return;
  chat.typingSentAt = now;
  if (!sendFrame({ type: "typing" })) {
    call("POST", `/v1/help/chats/${chat.id}/receipts`, { typing: true }, state.token)
      .catch(() => {});
  }
}

async function leave() {
  try {
    apply({ state: await call("POST", `/v1/help/chats/${chat.id}/close`, {}, state.token) });
  } catch (error) {
    say($("problem"), error.message);
  }
}

function topicChanged() {
  const feature = document.querySelector("input[name=topic]:checked").value === "feature_help";
  $("feature-label").hidden = !feature;
}

document.addEventListener("DOMContentLoaded", () => {
  $("open").addEventListener("submit", openChat);
  $("compose").addEventListener("submit", compose);
  $("text").addEventListener("input", typing);
  $("leave").addEventListener("click", leave);
  for (const radio of document.querySelectorAll("input[name=topic]")) {
    radio.addEventListener("change", topicChanged);
  }
  document.addEventListener("visibilitychange", sendRead);
  $("ask").addEventListener("submit", ask);
  $("check").addEventListener("submit", check);
  $("again").addEventListener("click", again);
  loadPlatforms().catch((error) => say($("problem"), error.message));
  showSession();
});
