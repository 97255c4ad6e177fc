// "Are the differences real?": per initializer, the mean final validation accuracy with its 95 %
// bootstrap CI over seeds, the seed-paired difference against a baseline (a CI that includes 0
// is flagged "not distinguishable"), epochs to a chosen validation accuracy, and the ranking.
// The section fetches its own numbers (GET /api/studies/{id}/summary without curves) so the
// baseline and threshold controls only refetch this, and polls while any run is unfinished.
import { colourMap, el, fetchJSON } from "./common.js";

const root = document.getElementById("study");
const section = document.getElementById("stats-section");
const body = document.getElementById("stats-body");
const studyId = root?.dataset.studyId;
const POLL_MS = 3000;
const DEFAULT_THRESHOLD = 90;

const state = { baseline: null, threshold: DEFAULT_THRESHOLD, keys: "", request: 0, timer: null, renders: 0 };
const parts = {};

const pct = (value, digits = 2) => `${(value * 100).toFixed(digits)}`;
const signed = (value) => `${value > 0 ? "+" : value < 0 ? "−" : ""}${pct(Math.abs(value))}`;
const VERDICT_TEXT = {
  higher: "higher", lower: "lower", "not distinguishable": "not distinguishable",
  "too few paired seeds": "too few paired seeds", baseline: "baseline",
};

function buildControls() {
  parts.baseline = el("select", { id: "stats-baseline", onchange: () => { state.baseline = parts.baseline.value; refresh(); } });
  parts.threshold = el("input", {
    id: "stats-threshold", type: "number", min: "0.1", max: "100", step: "0.5", value: String(DEFAULT_THRESHOLD),
    "aria-describedby": "stats-threshold-error", onchange: onThreshold,
  });
  parts.thresholdError = el("p", { id: "stats-threshold-error", class: "field-error", role: "alert" });
  parts.summary = el("p", { id: "stats-baseline-note", class: "verdict" });
  parts.table = el("table", { id: "stats-table", class: "data-table" },
    el("caption", { class: "visually-hidden", text: "Per initializer: rank, accuracy with 95 % bootstrap CIs over seeds, "
      + "the seed-paired difference against the baseline, and epochs to the threshold" }),
    el("thead"), el("tbody"));
  parts.status = el("p", { id: "stats-status", class: "muted", role: "status", "aria-live": "polite" });
  parts.method = el("p", { class: "hint" });
  body.replaceChildren(
    el("div", { class: "controls", role: "group", "aria-label": "Statistics options" },
      el("div", { class: "field inline" }, el("label", { for: "stats-baseline", text: "Baseline" }), parts.baseline),
      el("div", { class: "field inline" },
        el("label", { for: "stats-threshold", text: "Threshold (val. accuracy, %)" }), parts.threshold, parts.thresholdError)),
    parts.summary, el("div", { class: "table-wrap" }, parts.table), parts.status, parts.method);
}

function onThreshold() {
  const value = Number(parts.threshold.value);
  const ok = parts.threshold.value.trim() !== "" && Number.isFinite(value) && value > 0 && value <= 100;
  parts.threshold.setAttribute("aria-invalid", ok ? "false" : "true");
  parts.thresholdError.textContent = ok ? "" : "Threshold: a number above 0 and at most 100.";
  if (!ok) return;
  state.threshold = value;
  refresh();
}

function headRow(threshold) {
  return el("tr", {}, ...[
    ["Rank", "num"], ["Initializer", ""], ["Final val. accuracy [95 % CI]", "num"],
    ["Δ final vs baseline [95 % CI]", "num"], ["", ""], [`Epochs to ≥ ${threshold} %`, "num"], ["Runs counted", ""],
  ].map(([text, cls], i) => el("th", { scope: "col", class: cls },
    i === 4 ? el("span", { class: "visually-hidden", text: "Difference verdict" }) : text)));
}

/** Final accuracy with its CI; the best epoch's accuracy (also over seeds) in the tooltip. */
function accuracyCell(stat, best) {
  if (!stat || stat.mean === null) return el("td", { class: "num muted", text: "–" });
  const ci = stat.ci_low === null ? "no CI (1 seed)" : `[${pct(stat.ci_low)}, ${pct(stat.ci_high)}]`;
  const bestText = best?.mean === null || !best ? "" : `; best epoch's accuracy ${pct(best.mean)} %`
    + (best.ci_low === null ? "" : ` [${pct(best.ci_low)}, ${pct(best.ci_high)}]`);
  return el("td", { class: "num", title: `${stat.n} seed(s)${bestText}` },
    el("span", { class: "stat-mean", text: `${pct(stat.mean)} %` }), " ", el("span", { class: "stat-ci muted", text: ci }));
}

function differenceCells(diff, baselineLabel) {
  const verdict = el("span", { class: `stat-badge stat-${diff.verdict.replace(/ /g, "-")}`, text: VERDICT_TEXT[diff.verdict] ?? diff.verdict,
                               title: diff.verdict === "not distinguishable" ? "the 95 % CI of the paired difference includes 0"
                                 : diff.verdict === "too few paired seeds" ? "a CI needs at least 2 seeds finished on both sides"
                                   : "" });
  if (diff.verdict === "baseline") return [el("td", { class: "num muted", text: "—" }), el("td", {}, verdict)];
  if (diff.mean === null) return [el("td", { class: "num muted", text: "–" }), el("td", {}, verdict)];
  const ci = diff.ci_low === null ? "no CI" : `[${signed(diff.ci_low)}, ${signed(diff.ci_high)}]`;
  return [el("td", { class: "num", title: `paired over seed(s) ${diff.seeds.join(", ")} against ${baselineLabel}` },
    el("span", { class: "stat-mean", text: `${signed(diff.mean)} pp` }), " ", el("span", { class: "stat-ci muted", text: ci })),
  el("td", {}, verdict)];
}

function thresholdCell(reach) {
  if (!reach.runs) return el("td", { class: "num muted", text: "–" });
  const count = `${reach.reached} of ${reach.runs} seeds`;
  if (!reach.reached) return el("td", { class: "num muted", text: `never (${count})` });
  const range = reach.min === reach.max ? "" : ` (${reach.min}–${reach.max})`;
  return el("td", { class: "num" }, `${reach.mean.toFixed(1)}${range}`, el("span", { class: "muted", text: ` · ${count}` }));
}

function runsCell(stats) {
  const words = [`${stats.used} of ${stats.runs}`];
  if (stats.diverged) words.push(`${stats.diverged} diverged`);
  if (stats.active) words.push(`${stats.active} still training`);
  if (stats.excluded) words.push(`${stats.excluded} failed/cancelled, left out`);
  return el("td", { class: stats.diverged ? "stat-runs diverged" : "stat-runs", text: words.join(" · ") });
}

function rankCell(stats, labels) {
  if (stats.rank === null) return el("td", { class: "num muted", text: "–" });
  const tie = stats.tied_with.length ? `tied with ${stats.tied_with.map((k) => labels.get(k) ?? k).join(", ")}` : "";
  return el("td", { class: "num", title: tie }, String(stats.rank), tie ? el("span", { class: "stat-tie", text: " (tie)" }) : null);
}

function syncBaselineOptions(groups, chosen) {
  const keys = groups.map((g) => g.key).join("\n");
  if (keys !== state.keys) {
    state.keys = keys;
    parts.baseline.replaceChildren(...groups.map((g) => el("option", { value: g.key, text: g.label })));
  }
  if (chosen !== null) parts.baseline.value = chosen;
}

function render(view) {
  const info = view.statistics;
  const groups = view.groups.filter((g) => g.stats);
  if (!info || !groups.length) return;
  const labels = new Map(view.groups.map((g) => [g.key, g.label]));
  const colours = colourMap(view.groups.map((g) => g.key)); // the same colours as every chart of the page
  const baselineLabel = labels.get(info.baseline) ?? info.baseline ?? "–";
  syncBaselineOptions(view.groups, info.baseline);
  parts.summary.textContent = `Differences are against ${baselineLabel} (${info.baseline_reason}), seed by seed: `
    + "the same seed means the same data order and dropout, so only the initial weights differ.";
  parts.table.tHead.replaceChildren(headRow(info.threshold));
  const order = [...groups].sort((a, b) => (a.stats.rank ?? Infinity) - (b.stats.rank ?? Infinity));
  parts.table.tBodies[0].replaceChildren(...order.map((group) => el("tr", {
    "data-group": group.key, "data-verdict": group.stats.difference.final_val_accuracy.verdict,
    class: group.key === info.baseline ? "stat-baseline-row" : "",
  },
  rankCell(group.stats, labels),
  el("td", { title: group.formula || "" },
    el("span", { class: "swatch", style: `background:${colours.get(group.key)}`, "aria-hidden": "true" }), group.label),
  accuracyCell(group.stats.final_val_accuracy, group.stats.best_val_accuracy),
  ...differenceCells(group.stats.difference.final_val_accuracy, baselineLabel),
  thresholdCell(group.stats.epochs_to_threshold), runsCell(group.stats))));
  const active = groups.reduce((sum, g) => sum + g.stats.active, 0);
  parts.status.textContent = active ? `${active} run(s) still training: each is counted once it finishes; this table updates by itself.` : "";
  parts.method.textContent = `Method: ${info.method}. Which runs count: ${info.diverged_rule} `
    + "Ties: equal mean final accuracy. With few seeds a bootstrap CI is a rough guide, not a test.";
  section.hidden = !groups.some((g) => g.stats.used > 0); // shown once any run has finished
  state.renders += 1;
  section.dataset.renders = String(state.renders);
  return view.groups.some((g) => g.table.active > 0);
}

async function refresh() {
  clearTimeout(state.timer);
  state.timer = null;
  const request = ++state.request;
  const query = new URLSearchParams({ runs: "false", max_points: "2", threshold: String(state.threshold) });
  if (state.baseline) query.set("baseline", state.baseline);
  let live = false;
  try {
    const view = await fetchJSON(`/api/studies/${studyId}/summary?${query}`);
    if (request !== state.request) return; // a newer request (another baseline or threshold) is on its way
    live = render(view) ?? false;
  } catch (err) {
    if (request !== state.request) return;
    if (err.status === 404) return;
    console.warn("initlab: statistics", err);
    if (parts.status) parts.status.textContent = `Could not load the statistics (${err.message}); trying again shortly.`;
    live = true;
  }
  if (live) state.timer = setTimeout(refresh, POLL_MS);
}

if (section && body && studyId) {
  buildControls();
  refresh();
  // A retry or a new run makes the page live again (study.js sets data-live): poll once more.
  new MutationObserver(() => { if (root.dataset.live === "true" && !state.timer) refresh(); })
    .observe(root, { attributes: true, attributeFilter: ["data-live"] });
}
