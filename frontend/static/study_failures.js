// "Failure modes": per run the tags the server decided from what the worker measured (diverged,
// dead ReLUs, saturation, vanishing or exploding gradients, symmetry never broken), each a chip
// whose tooltip is its evidence (epoch, layer, value), and a heatmap of how often each
// initializer (per activation) ends in each mode. A section renderer of the study page: study.js
// fetches GET /api/studies/{id}/failures in its refresh cycle and hands the view to renderFailures;
// the section shows once a run has recorded its initialization.
import { badge, el } from "./common.js";
import { FONT, PLOT_CONFIG } from "./charts.js";

const section = document.getElementById("failures-section");
const body = document.getElementById("failures-body");

// Past this many runs the table lists only the runs with a failure mode until asked for all: a
// 512-run study's table was 20,000 px tall, one "none" row after another above the curves.
const LONG = 24;
const state = { renders: 0, showAll: false };
const parts = {};

function build() {
  parts.matrix = el("div", { id: "failures-matrix", class: "chart failures-matrix", role: "img",
                             "aria-label": "Share of runs with each failure mode, per initializer and activation (and grid cell)" });
  parts.table = el("table", { id: "failures-table", class: "data-table" },
    el("caption", { class: "visually-hidden", text: "Every measured run with its failure modes; focus or click a tag for its evidence" }),
    el("thead", {}, el("tr")),
    el("tbody"));
  // A tag's evidence, written here on focus or click: a title tooltip shows on hover only, never on focus or touch.
  parts.evidence = el("p", { id: EVIDENCE_ID, class: "hint failure-evidence", "aria-live": "polite",
                             text: "Focus or click a tag to read its evidence here." });
  parts.table.addEventListener("focusin", (event) => showEvidence(event.target));
  parts.table.addEventListener("click", (event) => showEvidence(event.target));
  parts.status = el("p", { id: "failures-status", class: "muted", role: "status", "aria-live": "polite" });
  parts.toggle = el("button", { type: "button", id: "failures-show-all", class: "secondary", hidden: true,
                                onclick: () => { state.showAll = !state.showAll; if (state.view) renderFailures(state.view); } });
  parts.rules = el("dl", { class: "failure-rules" });
  body.replaceChildren(
    el("p", { class: "hint", text: "Decided from the worker's measurements on the fixed probe batch, at initialization "
      + "(epoch 0) and at each run's latest epoch. Hover, focus or click a tag for its evidence." }),
    el("h3", { text: "How often each initializer fails" }), parts.matrix,
    el("h3", { text: "Tags per run" }), el("div", { class: "table-wrap" }, parts.table), parts.toggle, parts.evidence, parts.status,
    el("details", { class: "failure-help" }, el("summary", { text: "What each tag means" }), parts.rules));
}

const EVIDENCE_ID = "failures-evidence";

/** A run's (or matrix row's) grid cell as the summary names it, with σ_w² in a weight-variance sweep ("" without a grid). */
export const cellText = (item) => [item.weight_variance !== null && item.weight_variance !== undefined
  ? `σ_w² ${item.weight_variance}` : null, item.cell].filter(Boolean).join(" · ");

/** The study has a grid (activations, depths, σ_b² or σ_w²): its runs need their cell to be told apart. */
const hasGrid = (view) => view.runs.some((run) => cellText(run));

/** A matrix row: the initializer, with its grid cell (which names the activation in an activation grid). */
function rowLabel(cell, many) {
  if (cell.cell) return `${cell.label} · ${cell.cell}`;
  return many ? `${cell.label} · ${cell.activation}` : cell.label;
}

function showEvidence(target) {
  const tag = target?.closest?.(".failure-chip");
  if (!tag || !parts.evidence) return;
  const run = tag.closest("tr")?.dataset.runLabel ?? "";
  parts.evidence.textContent = `${run ? `${run}: ` : ""}${tag.dataset.label}: ${tag.dataset.evidence.replaceAll("\n", "; ")}`;
}

function matrixFigure(view) {
  const cells = view.matrix.cells.filter((cell) => cell.runs > 0);
  const many = view.matrix.activations.length > 1;
  const tags = view.tags;
  const y = cells.map((cell) => rowLabel(cell, many));
  const z = cells.map((cell) => tags.map((tag) => cell.shares[tag.tag]));
  const text = cells.map((cell) => tags.map((tag) => `${cell.counts[tag.tag]}/${cell.runs}`));
  return {
    data: [{
      type: "heatmap", x: tags.map((tag) => tag.label), y, z, text, texttemplate: "%{text}", zmin: 0, zmax: 1,
      colorscale: [[0, "#f4f6f8"], [0.5, "#f4a582"], [1, "#b2182b"]], xgap: 2, ygap: 2,
      colorbar: { title: { text: "share of runs" }, tickformat: ".0%", thickness: 12 },
      hovertemplate: "<b>%{y}</b><br>%{x}: %{text} runs (%{z:.0%})<extra></extra>",
      meta: { tags: tags.map((tag) => tag.tag), keys: cells.map((cell) => cell.key) },
    }],
    layout: {
      font: FONT, margin: { l: 200, r: 20, t: 10, b: 60 }, height: 90 + 34 * Math.max(cells.length, 1),
      paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
      yaxis: { autorange: "reversed", automargin: true }, xaxis: { side: "bottom", automargin: true },
    },
  };
}

function chip(tag) {
  const evidence = tag.evidence.map((item) => item.detail).join("\n");
  return el("span", { class: `failure-chip failure-${tag.tag}`, "data-tag": tag.tag, title: evidence, tabindex: "0",
                      "data-label": tag.label, "data-evidence": evidence, "aria-describedby": EVIDENCE_ID },
    tag.label, el("span", { class: "visually-hidden", text: `: ${evidence.replaceAll("\n", "; ")}` }));
}

function tagsCell(run) {
  if (!run.measured) return el("td", { class: "muted", text: "not measured yet" });
  if (!run.tags.length) return el("td", {}, el("span", { class: "failure-none", text: "none" }));
  return el("td", {}, el("span", { class: "failure-chips" }, ...run.tags.map(chip)));
}

export function renderFailures(view) {
  if (!section || !body) return;
  if (!parts.table) build();
  const measured = view.runs.filter((run) => run.measured);
  section.hidden = measured.length === 0;
  const grid = hasGrid(view);
  parts.table.tHead.rows[0].replaceChildren(...["Initializer", ...(grid ? ["Cell"] : []), "Activation", "Seed", "Status",
    "Failure modes"].map((text) => el("th", { scope: "col", text })));
  state.view = view;
  const tagged = view.runs.filter((run) => !run.measured || run.tags.length);
  const long = view.runs.length > LONG;
  const shown = long && !state.showAll ? tagged : view.runs;
  parts.toggle.hidden = !long;
  parts.toggle.textContent = state.showAll
    ? `Show only the ${tagged.length} runs with a failure mode (or not measured yet)`
    : `Show all ${view.runs.length} runs (${view.runs.length - tagged.length} without a failure mode are hidden)`;
  parts.table.tBodies[0].replaceChildren(...shown.map((run) => el("tr", { "data-run-id": run.run_id,
    "data-run-label": [run.label, cellText(run), `seed ${run.seed}`].filter(Boolean).join(" · ") },
    el("td", { text: run.label }), grid ? el("td", { class: "failure-cell", text: cellText(run) || "–" }) : null,
    el("td", { text: run.activation }), el("td", { class: "num", text: String(run.seed) }),
    el("td", {}, badge(run.status)), tagsCell(run))));
  parts.rules.replaceChildren(...view.tags.flatMap((tag) => [el("dt", { text: tag.label }), el("dd", { text: tag.rule })]));
  const pending = view.runs.length - measured.length;
  parts.status.textContent = view.active
    ? `Runs are still training${pending ? ` (${pending} not measured yet)` : ""}: the tags follow their latest epoch.` : "";
  if (measured.length && window.Plotly) {
    const figure = matrixFigure(view);
    window.Plotly.react(parts.matrix, figure.data, figure.layout, PLOT_CONFIG);
  }
  state.renders += 1;
  section.dataset.renders = String(state.renders);
}
