// zcscore dashboard: polls the /v1 JSON routes and renders them (no framework, no build step).
"use strict";

const POLL_MS = 1500;
const TOP_EVERY = 4; // leaderboard refresh: every 4th poll
const SCATTER_EVERY = 8; // scatter refresh: every 8th poll
const KEY_STORE = "zcscore.apiKey";
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const state = { tick: 0, stored: [], storedSig: "", dirty: false };

function apiKey() {
  return localStorage.getItem(KEY_STORE) || "";
}

class HttpError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function getJson(path) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (!resp.ok) {
    let detail = resp.statusText;
    try {
      detail = (await resp.json()).detail || detail;
    } catch (_) { /* not JSON */ }
    throw new HttpError(resp.status, detail);
  }
  return resp.json();
}

// ---------------------------------------------------------------- DOM helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function emptyRow(cols, text) {
  return el("tr", { class: "empty" }, el("td", { colspan: String(cols), text }));
}

function fmtScore(s) {
  if (s === null) return "NaN";
  if (typeof s === "string") return s === "inf" ? "+∞" : "−∞";
  const a = Math.abs(s);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return s.toExponential(3);
  return s.toPrecision(5).replace(/\.?0+$/, "");
}

function fmtNum(x, digits = 3) {
  return x === null || x === undefined ? "–" : x.toFixed(digits);
}

function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return new Date(iso).toLocaleString();
}

function bar(fraction, cls = "") {
  const pct = Math.max(0, Math.min(1, fraction)) * 100;
  const fill = el("div", { class: `fill ${cls}` });
  fill.style.width = `${pct.toFixed(1)}%`;
  return el("div", { class: "bar" }, fill);
}

// ---------------------------------------------------------------- connection and banner
function setConn(ok, text) {
  $("conn-dot").className = `dot ${ok ? "ok" : "bad"}`;
  $("conn-text").textContent = text;
}

function banner(text) {
  const b = $("banner");
  b.hidden = !text;
  b.textContent = text || "";
}

// ---------------------------------------------------------------- renderers
function renderCluster(c) {
  $("stat-queue").textContent = c.queue ? (c.queue.waiting ?? c.queue.length) : "?";
  $("stat-pending").textContent = c.queue ? c.queue.pending : "?";
  $("stat-dead").textContent = c.queue ? c.queue.dead : "?";
  $("stat-dead").parentElement.classList.toggle("warn", Boolean(c.queue && c.queue.dead));
  $("stat-workers").textContent = c.workers.length;
  const rows = c.users.map((u) => ({
    name: u.owner ?? "(no key)", jobs: u.jobs, tasks: u.tasks, queued: String(u.queued), mine: true,
  }));
  if (c.others && (c.others.jobs || c.others.tasks)) {
    rows.push({ name: "other users", jobs: c.others.jobs, tasks: c.others.tasks, queued: "", mine: false });
  }
  const total = rows.reduce((a, r) => a + r.tasks, 0);
  $("stat-outstanding").textContent = total;
  const body = $("users-body");
  body.replaceChildren(
    ...(rows.length
      ? rows.map((r) =>
          el("tr", { "data-owner": r.name },
            el("td", { class: r.mine ? "owner" : "owner muted", text: r.name }),
            el("td", { class: "num", text: String(r.jobs) }),
            el("td", { class: "num", text: String(r.tasks) }),
            el("td", { class: "num", text: r.queued }),
            el("td", { class: "bar-col" }, bar(total ? r.tasks / total : 0, "user"))))
      : [emptyRow(5, "nothing outstanding")]));
  const workers = $("workers");
  workers.replaceChildren(
    ...(c.workers.length
      ? c.workers.map((w) =>
          el("li", {},
            el("span", { class: "dot ok" }),
            el("span", { class: "wname", text: w.name }),
            el("span", { class: "muted", text: `pid ${w.pid ?? "?"}${w.node ? ` · node ${w.node.slice(0, 8)}` : ""}` })))
      : [el("li", { class: "empty", text: "no worker registered" })]));
  const sig = JSON.stringify(c.stored);
  if (sig !== state.storedSig) state.dirty = true; // new scores: refresh the leaderboard and the scatter now
  state.storedSig = sig;
  state.stored = c.stored;
  fillSelectors();
}

function renderJobs(list) {
  const body = $("jobs-body");
  const items = list.items;
  $("jobs-hint").textContent = items.length ? `${items.length} most recent` : "";
  if (!items.length) {
    body.replaceChildren(emptyRow(8, "no jobs yet"));
    return;
  }
  body.replaceChildren(
    ...items.map((j) => {
      const finished = j.done + j.failed;
      const frac = j.total ? finished / j.total : 1;
      const pct = `${Math.floor(frac * 100)}%`;
      const cls = j.status === "failed" || j.status === "cancelled" ? "bad" : j.status === "done" ? "good" : "run";
      const progress = el("td", { class: "bar-col" }, bar(frac, cls), el("span", { class: "pct", text: pct }));
      return el("tr", { "data-job-id": j.id, "data-status": j.status },
        el("td", { class: "owner", text: j.owner ?? "(no key)" }),
        el("td", { class: "mono", title: j.id, text: j.id.slice(0, 8) }),
        el("td", { text: j.space }),
        el("td", { class: "proxies", text: j.proxies.join(", ") }),
        el("td", {}, el("span", { class: `badge ${j.status}`, text: j.status })),
        el("td", { class: "num done-total", text: `${j.done}${j.failed ? ` (+${j.failed} failed)` : ""} / ${j.total}` }),
        progress,
        el("td", { class: "muted", text: ago(j.created_at) }));
    }));
}

function fillSelect(select, values, keep) {
  const current = select.value || keep;
  const have = Array.from(select.options).map((o) => o.value).join("\n");
  if (have !== values.join("\n")) {
    select.replaceChildren(...values.map((v) => el("option", { value: v, text: v })));
  }
  if (values.includes(current)) select.value = current;
}

function fillSelectors() {
  const spaces = [...new Set(state.stored.map((s) => s.space))];
  for (const [spaceSel, proxySel, filter] of [
    ["top-space", "top-proxy", () => true],
    ["scatter-space", "scatter-proxy", (s) => s === "nb201" || s === "nb101"],
  ]) {
    const sp = $(spaceSel);
    const choices = spaces.filter(filter);
    fillSelect(sp, choices, choices.includes("nb201") ? "nb201" : choices[0]);
    const proxies = state.stored.filter((s) => s.space === sp.value).map((s) => s.proxy);
    fillSelect($(proxySel), proxies, proxies[0]);
  }
}

async function refreshTop() {
  const space = $("top-space").value;
  const proxy = $("top-proxy").value;
  const body = $("top-body");
  if (!space || !proxy) {
    body.replaceChildren(emptyRow(4, "no stored scores"));
    return;
  }
  const q = new URLSearchParams({ space, proxy, k: "10" });
  const res = await getJson(`/v1/top?${q}`);
  body.replaceChildren(
    ...(res.items.length
      ? res.items.map((s, i) =>
          el("tr", {},
            el("td", { class: "num", text: String(i + 1) }),
            el("td", { class: "mono arch", title: s.arch, text: s.arch }),
            el("td", { class: "num", text: fmtScore(s.score) }),
            el("td", { class: "num", text: String(s.seed) })))
      : [emptyRow(4, "no stored scores")]));
}

async function refreshScatter() {
  const space = $("scatter-space").value;
  const proxy = $("scatter-proxy").value;
  const plot = $("scatter");
  if (!space || !proxy) {
    drawScatter(plot, [], "no stored scores of a space with ground truth");
    return;
  }
  const q = new URLSearchParams({ space, proxy, limit: "1500" });
  const res = await getJson(`/v1/scatter?${q}`);
  $("scatter-tau").textContent = fmtNum(res.kendall_tau);
  $("scatter-rho").textContent = fmtNum(res.spearman_rho);
  $("scatter-n").textContent = String(res.n);
  $("scatter-note").textContent = res.message || (res.target ? `y: ${res.target}` : "");
  drawScatter(plot, res.points, res.message);
}

function drawScatter(plot, points, message) {
  const W = 520, H = 320, L = 48, R = 22, T = 12, B = 40;
  const pw = W - L - R, ph = H - T - B;
  const nodes = [];
  let lo = 0, hi = 100;
  if (points.length) {
    const accs = points.map((p) => p.accuracy);
    lo = Math.floor(Math.min(...accs) / 10) * 10;
    hi = Math.ceil(Math.max(...accs) / 10) * 10;
    if (hi - lo < 10) hi = lo + 10;
  }
  const step = [2, 5, 10, 20, 25].find((s) => (hi - lo) / s <= 5) || 25;
  const x = (r) => L + r * pw;
  const y = (a) => T + ph - ((a - lo) / (hi - lo)) * ph;
  nodes.push(svg("rect", { x: L, y: T, width: pw, height: ph, class: "plot-bg" }));
  for (let a = lo; a <= hi + 1e-9; a += step) {
    nodes.push(svg("line", { x1: L, x2: L + pw, y1: y(a), y2: y(a), class: "grid-line" }));
    nodes.push(svg("text", { x: L - 6, y: y(a) + 4, class: "tick", "text-anchor": "end" }, a.toFixed(0)));
  }
  for (let i = 0; i <= 4; i++) {
    const r = i / 4;
    nodes.push(svg("line", { x1: x(r), x2: x(r), y1: T, y2: T + ph, class: "grid-line" }));
    nodes.push(svg("text", { x: x(r), y: T + ph + 16, class: "tick", "text-anchor": "middle" }, `${i * 25}%`));
  }
  nodes.push(svg("text", { x: L + pw / 2, y: H - 4, class: "axis", "text-anchor": "middle" }, "proxy rank (percentile, best right)"));
  nodes.push(svg("text", { x: 12, y: T + ph / 2, class: "axis", "text-anchor": "middle", transform: `rotate(-90 12 ${T + ph / 2})` }, "accuracy %"));
  for (const p of points) {
    const c = svg("circle", { cx: x(p.rank).toFixed(1), cy: y(p.accuracy).toFixed(1), r: "2.6", class: "pt" });
    c.append(svg("title", {}, `${p.arch}\nscore ${fmtScore(p.score)} · acc ${p.accuracy.toFixed(2)}`));
    nodes.push(c);
  }
  if (!points.length) {
    nodes.push(svg("text", { x: L + pw / 2, y: T + ph / 2, class: "axis", "text-anchor": "middle" }, message || "no points yet"));
  }
  plot.replaceChildren(...nodes);
}

// ---------------------------------------------------------------- poll loop
async function poll() {
  const every = (n) => state.tick % n === 0;
  try {
    const [cluster, jobs] = await Promise.all([getJson("/v1/cluster"), getJson("/v1/jobs?limit=25")]);
    renderCluster(cluster);
    renderJobs(jobs);
    const dirty = state.dirty;
    state.dirty = false;
    if (dirty || every(TOP_EVERY)) await refreshTop();
    if (dirty || every(SCATTER_EVERY)) await refreshScatter();
    setConn(true, `live · ${new Date().toLocaleTimeString()}`);
    banner("");
    state.tick += 1;
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) {
      setConn(false, "needs a key");
      banner(apiKey() ? "This API key was refused (unknown or revoked). Enter another one above." : "Auth is on: enter your API key above.");
    } else {
      setConn(false, "disconnected");
      banner(`Cannot reach the API: ${err.message}`);
    }
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function init() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem(KEY_STORE, $("api-key").value.trim());
    state.tick = 0;
  });
  $("key-clear").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    $("api-key").value = "";
    state.tick = 0;
  });
  const onTop = () => { fillSelectors(); refreshTop().catch(() => {}); };
  const onScatter = () => { fillSelectors(); refreshScatter().catch(() => {}); };
  $("top-space").addEventListener("change", onTop);
  $("top-proxy").addEventListener("change", onTop);
  $("scatter-space").addEventListener("change", onScatter);
  $("scatter-proxy").addEventListener("change", onScatter);
  drawScatter($("scatter"), [], "loading…");
  poll();
}

document.addEventListener("DOMContentLoaded", init);
