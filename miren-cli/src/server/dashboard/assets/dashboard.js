// The miren dashboard: every second it reads the API's status of every app (the
// very figures `miren top` shows) and redraws; the selected app's deploys come
// from its history and its logs stream live. Everything shown from the server is
// set as text, never as markup.
"use strict";

const EVERY_MS = 1000;
const LOG_LINES_KEPT = 500;
let selected = decodeURIComponent(location.hash.slice(1)) || null;
let routes = [];
let routesRead = 0;
let logStream = null;
let historyOf = null;
let historyRead = 0;

// An element with attributes and children (strings become text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, options) {
  const resp = await fetch("/api" + path, options);
  if (resp.status === 401) {
    document.getElementById("updated").textContent =
      "logged out: run `miren dashboard` for a new link";
    throw new Error("logged out");
  }
  if (!resp.ok) {
    let message = resp.statusText;
    try { message = (await resp.json()).error.message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return resp;
}

const rate = (r) => (r >= 100 ? r.toFixed(0) : r.toFixed(1));
const millis = (ms) => (ms === null || ms === undefined ? "–"
  : ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(1) + " ms");
const percent = (f) => (f * 100).toFixed(1) + " %";
function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, u = 0;
  while (v >= 1024 && u + 1 < units.length) { v /= 1024; u++; }
  return u === 0 ? n + " B" : v.toFixed(1) + " " + units[u];
}
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

// A sparkline of `values` (nulls are gaps drawn as zero).
function spark(values, kind) {
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("class", "spark " + kind);
  svg.setAttribute("viewBox", "0 0 100 20");
  svg.setAttribute("preserveAspectRatio", "none");
  const vs = values.map((v) => v || 0);
  const max = Math.max(...vs, 1e-9);
  const n = Math.max(vs.length - 1, 1);
  const points = vs.map((v, i) => `${(i / n) * 100},${20 - (v / max) * 18 - 1}`);
  const line = document.createElementNS(svgNs, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function drawApps(apps) {
  const tbody = document.querySelector("#apps tbody");
  document.getElementById("no-apps").hidden = apps.length > 0;
  replaceRows(tbody, apps.map((a) => {
    const t = a.traffic[0];
    const hosts = routes.filter((r) => r.app === a.app.name).map((r) => r.host);
    const status = a.app.status.split(" ")[0];
    return el("tr", {
      "data-app": a.app.name,
      class: a.app.name === selected ? "selected" : "",
      onclick: () => select(a.app.name),
    },
      el("td", {}, a.app.name),
      el("td", {}, a.app.number ? "v" + a.app.number : "–"),
      el("td", { class: "status-" + status }, a.app.status),
      el("td", {}, hosts.join(", ") || "–"),
      el("td", { class: "num" }, t ? rate(t.req_per_sec) : "–"),
      el("td", { class: "num" }, t ? millis(t.p95_ms) : "–"),
      el("td", { class: "num" }, t ? percent(t.error_rate) : "–"),
      el("td", { class: "num instances" }, a.instances.length));
  }));
}

function drawDetail(a) {
  const detail = document.getElementById("detail");
  if (!a) { detail.hidden = true; return; }
  detail.hidden = false;
  document.getElementById("app-name").textContent = a.app.name;
  document.getElementById("app-line").textContent =
    `${a.app.number ? "v" + a.app.number : "not deployed"} · ${a.app.status}`;

  replaceRows(document.querySelector("#services tbody"), a.pools
    .filter((p) => p.versions.length > 0)
    .map((p) => el("tr", { "data-service": p.service },
      el("td", {}, p.service),
      el("td", { class: "num desired" }, p.desired),
      el("td", { class: "num ready" }, p.ready),
      el("td", {}, a.runtimes[p.id] || "–"),
      el("td", { class: "quiet" }, p.desired_reason))));

  document.getElementById("traffic").replaceChildren(...(a.traffic.length ? a.traffic.map((t) =>
    el("div", { class: "service-traffic", "data-service": t.service },
      el("div", {}, el("b", {}, t.service)),
      el("div", { class: "figures" },
        el("span", { class: "figure" }, el("b", { class: "rps" }, rate(t.req_per_sec)), "req/s"),
        el("span", { class: "figure" }, el("b", { class: "p95" }, millis(t.p95_ms)), "p95"),
        el("span", { class: "figure" }, el("b", {}, percent(t.error_rate)), "5xx"),
        el("span", { class: "figure" }, el("b", { class: "requests" }, t.requests), "requests")),
      spark(t.series, "rps"),
      spark(t.p95_series, "p95")))
    : [el("p", { class: "quiet" }, "No HTTP traffic: the app has no routed web service.")]));

  replaceRows(document.querySelector("#instances tbody"), a.instances.map((i) =>
    el("tr", { "data-sandbox": i.sandbox },
      el("td", {}, i.sandbox),
      el("td", {}, i.service),
      el("td", {}, i.status),
      el("td", { class: "num" }, i.cpu_percent === null || i.cpu_percent === undefined
        ? "–" : i.cpu_percent.toFixed(1) + " %"),
      el("td", { class: "num" }, bytes(i.memory_bytes)),
      el("td", { class: "num" }, rate(i.req_per_sec)),
      el("td", { class: "num" }, i.restarts))));

  document.getElementById("decisions").replaceChildren(...(a.decisions.length
    ? a.decisions.map((d) => el("li", {},
      el("span", { class: "quiet" }, ago(d.at) + " "),
      `${d.service} → ${d.desired}: ${d.reason}`))
    : [el("li", { class: "quiet" }, "None since the server started.")]));
}

async function drawHistory(app, force) {
  if (!force && historyOf === app && Date.now() - historyRead < 5000) return;
  const rows = await (await api(`/v1/apps/${encodeURIComponent(app)}/versions`)).json();
  historyOf = app;
  historyRead = Date.now();
  replaceRows(document.querySelector("#history tbody"), rows.map((v) => {
    const name = v.number ? "v" + v.number : v.id;
    const button = v.state === "superseded"
      ? el("button", { class: "rollback", "data-version": name, onclick: (e) => rollback(e.target, app, name) },
        "Roll back to " + name)
      : null;
    return el("tr", { "data-version": name, "data-state": v.state },
      el("td", {}, name),
      el("td", { class: "state" }, v.state + (v.failure ? ": " + v.failure.split("\n")[0] : "")),
      el("td", {}, ago(v.created)),
      el("td", {}, v.commit ? v.commit.slice(0, 8) : "–"),
      el("td", {}, button));
  }));
}

// A rollback takes two clicks: the first arms the button.
async function rollback(button, app, version) {
  if (!button.classList.contains("armed")) {
    button.classList.add("armed");
    button.textContent = "Click again to roll back to " + version;
    setTimeout(() => {
      button.classList.remove("armed");
      button.textContent = "Roll back to " + version;
    }, 5000);
    return;
  }
  const said = document.getElementById("rollout");
  document.querySelectorAll("button.rollback").forEach((b) => { b.disabled = true; });
  said.textContent = "Rolling back to " + version + "…";
  try {
    const resp = await api(`/v1/apps/${encodeURIComponent(app)}/rollback`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-miren-ui": "1" },
      body: JSON.stringify({ version }),
    });
    let last = null;
    for await (const line of ndjson(resp)) {
      if (line.error) throw new Error(line.error.message);
      if (line.event === "progress") said.textContent = line.message;
      if (line.event === "done") last = line.version;
    }
    said.textContent = last && last.state === "active"
      ? `Rolled back: ${version} is active.`
      : `The rollback to ${version} did not finish: ${last ? (last.failure || last.state) : "no answer"}`;
  } catch (e) {
    said.textContent = "Rollback failed: " + e.message;
  }
  await drawHistory(app, true);
}

// The objects of an NDJSON response, as they come.
async function* ndjson(resp) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let i;
    while ((i = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      if (line.trim()) yield JSON.parse(line);
    }
  }
}

// The selected app's lines: the last five minutes, then live.
async function followLogs(app) {
  if (logStream) logStream.abort();
  const controller = new AbortController();
  logStream = controller;
  const pre = document.getElementById("logs");
  pre.replaceChildren();
  try {
    const resp = await api(`/v1/logs?app=${encodeURIComponent(app)}&last=5m&follow=true`,
      { signal: controller.signal });
    for await (const l of ndjson(resp)) {
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(el("div", { class: l.stream === "stderr" ? "stderr" : "" },
        `${new Date(l.time).toLocaleTimeString()} ${l.service} ${l.line}`));
      while (pre.childNodes.length > LOG_LINES_KEPT) pre.firstChild.remove();
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
  } catch (e) {
    if (controller.signal.aborted) return;
    pre.append(el("div", { class: "stderr" }, "(the log stream ended: " + e.message + "; reconnecting)"));
    setTimeout(() => { if (selected === app && logStream === controller) followLogs(app); }, 2000);
  }
}

function select(app) {
  if (selected === app) return;
  selected = app;
  history.replaceState(null, "", "#" + encodeURIComponent(app));
  document.querySelectorAll("#apps tbody tr").forEach((r) =>
    r.classList.toggle("selected", r.dataset.app === app));
  followLogs(app);
  refresh();
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    if (Date.now() - routesRead > 5000) {
      routes = await (await api("/v1/routes")).json();
      routesRead = Date.now();
    }
    const apps = await (await api("/v1/status")).json();
    if (!selected && apps.length) {
      selected = apps[0].app.name;
      followLogs(selected);
    }
    drawApps(apps);
    const app = apps.find((a) => a.app.name === selected);
    drawDetail(app);
    if (app) await drawHistory(app.app.name, false);
    document.getElementById("updated").textContent =
      "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.message !== "logged out") {
      document.getElementById("updated").textContent = "the server did not answer: " + e.message;
    }
  } finally {
    refreshing = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (selected) followLogs(selected);
  refresh();
  setInterval(refresh, EVERY_MS);
});
