// "Are the differences real?": per initializer, the mean final validation accuracy with its 95 %
// t interval over seeds, the seed-paired difference against a baseline with the paired t-test's
// verdict, p-value and interval, the seeds a difference of that size would need (80 % power),
// epochs to a chosen validation accuracy, and the ranking in tiers (ties shown as ties). In a grid
// study every comparison stays inside its cell (same activation, depth, σ_b²): a heading row per cell
// names that cell's baseline, and the baseline control picks an initializer, used in every cell.
// A section renderer of the study page (study.js owns the refresh cycle): ``reload()`` asks for
// the numbers (GET /api/studies/{id}/summary without curves, with this section's baseline and
// threshold), so changing those controls refetches only this section.
import { colourMap, el, fetchJSON } from "./common.js";
import { shortLabel } from "./summary_table.js";

const section = document.getElementById("stats-section");
const caveat = document.getElementById("verdict-caveat"); // under the verdict sentence, which reads the table alone
const body = document.getElementById("stats-body");
let studyId = null;
const DEFAULT_THRESHOLD = 90;

const state = { baseline: null, threshold: DEFAULT_THRESHOLD, keys: "", request: 0, renders: 0 };
const parts = {};

const pct = (value, digits = 2) => `${(value * 100).toFixed(digits)}`;
const signed = (value) => `${value > 0 ? "+" : value < 0 ? "−" : ""}${pct(Math.abs(value))}`;
const VERDICT_TEXT = {
  higher: "higher", lower: "lower", "not distinguishable": "not distinguishable",
  "too few paired seeds": "too few paired seeds", baseline: "baseline",
};

function buildControls() {
  parts.baseline = el("select", { id: "stats-baseline", onchange: () => { state.baseline = parts.baseline.value; reload(); } });
  parts.threshold = el("input", {
    id: "stats-threshold", type: "number", min: "0.1", max: "100", step: "0.5", value: String(DEFAULT_THRESHOLD),
    "aria-describedby": "stats-threshold-error", onchange: onThreshold,
  });
  parts.thresholdError = el("p", { id: "stats-threshold-error", class: "field-error", role: "alert" });
  parts.summary = el("p", { id: "stats-baseline-note", class: "verdict" });
  parts.table = el("table", { id: "stats-table", class: "data-table" },
    el("caption", { class: "visually-hidden", text: "Per initializer: rank (tiers), accuracy with 95 % t intervals over "
      + "seeds, the seed-paired difference against the baseline with its paired t-test, the seeds needed for 80 % power, "
      + "and epochs to the threshold" }),
    el("thead"), el("tbody"));
  parts.status = el("p", { id: "stats-status", class: "muted", role: "status", "aria-live": "polite" });
  parts.method = el("p", { id: "stats-method", class: "hint" });
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
  reload();
}

function headRow(threshold) {
  const verdict = el("span", { class: "visually-hidden", text: "Difference verdict and p-value" });
  const seeds = ["Seeds for ", el("br"), "80 % power"];
  return el("tr", {}, ...[
    ["Rank", "num"], ["Initializer", ""], ["Final val. accuracy [95 % CI]", "num"],
    ["Δ final vs baseline [95 % CI]", "num"], [verdict, ""], [seeds, "num"], [`Epochs to ≥ ${threshold} %`, "num"],
    ["Runs counted", ""],
  ].map(([content, cls], i) => el("th", {
    scope: "col", class: cls,
    title: i === 5 ? "paired seeds at which the test would catch a true difference of the observed size and spread "
      + "4 times in 5" : undefined,
  }, ...[content].flat())));
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

const pText = (p) => (p < 0.001 ? "p < 0.001" : `p = ${p.toFixed(p < 0.01 ? 3 : 2)}`);

/** "Holm-adjusted over the k comparisons in this cell": the family the verdict's p is adjusted over. */
const family = (diff) => (diff.comparisons > 1
  ? `Holm-adjusted over the ${diff.comparisons} comparisons in this cell` : "one comparison in this cell, so not adjusted");

function verdictTitle(diff) {
  if (diff.verdict === "too few paired seeds") return "a test needs at least 2 seeds finished on both sides";
  if (diff.verdict === "baseline" || diff.p_adjusted === null || diff.p_adjusted === undefined) return "";
  const how = diff.test === "sign-flip"
    ? "every paired difference is the same (no spread), so the t-test is undefined; the exact sign-flip test "
      + "decides instead, and it cannot call a difference below 6 seeds. "
    : "paired t-test. ";
  const adjusted = `${pText(diff.p_adjusted)} ${family(diff)}`;
  if (diff.verdict === "not distinguishable") {
    return `${how}Verdict: p ≥ 0.05 (${adjusted}); the 95 % CI shown is unadjusted`;
  }
  return `${how}Verdict: p < 0.05 (${adjusted}); the 95 % CI shown is unadjusted`;
}

function differenceCells(diff, baselineLabel) {
  const verdict = el("span", { class: `stat-badge stat-${diff.verdict.replace(/ /g, "-")}`, text: VERDICT_TEXT[diff.verdict] ?? diff.verdict,
                               title: verdictTitle(diff) });
  if (diff.verdict === "baseline") return [el("td", { class: "num muted", text: "—" }), el("td", {}, verdict)];
  if (diff.mean === null) return [el("td", { class: "num muted", text: "–" }), el("td", {}, verdict)];
  const ci = diff.ci_low !== null ? `[${signed(diff.ci_low)}, ${signed(diff.ci_high)}]`
    : diff.test === "sign-flip" ? "no CI (no spread)" : "no CI";
  const p = diff.p_value === null ? null : el("span", { class: "stat-p muted", text: ` ${pText(diff.p_value)}` });
  const adjusted = diff.p_value === null || !(diff.comparisons > 1) ? null
    : el("span", { class: "stat-p-adjusted muted", title: family(diff), text: ` (Holm ${pText(diff.p_adjusted)})` });
  return [el("td", { class: "num", title: `paired over seed(s) ${diff.seeds.join(", ")} against ${baselineLabel}; `
      + "95 % CI not adjusted for the other comparisons" },
    el("span", { class: "stat-mean", text: `${signed(diff.mean)} pp` }), " ", el("span", { class: "stat-ci muted", text: ci })),
  el("td", {}, verdict, p, adjusted)];
}

/** Seeds for 80 % power at the observed difference and spread: how to turn "not distinguishable" into an answer. */
function seedsCell(diff) {
  const why = diff.verdict === "baseline" ? "" : diff.n < 2 ? "needs at least 2 paired seeds to estimate the spread"
    : diff.test === "sign-flip" ? "no spread in the differences: nothing to size a study from"
      : diff.seeds_needed_over_cap ? "" : "no difference observed: no number of seeds would find it";
  if (diff.seeds_needed !== null || diff.seeds_needed_over_cap) {
    const text = diff.seeds_needed_over_cap ? "> 1000" : String(diff.seeds_needed);
    return el("td", {
      class: "num stat-seeds",
      title: `if the true difference were ${signed(diff.mean)} pp with this spread (SD ${pct(diff.std)} pp), a paired `
        + `t-test at 5 %${diff.comparisons > 1 ? `, Holm-adjusted over the cell's ${diff.comparisons} comparisons,` : ""}`
        + ` would find it at least 4 times in 5 with ${text} seeds; this study has ${diff.n}`,
    }, text);
  }
  return el("td", { class: "num muted stat-seeds", title: why, text: "–" });
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
  const name = (k) => labels.get(k) ?? k;
  const apart = stats.tied_with.filter((k) => (stats.differs_from ?? []).includes(k));
  const tie = stats.tied_with.length ? `same rank as ${stats.tied_with.map(name).join(", ")}: none of them is told `
    + "apart from the rank's highest mean by the paired t-test (Holm-adjusted over all pairs in this cell)"
    + (apart.length ? `, though the test does tell this one from ${apart.map(name).join(", ")}` : "") : "";
  return el("td", { class: "num", title: tie }, String(stats.rank), tie ? el("span", { class: "stat-tie", text: " (tie)" }) : null);
}


/** One option per initializer choice (its key without the cell is what ?baseline= names). */
function syncBaselineOptions(groups, chosen) {
  const choices = new Map();
  for (const g of groups) if (!choices.has(g.stats.choice ?? g.key)) choices.set(g.stats.choice ?? g.key, shortLabel(g));
  const keys = [...choices.keys()].join("\n");
  if (keys !== state.keys) {
    state.keys = keys;
    parts.baseline.replaceChildren(...[...choices].map(([value, text]) => el("option", { value, text })));
  }
  const group = groups.find((g) => g.key === chosen);
  if (group) parts.baseline.value = group.stats.choice ?? group.key;
}

/** A grid cell's heading row: what its rows are compared within, and against which baseline. */
function cellRow(cell, labels) {
  const against = cell.baseline === null ? "no baseline" : `against ${labels.get(cell.baseline) ?? cell.baseline} (${cell.baseline_reason})`;
  return el("tr", { class: "stat-cell-row", "data-cell": cell.cell },
    el("th", { scope: "colgroup", colspan: "8", text: `${cell.cell}: ${against}${cell.ranking_note ? `; ${cell.ranking_note}` : ""}` }));
}

/**
 * What the seed-paired test says of each lead the verdict sentence names (the highest mean of its cell):
 * where it cannot tell the leader from others, the lead is a mean, not a finding.
 */
function leadCaveat(groups, labels) {
  const notes = [];
  const byKey = new Map(groups.map((group) => [group.key, group]));
  for (const group of groups) {
    if (!group.table.leader) continue;
    const where = group.cell ? `${group.cell}: ` : "";
    const others = group.stats.tied_with.map((key) => (byKey.has(key) ? shortLabel(byKey.get(key)) : labels.get(key) ?? key));
    if (group.stats.rank === null || group.stats.used < 2) {
      notes.push(`${where}${shortLabel(group)} has the highest mean, but too few of its seeds have finished for the `
        + "seed-paired test to say whether it leads.");
    } else if (others.length) {
      notes.push(`${where ? `${where}the` : "The"} seed-paired test cannot tell ${shortLabel(group)} from `
        + `${others.join(", ")} (same tier, below): its lead is the highest mean, not a significant difference.`);
    }
  }
  return notes.join(" ");
}

function render(view) {
  const info = view.statistics;
  const groups = view.groups.filter((g) => g.stats);
  if (!info || !groups.length) return;
  const labels = new Map(view.groups.map((g) => [g.key, g.label]));
  const colours = colourMap(view.groups.map((g) => g.key)); // the same colours as every chart of the page
  const baselineLabel = labels.get(info.baseline) ?? info.baseline ?? "–";
  const grid = (info.cells ?? []).some((cell) => cell.cell !== null);
  syncBaselineOptions(groups, info.baseline);
  const note = grid ? "" : (info.cells ?? [])[0]?.ranking_note;
  parts.summary.textContent = (grid
    ? "Differences are within each grid cell (same activation, depth and σ_b²), against that cell's baseline "
      + "(named above its rows), seed by seed: the same seed in the same cell means the same network, data order and "
      + "dropout, so only the initial weights differ. Ranks, too, are per cell."
    : `Differences are against ${baselineLabel} (${info.baseline_reason}), seed by seed: `
      + "the same seed means the same data order and dropout, so only the initial weights differ.")
    + (note ? ` Ranks: ${note}.` : "");
  parts.table.tHead.replaceChildren(headRow(info.threshold));
  const place = new Map(info.ranking.map((key, i) => [key, i])); // cell by cell, tiers, then mean, as the API orders them
  const order = [...groups].sort((a, b) => (place.get(a.key) ?? Infinity) - (place.get(b.key) ?? Infinity));
  const cells = new Map((info.cells ?? []).map((cell) => [cell.cell, cell]));
  const rows = [];
  let cell;
  for (const group of order) {
    const baseline = group.stats.baseline ?? info.baseline;
    if (grid && group.stats.cell !== cell) {
      cell = group.stats.cell;
      if (cells.has(cell)) rows.push(cellRow(cells.get(cell), labels));
    }
    rows.push(el("tr", {
      "data-group": group.key, "data-verdict": group.stats.difference.final_val_accuracy.verdict,
      class: group.key === baseline ? "stat-baseline-row" : "",
    },
    rankCell(group.stats, labels),
    el("td", { title: group.formula || "" },
      el("span", { class: "swatch", style: `background:${colours.get(group.key)}`, "aria-hidden": "true" }), group.label),
    accuracyCell(group.stats.final_val_accuracy, group.stats.best_val_accuracy),
    ...differenceCells(group.stats.difference.final_val_accuracy, labels.get(baseline) ?? baseline ?? "–"),
    seedsCell(group.stats.difference.final_val_accuracy),
    thresholdCell(group.stats.epochs_to_threshold), runsCell(group.stats)));
  }
  parts.table.tBodies[0].replaceChildren(...rows);
  const active = groups.reduce((sum, g) => sum + g.stats.active, 0);
  parts.status.textContent = active ? `${active} run(s) still training: each is counted once it finishes; this table updates by itself.` : "";
  parts.method.replaceChildren(
    el("span", { class: "stat-method", text: `Method: ${info.method}` }), " ",
    el("span", { class: "stat-ranking-rule", text: info.ranking_rule }), " ",
    el("span", { text: `Which runs count: ${info.diverged_rule}` }));
  section.hidden = !groups.some((g) => g.stats.used > 0); // shown once any run has finished
  if (caveat) caveat.textContent = section.hidden ? "" : leadCaveat(groups, labels);
  state.renders += 1;
  section.dataset.renders = String(state.renders);
}

/** Fetch this section's numbers and draw them; a newer request (another baseline or threshold) wins. */
export async function reload() {
  if (!studyId) return;
  const request = ++state.request;
  const query = new URLSearchParams({ runs: "false", max_points: "2", threshold: String(state.threshold) });
  if (state.baseline) query.set("baseline", state.baseline);
  try {
    const view = await fetchJSON(`/api/studies/${studyId}/summary?${query}`);
    if (request === state.request) render(view);
  } catch (err) {
    if (request !== state.request || err.status === 404) return;
    console.warn("initlab: statistics", err);
    parts.status.textContent = `Could not load the statistics (${err.message}); they are fetched again with the next update.`;
  }
}

/** Build the controls once; the page calls reload() on every refresh of its data. */
export function mountStats(id) {
  if (!section || !body) return false;
  studyId = id;
  buildControls();
  return true;
}
