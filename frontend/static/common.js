// Helpers shared by the pages: fetching JSON, numbers that may be NaN/Inf, colours, formatting.

/** Fetch JSON; throws an Error whose message a person can read (with .status and .body). */
export function fetchJSON(url, options = {}) {
  return readJSON(fetch(url, { headers: { Accept: "application/json" }, ...options }));
}

/** The JSON of a pending fetch (e.g. one a page started early, before its scripts loaded). */
export async function readJSON(pending) {
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
const STATUS_ORDER = ["running", "queued", "succeeded", "failed", "cancelled"];
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

/** The refresh interval: window.INITLAB_REFRESH_MS, default 2000 ms. */
export function refreshMs() {
  const value = Number(window.INITLAB_REFRESH_MS);
  return Number.isFinite(value) && value > 0 ? value : 2000;
}

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
