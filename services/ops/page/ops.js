// The appeals pipeline's live ops page. Plain JavaScript, no dependencies, no build step.
//
// The token comes from the URL fragment (/ops#token=..., never sent to the server) or the paste
// box, is kept in sessionStorage (this tab only) and sent only as an Authorization header. The
// live figures arrive as Server-Sent Events read with fetch(), because EventSource cannot send
// headers; every value is put on the page with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "appeals-ops-token";
const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2457c5", "#1f8a4c", "#8e44ad", "#d35400", "#c0392b", "#16a085", "#7f8c8d",
                 "#b7950b", "#2c3e50", "#e84393"];
const FLOW = [
  ["received", "received"], ["routed", "routed"], ["decided", "decided"],
  ["notified", "notified"], ["notification_failures", "notification failures"],
];
const BACKLOG = [
  ["consumer_lag", "consumer lag"], ["dlq_records", "dead letters"], ["breached_now", "past SLA now"],
];

const state = { token: null, history: [], snapshot: null, settings: null, abort: null,
                lastSample: 0, figures: {} };

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function svgEl(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
const axis = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });

function duration(seconds) {
  if (!seconds) return "0 s";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${decimal.format(seconds / 3600)} h`;
  return `${decimal.format(seconds / 86400)} d`;
}

// --- Token -----------------------------------------------------------------------------------

function takeTokenFromFragment() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
    // Out of the address bar, the history and any bookmark.
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  if (state.abort) state.abort.abort();
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("login-message").textContent = message || "";
  setConnection("idle", "not connected");
}

function authHeaders() {
  return { Authorization: `Bearer ${state.token}` };
}

async function problemOf(response) {
  try {
    const body = await response.json();
    return body.detail || body.title || response.statusText;
  } catch {
    return response.statusText;
  }
}

// --- Connection ------------------------------------------------------------------------------

function setConnection(kind, text) {
  const pill = $("connection");
  pill.dataset.state = kind;
  pill.textContent = text;
}

async function followStream() {
  let backoff = 1000;
  while (state.token) {
    const abort = new AbortController();
    state.abort = abort;
    setConnection("connecting", "connecting…");
    try {
      const response = await fetch("/v1/ops/stream", {
        headers: authHeaders(), cache: "no-store", signal: abort.signal,
      });
      if (response.status === 401 || response.status === 403) {
        signOut(`Token refused (${response.status}): ${await problemOf(response)}`);
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      backoff = 1000;
      await readEvents(response.body);
    } catch (error) {
      if (!state.token) return;
      setConnection("error", `disconnected, retrying (${error.message || error})`);
    }
    await new Promise((resolve) => setTimeout(resolve, backoff));
    backoff = Math.min(backoff * 2, 10000);
  }
}

async function readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

function onEvent(name, data) {
  if (name === "overview") {
    state.settings = data.settings;
    state.history = data.history;
    render(data.snapshot);
  } else if (name === "sample") {
    if (data.point) {
      state.history.push(data.point);
      const since = data.point.t - state.settings.window_s;
      while (state.history.length && state.history[0].t < since) state.history.shift();
    }
    render(data.snapshot);
  }
}

function watchFreshness() {
  setInterval(() => {
    if (!state.token || !state.settings || !state.lastSample) return;
    const age = (Date.now() - state.lastSample) / 1000;
    if (age > 3 * state.settings.interval_s + 2) {
      setConnection("stale", `no update for ${Math.round(age)} s`);
    }
  }, 1000);
}

// --- Rendering -------------------------------------------------------------------------------

function render(snapshot) {
  state.snapshot = snapshot;
  state.lastSample = Date.now();
  const at = new Date(snapshot.at * 1000).toLocaleTimeString("en-GB");
  setConnection("live", `live · ${at}`);
  renderTargets(snapshot.targets);
  renderNotice(snapshot);
  renderFigures(snapshot);
  renderCharts();
  renderTables(snapshot);
}

function renderTargets(targets) {
  const list = $("targets");
  list.replaceChildren(...targets.map((target) => {
    const item = el("li", { class: target.up ? "up" : "down", "data-target": target.name },
                    target.name);
    item.title = target.up ? `${target.url}: up` : `${target.url}: ${target.error}`;
    return item;
  }));
}

function renderNotice(snapshot) {
  const notes = [];
  if (!snapshot.targets.length) {
    notes.push("No metrics targets are configured: set OPS_METRICS_TARGETS " +
               "(make run and make up set it).");
  }
  const down = snapshot.targets.filter((target) => !target.up);
  if (down.length) {
    notes.push("Down: " + down.map((t) => `${t.name} (${t.url}: ${t.error})`).join("; ") + ".");
  }
  if (snapshot.missing.length && snapshot.targets.some((target) => target.up)) {
    notes.push(`Nothing reported yet for ${snapshot.missing.join(", ")} ` +
               "(a counter appears with its first event).");
  }
  const notice = $("notice");
  notice.textContent = notes.join(" ");
  notice.hidden = notes.length === 0;
}

function renderFigures(snapshot) {
  const totals = snapshot.totals;
  const rates = snapshot.rates || {};
  for (const card of document.querySelectorAll(".figure[data-figure]")) {
    const name = card.dataset.figure;
    const output = card.querySelector("output");
    const missing = snapshot.no_data.includes(name);
    const value = totals[name] ?? 0;
    const text = missing ? "no data"
      : card.dataset.format === "duration" ? duration(value) : integer.format(value);
    card.classList.toggle("no-data", missing);
    if (output.textContent !== text) {
      output.textContent = text;
      card.dataset.value = missing ? "" : String(value);
      card.classList.remove("changed");
      void card.offsetWidth; // restart the highlight animation
      card.classList.add("changed");
    }
  }
  for (const note of document.querySelectorAll("[data-rate]")) {
    note.textContent = `${decimal.format(rates[note.dataset.rate] || 0)} / min`;
  }
  const share = totals.decided ? Math.round((100 * totals.reversals) / totals.decided) : 0;
  document.querySelector("[data-share=reversals]").textContent = `${share}% of decisions`;
  document.querySelector("[data-figure-note=agents_online]").textContent =
    `${integer.format(totals.agents_online)} reviewer(s) online`;
  document.querySelector("[data-figure-note=sla]").textContent =
    `${integer.format(totals.breached_now)} open past due · ${integer.format(totals.sla_warnings)} warnings`;
  document.querySelector("[data-figure-note=referrals]").textContent =
    `${integer.format(totals.referrals_overdue || 0)} past their respond-by date`;
  document.querySelector("[data-figure-note=first_answers]").textContent =
    `${integer.format(totals.first_answers || 0)} chat(s) answered`;
  document.querySelector("[data-figure-note=resolution]").textContent =
    snapshot.no_data.includes("resolution_p90_s") ? "no chat closed yet"
      : `p90 ${duration(totals.resolution_p90_s)}`;
}

function renderCharts() {
  const points = state.history;
  lineChart("flow", FLOW.map(([key, label], i) => ({
    label, colour: PALETTE[i], values: points.map((p) => [p.t, p.rates ? p.rates[key] : 0]),
  })));
  const queues = [...new Set(points.flatMap((p) => Object.keys(p.depth)))].sort();
  lineChart("queues", queues.map((queue, i) => ({
    label: queue, colour: PALETTE[i % PALETTE.length],
    values: points.map((p) => [p.t, p.depth[queue] ?? 0]),
  })));
  lineChart("backlog", BACKLOG.map(([key, label], i) => ({
    label, colour: PALETTE[i + 3], values: points.map((p) => [p.t, p.totals[key]]),
  })));
}

function niceStep(value) {
  // A round step (1, 2 or 5 times a power of ten) close to value.
  if (value <= 0) return 0.25;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function lineChart(name, series) {
  const svg = $(`chart-${name}`);
  const width = svg.clientWidth || 600;
  const height = svg.clientHeight || 190;
  const pad = { left: 40, right: 8, top: 8, bottom: 18 };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const now = state.snapshot ? state.snapshot.at : Date.now() / 1000;
  // The kept window (15 min by default), or less while the history is younger than that.
  const oldest = state.history.length ? state.history[0].t : now;
  const windowS = Math.min(state.settings ? state.settings.window_s : 900,
                           Math.max(120, now - oldest));
  const x = (t) => pad.left + ((t - (now - windowS)) / windowS) * (width - pad.left - pad.right);
  const peak = Math.max(0, ...series.flatMap((s) => s.values.map(([, v]) => v)));
  const step = niceStep(peak / 4);
  const top = peak > 0 ? Math.ceil(peak / step) * step : 1;
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  for (let value = 0; value <= top + step / 2; value += step) {
    svg.append(svgEl("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value) }));
    const label = svgEl("text", { class: "axis", x: pad.left - 4, y: y(value) + 3, "text-anchor": "end" });
    label.textContent = axis.format(value);
    svg.append(label);
  }
  const stepS = [30, 60, 120, 180, 300].find((candidate) => windowS / candidate <= 6) || 300;
  for (let ago = 0; ago <= windowS; ago += stepS) {
    const label = svgEl("text", { class: "axis", x: x(now - ago), y: height - 4, "text-anchor": "middle" });
    label.textContent = ago === 0 ? "now" : ago % 60 ? `−${decimal.format(ago / 60)}m` : `−${ago / 60}m`;
    svg.append(label);
  }
  if (!series.length || !series.some((s) => s.values.length > 1)) {
    const empty = svgEl("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle" });
    empty.textContent = series.length ? "collecting…" : "no data";
    svg.append(empty);
  }
  for (const s of series) {
    if (s.values.length < 2) continue;
    const line = svgEl("polyline", {
      class: "series", stroke: s.colour,
      points: s.values.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
    });
    svg.append(line);
  }
  $(`legend-${name}`).replaceChildren(...series.map((s) => {
    const latest = s.values.length ? s.values[s.values.length - 1][1] : 0;
    const item = el("li", {}, s.label, el("b", {}, decimal.format(latest)));
    item.style.setProperty("--swatch", s.colour);
    return item;
  }));
}

function table(id, columns, rows) {
  const head = el("tr", {}, ...columns.map(([, label, kind]) =>
    el("th", { class: kind === "duration" ? "num" : kind || null }, label)));
  const body = rows.length ? rows.map((row) => el("tr", {}, ...columns.map(([key, , kind]) => {
    const value = row[key];
    const text = value === null || value === undefined ? "–"
      : kind === "num" ? integer.format(value) : kind === "duration" ? duration(value) : value;
    return el("td", { class: kind === "duration" ? "num" : kind || null }, text);
  }))) : [el("tr", {}, el("td", { class: "empty", colspan: columns.length }, "no data"))];
  $(id).replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

function renderTables(s) {
  table("table-platforms", [["platform", "platform"], ["received", "received", "num"],
    ["routed", "routed", "num"], ["decided", "decided", "num"], ["reversals", "reversals", "num"]],
  s.platforms);
  table("table-queues", [["queue", "queue"], ["depth", "waiting", "num"],
    ["oldest_wait_s", "oldest wait", "duration"], ["breached_now", "past due", "num"],
    ["routed", "routed", "num"], ["sla_warnings", "SLA warnings", "num"],
    ["sla_breaches", "SLA breaches", "num"]], s.queues);
  table("table-decisions", [["outcome", "outcome"], ["value", "decisions", "num"]], s.decisions);
  table("table-notifications", [["channel", "channel"], ["delivered", "delivered", "num"],
    ["failed", "failed attempts", "num"]], s.notifications);
  table("table-received", [["platform", "platform"], ["channel", "channel"],
    ["value", "received", "num"]], s.received);
  table("table-rejected", [["reason", "reason"], ["channel", "channel"],
    ["value", "rejected", "num"]], s.rejected);
  table("table-lag", [["group", "group"], ["topic", "topic"], ["partition", "partition"],
    ["lag", "lag", "num"]], s.consumer_lag);
  table("table-dlq", [["topic", "topic"], ["records", "records", "num"]], s.dlq);
  const help = s.live_help || {};
  table("table-chats-opened", [["topic", "topic"], ["value", "opened", "num"]], help.opened || []);
  table("table-chats-closed", [["resolution", "resolution"], ["value", "closed", "num"]],
    help.closed || []);
  table("table-chats-resolution", [["topic", "topic"], ["count", "closed", "num"],
    ["p50_s", "p50", "duration"], ["p90_s", "p90", "duration"]], help.resolution_by_topic || []);
}

// --- Search ----------------------------------------------------------------------------------

function traceLink(url, text) {
  if (!url) return el("span", { class: "muted" }, "no trace");
  return el("a", { href: url, target: "_blank", rel: "noopener noreferrer", "data-trace-link": "" },
            text);
}

// The appeal's spans as a waterfall, read through audit from the trace backend's query API.
async function showSpans(traceId, target) {
  target.replaceChildren(el("p", {}, `Reading trace ${traceId}…`));
  const response = await fetch(`/v1/ops/traces/${encodeURIComponent(traceId)}`, {
    headers: authHeaders(), cache: "no-store",
  });
  if (!response.ok) {
    target.replaceChildren(el("p", { class: "error" },
      `Trace unavailable (${response.status}): ${await problemOf(response)}`));
    return;
  }
  const trace = await response.json();
  const total = Math.max(trace.duration_ms, 0.001);
  const rows = trace.spans.map((span) => {
    const bar = el("span", { class: "bar", "data-kind": span.kind });
    // CSSOM, not a style attribute: the page's CSP allows no inline styles.
    bar.style.marginLeft = `${(100 * span.offset_ms) / total}%`;
    bar.style.width = `${Math.max((100 * span.duration_ms) / total, 0.3)}%`;
    const name = el("td", { class: "operation" }, span.operation,
      span.links.length ? el("span", { class: "muted" }, " ↪ linked") : "");
    name.style.paddingLeft = `${6 + 14 * span.depth}px`;
    return el("tr", { "data-service": span.service, class: span.error ? "failed" : null },
      el("td", {}, span.service), name, el("td", {}, span.kind),
      el("td", { class: "num" }, `${decimal.format(span.duration_ms)} ms`),
      el("td", { class: "timeline" }, bar));
  });
  target.replaceChildren(
    el("p", { class: "muted" }, `${trace.spans.length} spans from ${trace.services.join(", ")} ` +
      `over ${decimal.format(trace.duration_ms)} ms`),
    el("table", { id: "waterfall" },
      el("thead", {}, el("tr", {}, ...["service", "span", "kind", "duration", "timeline"]
        .map((label) => el("th", {}, label)))),
      el("tbody", {}, ...rows)));
}

async function search(appealId) {
  const result = $("search-result");
  result.replaceChildren(el("p", {}, `Looking up ${appealId}…`));
  const response = await fetch(`/v1/ops/appeals/${encodeURIComponent(appealId)}`, {
    headers: authHeaders(), cache: "no-store",
  });
  if (response.status === 401) {
    signOut(`Token refused: ${await problemOf(response)}`);
    return;
  }
  if (!response.ok) {
    const why = response.status === 404 ? `${appealId} is not in the audit log (yet).`
      : response.status === 403 ? `This token cannot read the audit log: ${await problemOf(response)}`
        : `Search failed (${response.status}): ${await problemOf(response)}`;
    result.replaceChildren(el("p", { class: "error" }, why));
    return;
  }
  const appeal = await response.json();
  const details = el("dl", { class: "appeal" },
    el("dt", {}, "status"), el("dd", {}, el("span", { class: "status", "data-status": appeal.status || "" },
                                            appeal.status || "unknown"),
                             ` (last event: ${appeal.last_event || "none"})`),
    el("dt", {}, "platform"), el("dd", {}, appeal.platform || "–"),
    el("dt", {}, "queues"), el("dd", {}, appeal.queues.join(" → ") || "–"),
    el("dt", {}, "outcome"), el("dd", {}, appeal.outcome || "–"),
    el("dt", {}, "submitted"), el("dd", {}, appeal.submitted_at || "–"),
    el("dt", {}, "decided"), el("dd", {}, appeal.decided_at || "–"),
    el("dt", {}, "trace"), el("dd", {}, traceLink(appeal.trace_url, `open trace ${appeal.trace_id || ""} ↗`)));
  const spans = el("div", { id: "spans" });
  if (appeal.trace_id) {
    const button = el("button", { type: "button", id: "show-spans" }, "show spans here");
    button.addEventListener("click", () => showSpans(appeal.trace_id, spans));
    details.lastChild.append(" ", button);
  }
  const rows = appeal.entries.map((entry) => el("tr", { "data-event": entry.type },
    el("td", { class: "num" }, entry.index), el("td", {}, entry.type), el("td", {}, entry.occurred_at),
    el("td", {}, entry.producer), el("td", {}, entry.proved ? "proved" : "after checkpoint"),
    el("td", {}, traceLink(entry.trace_url, "trace ↗"))));
  const trail = el("table", { id: "trail" },
    el("thead", {}, el("tr", {}, ...["#", "event", "occurred", "producer", "inclusion", "trace"]
      .map((label) => el("th", {}, label)))),
    el("tbody", {}, ...rows));
  result.replaceChildren(el("h3", {}, appeal.appeal_id), details, spans, trail);
  result.dataset.appeal = appeal.appeal_id;
}

// --- Start -----------------------------------------------------------------------------------

function start(token) {
  state.token = token;
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  followStream();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-input").value = "";
    start(token);
  });
  $("sign-out").addEventListener("click", () => signOut("Token forgotten."));
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const appealId = $("search-input").value.trim();
    if (appealId) search(appealId).catch((error) => {
      $("search-result").replaceChildren(el("p", { class: "error" }, `Search failed: ${error}`));
    });
  });
  window.addEventListener("resize", () => state.snapshot && renderCharts());
  watchFreshness();
  const token = takeTokenFromFragment();
  if (token) start(token); else signOut();
});
