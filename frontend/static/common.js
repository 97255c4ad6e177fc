// Helpers shared by the pages: fetching JSON (with the API token), numbers that may be NaN/Inf, colours, formatting.

/** Fetch JSON; throws an Error whose message a person can read (with .status and .body). */
export function fetchJSON(url, options = {}) {
  return parseJSON(authFetch(url, { headers: { Accept: "application/json" }, ...options }));
}

/**
 * The JSON of a pending GET a page started early, before its scripts loaded. That fetch
 * carried no token: when it was refused (401) it is repeated here with the token.
 */
export function readJSON(pending) {
  return parseJSON(Promise.resolve(pending).then((response) => (response.status === 401
    ? authFetch(response.url, { headers: { Accept: "application/json" } }, response) : response)));
}

async function parseJSON(pending) {
  let response;
  try {
    response = await pending;
  } catch (err) {
    const error = new Error(`cannot reach the server (${err.message})`);
    error.status = 0;
    throw error;
  }
  let body = null;
  const text = await response.text();
  if (text) {
    try { body = JSON.parse(text); } catch { body = text; }
  }
  if (!response.ok) {
    const detail = body && typeof body === "object" && typeof body.detail === "string" ? body.detail : response.statusText;
    const error = new Error(`${response.status} ${detail}`);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

// The API token (INITLAB_API_TOKEN). A server with a token answers 401 to a write without it
// (and to reads too with INITLAB_READ_REQUIRES_TOKEN=true): the page then asks for it once, in
// the dialog of base.html, keeps it in localStorage and repeats the call.

const TOKEN_KEY = "initlab.apiToken";
let asking = null;        // the open dialog's promise: calls refused together share one question
let declined = false;     // Cancel pressed: reads stop asking (writes, which a person starts, still ask)

export function storedToken() {
  try { return localStorage.getItem(TOKEN_KEY) || null; } catch { return null; }
}

function storeToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch { /* storage blocked: the token lasts as long as the page */ }
  showTokenControl();
}

/**
 * fetch options with an Authorization header when a token is stored. A write always goes out as
 * JSON: the server refuses any other content type (415), bodiless cancel and retry included.
 */
export function withToken(options = {}) {
  const headers = new Headers(options.headers ?? {});
  const token = storedToken();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const write = !["GET", "HEAD"].includes((options.method ?? "GET").toUpperCase());
  if (write && !headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  return { ...options, headers };
}

/**
 * fetch() with the stored token. On 401 it asks for the token (or, when the token it sent was
 * refused, says so and asks again), stores it and repeats the call; if the person cancels,
 * the 401 response is returned. `refused`: a 401 already received for this GET without a token.
 */
export async function authFetch(url, options = {}, refused = null) {
  let sent = null;
  let response = refused;
  if (!response) {
    sent = storedToken();
    response = await fetch(url, withToken(options));
  }
  const write = !["GET", "HEAD"].includes((options.method ?? "GET").toUpperCase());
  while (response.status === 401) {
    const current = storedToken();
    if (!current || current === sent) {  // nothing newer to try: ask the person
      if (declined && !write) return response;
      asking ??= askToken(sent !== null).finally(() => { asking = null; });
      if (!(await asking)) return response;
    }
    sent = storedToken();
    response = await fetch(url, withToken(options));
  }
  return response;
}

function askToken(wrong) {
  const dialog = document.getElementById("token-dialog");
  if (!dialog?.showModal) return Promise.resolve(false);  // a page without base.html's dialog
  const form = dialog.querySelector("form");
  const input = dialog.querySelector("input");
  const message = document.getElementById("token-error");
  const say = (text) => {
    message.textContent = text;
    message.hidden = !text;
    input.setAttribute("aria-invalid", text ? "true" : "false");
  };
  const before = document.activeElement;
  return new Promise((resolve) => {
    const finish = (ok) => {
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("close", cancelled);
      if (dialog.open) dialog.close();
      declined = !ok;
      before?.focus?.();
      resolve(ok);
    };
    const submit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!/^[\x21-\x7e]+$/.test(token)) {
        say(token ? "A token is one line of printable ASCII characters without spaces." : "Enter the token, or press Cancel.");
        input.focus();
        return;
      }
      storeToken(token);
      finish(true);
    };
    const cancelled = () => finish(false);  // Cancel or Escape closed the dialog
    form.addEventListener("submit", submit);
    dialog.addEventListener("close", cancelled);
    input.value = "";
    say(wrong ? "The server refused that token. Check it and enter it again." : "");
    dialog.showModal();
    input.focus();
  });
}

/** The header's "Forget API token" button: shown while a token is stored. */
function showTokenControl() {
  const button = document.getElementById("forget-token");
  if (button) button.hidden = !storedToken();
}

function setUpTokenControl() {
  const button = document.getElementById("forget-token");
  if (!button || button.dataset.ready) return;
  button.dataset.ready = "true";
  button.addEventListener("click", () => {
    storeToken(null);
    const note = document.getElementById("token-note");
    note.textContent = "API token forgotten.";
    note.focus();
    setTimeout(() => { note.textContent = ""; }, 5000);
  });
  document.getElementById("token-cancel")?.addEventListener("click", () => document.getElementById("token-dialog").close());
  window.addEventListener("storage", (event) => { if (event.key === TOKEN_KEY || event.key === null) showTokenControl(); });
  showTokenControl();
}

if (typeof document !== "undefined") setUpTokenControl();

/** A finite number, or null (NaN/Inf arrive as the strings "NaN", "Infinity", "-Infinity"). */
export function finite(value) {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  return null;
}

/** Is this value a non-finite marker (the run diverged)? */
export function isNonFinite(value) {
  if (typeof value === "number") return !Number.isFinite(value);
  return value === "NaN" || value === "Infinity" || value === "-Infinity";
}

/** Format a metric for a table cell: "0.4321", "NaN (diverged)", "∞ (diverged)" or "–". */
export function formatMetric(value, digits = 4, percent = false) {
  if (value === null || value === undefined) return "–";
  if (value === "NaN" || (typeof value === "number" && Number.isNaN(value))) return "NaN (diverged)";
  if (value === "Infinity" || value === Infinity) return "∞ (diverged)";
  if (value === "-Infinity" || value === -Infinity) return "−∞ (diverged)";
  if (typeof value !== "number") return String(value);
  return percent ? `${(value * 100).toFixed(1)} %` : value.toFixed(digits);
}

/** Okabe–Ito (colour-blind safe), most legible first; then Paul Tol's muted scheme for large studies. */
export const PALETTE = [
  "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#B8A000",
  "#332288", "#117733", "#882255", "#44AA99", "#999933", "#AA4499", "#88CCEE", "#DDCC77", "#661100", "#6699CC",
];

export function colourAt(index) {
  return PALETTE[index % PALETTE.length];
}

/** One key per initializer choice: its id plus its parameters (the same id may appear with two stddevs). */
export function initializerKey(id, params) {
  const entries = Object.entries(params || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length ? `${id}(${entries.map(([k, v]) => `${k}=${v}`).join(",")})` : id;
}

/** A label for an initializer choice: catalog name, plus parameters when it has any. */
export function initializerLabel(catalogById, id, params) {
  const name = catalogById.get(id)?.name ?? id;
  const entries = Object.entries(params || {});
  return entries.length ? `${name} (${entries.map(([k, v]) => `${k}=${v}`).join(", ")})` : name;
}

/** Local date and time, e.g. "2025-03-01 14:05". */
export function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** "2 queued · 1 succeeded", in a fixed order. */
const STATUS_ORDER = ["running", "queued", "succeeded", "diverged", "failed", "cancelled"];
export function formatCounts(counts) {
  const keys = Object.keys(counts || {}).sort((a, b) => STATUS_ORDER.indexOf(a) - STATUS_ORDER.indexOf(b));
  return keys.length ? keys.map((k) => `${counts[k]} ${k}`).join(" · ") : "no runs";
}

export const ACTIVE_STATUSES = new Set(["queued", "running"]);

/** Create an element with text content and attributes (never innerHTML: names come from users). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function badge(status) {
  return el("span", { class: `badge status-${status}`, text: status });
}

/** What the server put in the page for its scripts: the JSON of a data island (never executed). */
export function pageData(id = "page-data") {
  const island = document.getElementById(id);
  try { return island ? JSON.parse(island.textContent) : {}; } catch { return {}; }
}

/** The refresh interval: window.INITLAB_REFRESH_MS (a test's override), else the server's setting, else 2000 ms. */
export function refreshMs() {
  const value = Number(window.INITLAB_REFRESH_MS ?? pageData("initlab-config").refresh_ms);
  return Number.isFinite(value) && value > 0 ? value : 2000;
}

/**
 * A page's next refresh, paused while the tab is hidden: ``after(ms)`` calls ``load`` once, later
 * (not at all from a hidden tab); hiding the tab cancels it, showing it again calls ``resume``.
 */
export function pageTimer(load, resume) {
  let timer = null;
  const cancel = () => { clearTimeout(timer); timer = null; };
  document.addEventListener("visibilitychange", () => { cancel(); if (!document.hidden) resume(); });
  return { after(ms) { cancel(); if (!document.hidden) timer = setTimeout(load, ms); }, cancel };
}

/** A 422 item's message as a person reads it: without pydantic's "Value error, " prefix. */
export const problemText = (item, fallback = "") => String(item?.msg ?? fallback).replace(/^Value error, /, "");

/** "#0072B2" -> "rgba(0, 114, 178, alpha)", for bands and fills in an initializer's colour. */
export function withAlpha(hex, alpha) {
  const value = parseInt(hex.slice(1), 16);
  return `rgba(${(value >> 16) & 255}, ${(value >> 8) & 255}, ${value & 255}, ${alpha})`;
}

/** Colours by group key, in order of first appearance: the same initializer keeps its colour on every chart. */
export function colourMap(keys) {
  const map = new Map();
  for (const key of keys) if (!map.has(key)) map.set(key, colourAt(map.size));
  return map;
}

/** "45 s", "3 min 20 s", "1 h 05 min". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** "0.9781 ± 0.0012" (or as percentages); "–" when there is no value. */
export function formatMeanStd(stat, { percent = false, digits = 4 } = {}) {
  if (!stat || stat.mean === null || stat.mean === undefined) return "–";
  const scale = percent ? 100 : 1;
  const d = percent ? 1 : digits;
  const mean = (stat.mean * scale).toFixed(d);
  const std = stat.n > 1 && stat.std !== null ? ` ± ${(stat.std * scale).toFixed(d)}` : "";
  return `${mean}${std}${percent ? " %" : ""}`;
}
