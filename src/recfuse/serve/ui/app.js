// The recfuse web page: a user's recommendations, the long/short gate, their interests and the history,
// updated as the person acts; search, similar items, admin and the service's health.  Explanations and
// the interest summary are shown in words when the service sends them, else as their facts.  It speaks the public JSON API
// only (the paths in ROUTES) and builds every node with textContent, never from HTML strings, so item
// titles, genres and ids (user data) always render as text.  Keys live in this page's memory only and
// travel in the X-API-Key header.
"use strict";

// Every API path this page requests; tests/test_serve_ui.py checks that each is a route of the OpenAPI
// document.
const ROUTES = {
  userRecs: "v1/users/{user_id}/recommendations",
  profile: "v1/users/{user_id}/profile",
  userEvents: "v1/users/{user_id}/events",
  events: "v1/events",
  anonRecs: "v1/recommendations",
  similar: "v1/items/{item_id}/similar",
  items: "v1/items",
  reload: "v1/admin/reload",
  health: "health",
  metrics: "metrics",
  openapi: "openapi.json",
};
const TIMELINE_LEN = 40; // history events shown
const TITLE_LOOKUPS = 40; // most titles fetched for history items that no answer has named yet
const OPS_EVERY_MS = 5000;

const state = {
  apiKey: "",
  adminKey: "",
  mode: null, // "user" | "anon"
  user: null,
  recent: [], // an anonymous session's items, oldest first
  posted: [], // events this page posted for the current user: {event_id, item_id, timestamp, type, rating}
  trail: [], // {label, gate}
  recs: [],
  takesAt: false, // whether GET recommendations takes a request time (`at`), from the OpenAPI document
  hasEvents: true, // whether the server has GET /v1/users/{id}/events
  hasProfile: true, // whether the server has GET /v1/users/{id}/profile
  takesText: true, // whether GET recommendations takes explain=text (words), from the OpenAPI document
  titles: new Map(), // item_id -> {title, genres}
  lookedUp: new Set(),
  ops: null, // the previous metrics sample
};

// ---------------------------------------------------------------- DOM helpers
const $ = (id) => document.getElementById(id);

// An element with attributes and children; strings become text nodes (never parsed as HTML).
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, String(v));
    else if (["title", "type", "value", "role", "aria-label"].includes(k)) node.setAttribute(k, String(v));
    else throw new Error(`attribute ${k} is not allowed`);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function fill(parent, nodes) {
  parent.replaceChildren(...nodes);
}

function busy(delta) {
  const b = document.body.dataset;
  b.busy = String(Math.max(0, Number(b.busy || 0) + delta));
}

function notify(message, kind = "error") {
  const n = $("notice");
  n.textContent = message;
  n.className = kind;
  n.hidden = !message;
}

const pct = (x) => `${Math.round(x * 100)}%`;
const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));

function ago(ts) {
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function randomId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return "ui-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------- the API
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function path(template, params = {}, query = {}) {
  let p = template.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(params[k]));
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined) q.set(k, String(v));
  const qs = q.toString();
  return qs ? `${p}?${qs}` : p;
}

async function api(method, url, body, { admin = false, raw = false } = {}) {
  const headers = { Accept: raw ? "text/plain" : "application/json" };
  const key = admin ? state.adminKey : state.apiKey || state.adminKey;
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  busy(+1);
  try {
    const r = await fetch(url, {
      method, headers, cache: "no-store", credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (raw && r.ok) return text;
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!r.ok) throw new ApiError(r.status, errorText(r.status, data, text, admin));
    return data;
  } finally {
    busy(-1);
  }
}

function errorText(status, data, text, admin) {
  const detail = data && (data.message || (typeof data.detail === "string" ? data.detail : null));
  if (status === 401) return admin ? "Admin key needed: type it in “Admin key”." : "This server needs an API key: type it in “API key” at the top.";
  if (status === 403) return detail || "The key was refused.";
  return `${status}: ${detail || (text || "").slice(0, 200)}`;
}

function remember(item) {
  if (item && item.item_id !== undefined) state.titles.set(String(item.item_id), { title: item.title, genres: item.genres });
}

// ---------------------------------------------------------------- items
function itemRow(item, { because = true, actions = true } = {}) {
  remember(item);
  const id = String(item.item_id);
  const head = h("div", { class: "item-head" },
    item.rank !== undefined ? h("span", { class: "rank" }, item.rank) : null,
    h("span", { class: "title" }, item.title || id),
    h("span", { class: "genres" }, item.genres || ""),
    h("span", { class: "item-id muted small" }, id),
    h("span", { class: "score", title: item.similarity !== undefined ? "similarity" : "score" },
      item.similarity !== undefined ? fmt(item.similarity) : fmt(item.score)),
  );
  const li = h("li", { class: "item", "data-item-id": id, "data-genres": item.genres || "" }, head);
  if (because && item.explanation) li.append(explanation(item.explanation));
  if (actions) li.append(actionBar(item));
  return li;
}

// The explanation's words, when the service sends them: `text` as a string, or `text` / `words` as a
// phrase object ({text, source: "llm" | "template", ...}, recfuse.llm.phrase.Phrase.as_dict).
function wordsOf(e) {
  for (const w of [e.text, e.words]) {
    if (typeof w === "string" && w.trim()) return { text: w, source: null };
    if (w && typeof w === "object" && typeof w.text === "string" && w.text.trim()) return { text: w.text, source: w.source || null };
  }
  return null;
}

// The explanation in words when the service sends them, else its facts.
function explanation(e) {
  const box = h("div", { class: "why" });
  const words = wordsOf(e);
  if (words) {
    box.append(h("p", { class: "why-words" }, words.text,
      words.source ? h("span", { class: "badge", title: "who phrased it" }, words.source) : null));
    return box;
  }
  const facts = [];
  if (e.dimension) facts.push(h("span", { class: "badge", title: "what drove this item most" }, e.dimension));
  if (e.reason) facts.push(h("span", { class: "muted" }, e.reason));
  if (e.query_similarity !== undefined && e.query_similarity !== null) facts.push(h("span", { class: "muted" }, `text match ${fmt(e.query_similarity)}`));
  if (e.because && e.because.length) {
    facts.push(h("span", { class: "muted" }, "because of "));
    e.because.forEach((b, n) => {
      remember(b);
      if (n) facts.push(", ");
      facts.push(h("span", { class: "because", "data-item-id": String(b.item_id) }, b.title || String(b.item_id)));
      if (b.contribution !== undefined && b.contribution !== null) facts.push(h("span", { class: "muted small" }, ` (${fmt(b.contribution, 2)})`));
    });
  }
  if (e.dimensions) {
    const dims = Object.entries(e.dimensions).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmt(v, 2)}`);
    if (dims.length) facts.push(h("span", { class: "muted small dims" }, ` · ${dims.join(" · ")}`));
  }
  box.append(h("p", { class: "why-facts" }, facts));
  return box;
}

function actionBar(item) {
  const rate = h("select", { class: "act-rate", "aria-label": "rate" },
    h("option", { value: "" }, "rate…"), [1, 2, 3, 4, 5].map((r) => h("option", { value: r }, `${r} ★`)));
  rate.addEventListener("change", () => { if (rate.value) act(item, "rating", Number(rate.value)); });
  const button = (cls, label, fn) => {
    const b = h("button", { type: "button", class: cls }, label);
    b.addEventListener("click", fn);
    return b;
  };
  return h("div", { class: "acts" },
    button("act-watched", "watched", () => act(item, "watched", null)),
    button("act-liked", "liked", () => act(item, "liked", null)),
    rate,
    button("act-similar secondary", "similar", () => similar(item)),
  );
}

// ---------------------------------------------------------------- the user view
async function showUser(id) {
  state.mode = "user";
  state.user = id;
  state.posted = [];
  state.trail = [];
  await refresh("opened");
}

function startAnonymous() {
  state.mode = "anon";
  state.user = null;
  state.recent = [];
  state.trail = [];
  state.recs = [];
  renderView({ items: [], gate: null }, [], "Anonymous session: search, then click “watched” on what you like.");
}

async function act(item, type, rating) {
  if (!state.mode) {
    notify("Choose a user or start an anonymous session first.", "info");
    return;
  }
  const label = `${type}${rating ? " " + rating : ""}: ${item.title || item.item_id}`;
  if (state.mode === "anon") {
    state.recent.push(String(item.item_id));
    state.posted.push({ event_id: randomId(), item_id: String(item.item_id), timestamp: Date.now() / 1000, type, rating });
    await refresh(label);
    return;
  }
  const event = { event_id: randomId(), user_id: state.user, item_id: String(item.item_id), timestamp: Date.now() / 1000, type };
  if (rating !== null) event.rating = rating;
  try {
    const out = await api("POST", path(ROUTES.events), event);
    const result = out.results[0];
    if (result.status === "rejected") {
      notify(`Event rejected: ${result.reason}`);
      return;
    }
    state.posted.push(event);
    notify("");
  } catch (e) {
    notify(e.message);
    return;
  }
  await refresh(label);
}

// Recommendations, gate and history of the current user (or anonymous session), then one render.
async function refresh(label) {
  const k = Math.max(1, Math.min(100, Number($("k").value) || 10));
  const away = Number($("away").value) || 0;
  try {
    let recs;
    let events = [];
    let profile = null;
    if (state.mode === "user") {
      const at = away && state.takesAt ? Date.now() / 1000 + away : null;
      const [r, ev, pr] = await Promise.all([
        api("GET", path(ROUTES.userRecs, { user_id: state.user }, { k, explain: state.takesText ? "text" : true, at })),
        userEvents(state.user),
        userProfile(state.user, at),
      ]);
      recs = r;
      events = ev;
      profile = pr;
    } else if (state.recent.length) {
      recs = await api("POST", path(ROUTES.anonRecs), { recent_items: state.recent, k, explain: true });
      events = state.posted.slice();
    } else {
      recs = { items: [], gate: null };
    }
    if (away && state.takesAt) {
      const back = `back after ${$("away").selectedOptions[0].textContent}`;
      label = label ? `${label} · ${back}` : back;
      $("away").value = "0"; // one request as if the person came back later; the next is at the real time
    }
    state.recs = recs.items;
    if (recs.gate !== null && recs.gate !== undefined) state.trail.push({ label, gate: recs.gate });
    renderView(recs, events, null, profile);
    notify("");
  } catch (e) {
    notify(e.message);
  }
}

// The user's interests (summary and facts), or null: an older server without the route, or an error
// (the list still shows).
async function userProfile(user, at) {
  if (!state.hasProfile) return null;
  try {
    return await api("GET", path(ROUTES.profile, { user_id: user }, { at }));
  } catch (e) {
    if (e.status === 404 || e.status === 405) state.hasProfile = false;
    return null;
  }
}

async function userEvents(user) {
  if (!state.hasEvents) return state.posted.slice();
  try {
    return (await api("GET", path(ROUTES.userEvents, { user_id: user }))).events;
  } catch (e) {
    if (e.status !== 404 && e.status !== 405) throw e;
    state.hasEvents = false; // an older server: the history is what this page posted
    return state.posted.slice();
  }
}

function renderView(recs, events, sub, profile = null) {
  $("user-view").hidden = false;
  const title = state.mode === "user" ? `User ${state.user}` : "Anonymous session";
  $("view-title").textContent = title;
  if (sub === null) {
    const bits = [];
    if (recs.history_length !== undefined) bits.push(`${recs.history_length} events in the history`);
    if (recs.cold_start) bits.push(recs.reason || "cold start");
    if (recs.model_version !== undefined) bits.push(`model version ${recs.model_version}`);
    sub = bits.join(" · ");
  }
  $("view-sub").textContent = sub;
  renderGate(recs.gate);
  renderProfile(profile);
  fill($("recs"), recs.items.map((it) => itemRow(it)));
  renderTimeline(events);
  const d = document.body.dataset;
  d.renders = String(Number(d.renders || 0) + 1);
}

// The interest summary in words when the answer has one, else its facts (genres and titles per interest).
function renderProfile(p) {
  const box = $("profile");
  box.hidden = !p;
  if (!p) return;
  const text = $("profile-text");
  if (typeof p.summary === "string" && p.summary.trim()) {
    text.className = "profile-words";
    fill(text, [p.summary, p.source ? h("span", { class: "badge", title: "who phrased it" }, p.source) : null]);
    return;
  }
  const f = p.facts || {};
  const part = (label, x) => (x && ((x.genres || []).length || (x.titles || []).length)
    ? `${label}: ${[(x.genres || []).join(", "), (x.titles || []).join("; ")].filter(Boolean).join(" · ")}` : null);
  const parts = [part("long-term", f.long_term), part("short-term", f.short_term)].filter(Boolean);
  text.className = "profile-facts";
  fill(text, [parts.join(" | ") || "No interests to show yet."]);
}

function renderGate(gate) {
  const g = $("gate");
  const known = gate !== null && gate !== undefined;
  g.dataset.gate = known ? String(gate) : "";
  g.classList.toggle("unknown", !known);
  const long = g.querySelector(".gate-long");
  const short = g.querySelector(".gate-short");
  long.style.width = known ? pct(1 - gate) : "50%";
  short.style.width = known ? pct(gate) : "50%";
  long.firstElementChild.textContent = known ? `long-term ${pct(1 - gate)}` : "no gate";
  short.firstElementChild.textContent = known ? `short-term ${pct(gate)}` : "";
  $("gate-text").textContent = known
    ? (gate >= 0.5 ? "Leaning short-term: the last few events drive the list." : "Leaning long-term: the whole history drives the list.")
    : "No model gate for this answer (most popular items, or a text search alone).";
  fill($("gate-trail"), state.trail.slice(-12).map((t) =>
    h("li", { title: `${t.label}: short-term ${pct(t.gate)}`, "data-gate": t.gate },
      h("span", { class: "trail-bar" }, h("span", { class: "trail-fill", "data-share": t.gate })),
      h("span", { class: "trail-label" }, `${pct(t.gate)} · ${t.label}`))));
  for (const f of $("gate-trail").querySelectorAll(".trail-fill")) f.style.height = pct(Number(f.dataset.share));
}

function renderTimeline(events) {
  const drove = new Map(); // history item -> how many of the listed items it drove
  for (const it of state.recs) for (const b of (it.explanation && it.explanation.because) || []) {
    drove.set(String(b.item_id), (drove.get(String(b.item_id)) || 0) + 1);
  }
  const mine = new Set(state.posted.map((e) => e.event_id));
  const shown = events.slice(-TIMELINE_LEN).reverse();
  $("timeline-note").textContent = state.mode === "anon"
    ? "This page's clicks (an anonymous session is not stored)."
    : state.hasEvents ? `${events.length} stored events; the newest ${shown.length} shown.`
      : "This server has no history route: the events this page posted.";
  fill($("timeline"), shown.map((e) => {
    const id = String(e.item_id);
    const known = state.titles.get(id);
    const n = drove.get(id) || 0;
    const cls = ["event", n ? "drove" : "", mine.has(e.event_id) ? "mine" : ""].filter(Boolean).join(" ");
    return h("li", { class: cls, "data-item-id": id, title: new Date(e.timestamp * 1000).toISOString() },
      h("span", { class: "when muted small" }, ago(e.timestamp)),
      h("span", { class: "what" },
        h("span", { class: "title" }, known && known.title ? known.title : id), " ",
        h("span", { class: "genres" }, known && known.genres ? known.genres : "")),
      h("span", { class: "type small" }, e.type + (e.rating !== null && e.rating !== undefined ? ` ${e.rating}` : ""),
        n ? h("span", { class: "drove-n", title: "how many listed items this event drove" }, ` → ${n}`) : null));
  }));
  lookUpTitles(shown.map((e) => String(e.item_id)));
}

// Titles of history items no answer has named yet, from the similar-items route (its `item` field).
async function lookUpTitles(ids) {
  const todo = [...new Set(ids)].filter((id) => !state.titles.has(id) && !state.lookedUp.has(id)).slice(0, TITLE_LOOKUPS);
  if (!todo.length) return;
  for (const id of todo) {
    state.lookedUp.add(id);
    try {
      remember((await api("GET", path(ROUTES.similar, { item_id: id }, { k: 1 }))).item);
    } catch { /* an item the model no longer knows keeps its id */ }
  }
  for (const li of $("timeline").querySelectorAll("li.event")) {
    const t = state.titles.get(li.dataset.itemId);
    if (t) {
      li.querySelector(".title").textContent = t.title || li.dataset.itemId;
      li.querySelector(".genres").textContent = t.genres || "";
    }
  }
}

// ---------------------------------------------------------------- search and similar items
async function search(query) {
  const k = Math.max(1, Math.min(100, Number($("k").value) || 10));
  try {
    const out = await api("POST", path(ROUTES.anonRecs), { query, k, explain: true, exclude_seen: false });
    $("results-title").textContent = `Search: “${query}”`;
    fill($("results"), out.items.map((it) => itemRow(it)));
    notify("");
  } catch (e) {
    notify(e.message);
  }
}

async function similar(item) {
  try {
    const out = await api("GET", path(ROUTES.similar, { item_id: item.item_id }, { k: 10 }));
    $("results-title").textContent = `Similar to “${out.item.title || out.item.item_id}”`;
    fill($("results"), out.items.map((it) => itemRow(it, { because: false })));
    notify("");
  } catch (e) {
    notify(e.message);
  }
}

// ---------------------------------------------------------------- admin
async function addItem() {
  const item = {
    item_id: $("item-id").value.trim(),
    title: $("item-title").value.trim(),
    genres: $("item-genres").value.trim() || null,
  };
  const description = $("item-text").value.trim();
  // What the language model reads: the same fields a catalogue row gives it.
  item.text = [item.title, item.genres, description].filter(Boolean).join(". ");
  try {
    const out = await api("POST", path(ROUTES.items), { items: [item] }, { admin: true });
    const verb = out.added.length ? "Added" : "Updated";
    $("admin-status").textContent = `${verb} ${item.item_id}; the catalogue has ${out.n_items} items.`;
    state.titles.set(item.item_id, { title: item.title, genres: item.genres });
    await ops();
    if (state.mode) await refresh(`added ${item.title}`);
  } catch (e) {
    $("admin-status").textContent = e.message;
  }
}

async function reloadModel() {
  const dir = $("model-dir").value.trim();
  try {
    const out = await api("POST", path(ROUTES.reload), dir ? { model_dir: dir } : undefined, { admin: true });
    $("admin-status").textContent = `Reloaded: model version ${out.model.version} (${out.model.model}).`;
    await ops();
    if (state.mode) await refresh("model reloaded");
  } catch (e) {
    $("admin-status").textContent = e.message;
  }
}

// ---------------------------------------------------------------- health and metrics
// Prometheus text -> [{name, labels, value}].
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function routeStats(samples) {
  const routes = new Map();
  const get = (r) => routes.get(r) || routes.set(r, { n: 0, sum: 0, buckets: [] }).get(r);
  for (const s of samples) {
    if (s.name === "recfuse_http_requests_total") get(s.labels.route).n += s.value;
    else if (s.name === "recfuse_http_request_duration_seconds_sum") get(s.labels.route).sum = s.value;
    else if (s.name === "recfuse_http_request_duration_seconds_bucket") get(s.labels.route).buckets.push([Number(s.labels.le), s.value]);
  }
  return routes;
}

function p95(buckets) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!total) return null;
  const hit = buckets.find(([, acc]) => acc >= 0.95 * total);
  return hit && Number.isFinite(hit[0]) ? hit[0] * 1000 : null;
}

async function ops() {
  try {
    const [health, text] = await Promise.all([api("GET", path(ROUTES.health)), api("GET", path(ROUTES.metrics), undefined, { raw: true })]);
    const m = health.model;
    $("model-line").textContent = `${m.model} on ${m.dataset || "?"}, version ${m.version}, ${m.n_items} items`;
    const samples = parseMetrics(text);
    const value = (name) => (samples.find((s) => s.name === name) || { value: 0 }).value;
    const rows = [
      ["status", health.status], ["model", `${m.model} v${m.version} (${m.n_items} items)`],
      ["store", `${health.store.backend}, schema ${health.store.schema_version}`],
      ["events in memory", health.store.events.toLocaleString()], ["users", health.users.toLocaleString()],
      ["events stored since start", value("recfuse_events_stored_total").toLocaleString()],
    ];
    fill($("health"), rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-key": k }, v)]));
    const now = performance.now();
    const stats = routeStats(samples);
    const prev = state.ops;
    const body = [...stats.entries()].sort((a, b) => b[1].n - a[1].n).map(([route, s]) => {
      const before = prev && prev.stats.get(route);
      const dn = before ? s.n - before.n : null;
      const dt = prev ? (now - prev.at) / 1000 : null;
      const mean = before && dn > 0 ? ((s.sum - before.sum) / dn) * 1000 : s.n ? (s.sum / s.n) * 1000 : null;
      const tail = p95(s.buckets);
      return h("tr", { "data-route": route }, h("td", {}, route), h("td", {}, s.n),
        h("td", {}, dn === null ? "–" : (dn / dt).toFixed(1)), h("td", {}, fmt(mean, 1)),
        h("td", {}, tail === null ? "–" : tail >= 1000 ? "> 1000" : fmt(tail, 1)));
    });
    fill($("metrics").tBodies[0], body);
    state.ops = { at: now, stats };
  } catch (e) {
    fill($("health"), [h("dt", {}, "status"), h("dd", {}, e.message)]);
  }
}

// Whether GET recommendations takes a request time (`at`, for the "time away" control) and explain=text,
// and which user routes the server has.
async function readApi() {
  try {
    const doc = await api("GET", path(ROUTES.openapi));
    const op = doc.paths["/" + ROUTES.userRecs].get;
    state.takesAt = (op.parameters || []).some((p) => p.name === "at" && p.in === "query");
    const explain = (op.parameters || []).find((p) => p.name === "explain" && p.in === "query");
    const takes = (schema) => Boolean(schema) && (schema.const === "text" || (schema.enum || []).includes("text")
      || (schema.anyOf || []).some(takes));
    state.takesText = Boolean(explain) && takes(explain.schema);
    state.hasEvents = Boolean(doc.paths["/" + ROUTES.userEvents]);
    state.hasProfile = Boolean(doc.paths["/" + ROUTES.profile]);
  } catch {
    state.takesAt = false;
  }
  $("away").disabled = !state.takesAt;
  $("away-note").textContent = state.takesAt ? "" : "(off: this server's recommendations route takes no request time, at)";
}

// ---------------------------------------------------------------- wiring
function start() {
  $("api-key").addEventListener("input", (e) => { state.apiKey = e.target.value.trim(); });
  $("admin-key").addEventListener("input", (e) => { state.adminKey = e.target.value.trim(); });
  $("user-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("user-id").value.trim();
    if (id) showUser(id);
  });
  $("anon-start").addEventListener("click", startAnonymous);
  $("away").addEventListener("change", () => { if (state.mode) refresh(""); });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("query").value.trim();
    if (q) search(q);
  });
  $("item-form").addEventListener("submit", (e) => { e.preventDefault(); addItem(); });
  $("reload-form").addEventListener("submit", (e) => { e.preventDefault(); reloadModel(); });
  readApi();
  ops();
  setInterval(() => { if (document.visibilityState === "visible") ops(); }, OPS_EVERY_MS);
}

document.addEventListener("DOMContentLoaded", start);
