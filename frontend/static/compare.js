// The compare page: two or more studies' verdicts and validation curves in columns. Colours
// follow the initializer, not the study, so "He normal" is the same blue in every column, and
// one metric has one y range in every column. Refreshed while any study is queued or running.
import { ACTIVE_STATUSES, badge, colourMap, el, fetchJSON, formatMeanStd, pageTimer, refreshMs } from "./common.js";
import { draw } from "./charts.js";
import { curveFigure } from "./curves.js";

const $ = (id) => document.getElementById(id);
const status = $("compare-status");
const ids = (new URLSearchParams(window.location.search).get("ids") ?? "").split(",").filter((id) => /^\d+$/.test(id));
let view = null;

function verdictTable(study, colours) {
  const row = (group) => el("tr", { "data-group": group.key },
    el("td", {}, el("span", { class: "swatch", style: `background:${colours.get(group.key)}`, "aria-hidden": "true" }),
      group.label, group.table.leader ? el("span", { class: "leader", text: "leads" }) : null),
    el("td", { class: "num", text: formatMeanStd(group.table.final_val_accuracy, { percent: true }) }),
    el("td", { class: "num", text: formatMeanStd(group.table.final_val_loss) }),
    el("td", { class: group.table.diverged ? "num diverged" : "num muted", text: group.table.diverged ? `${group.table.diverged} of ${group.table.runs}` : "none" }));
  return el("div", { class: "table-wrap" }, el("table", { class: "data-table compare-table" },
    el("caption", { class: "visually-hidden", text: `Verdict of ${study.name}` }),
    el("thead", {}, el("tr", {}, ...["Initializer", "Final val. accuracy", "Final val. loss", "Diverged"]
      .map((text, i) => el("th", { scope: "col", class: i ? "num" : "", text })))),
    el("tbody", {}, ...study.groups.map(row))));
}

/** Each metric's y range over every column (from what the charts will draw), so columns compare at a glance. */
function sharedRange(figures, percent, log = false) {
  let low = 0;
  let high = -Infinity;
  for (const figure of figures) {
    for (const trace of figure.data) {
      for (const value of trace.y ?? []) {
        if (typeof value !== "number" || !Number.isFinite(value) || (log && value <= 0)) continue;
        low = Math.min(low, value);
        high = Math.max(high, value);
      }
    }
  }
  if (!Number.isFinite(high)) return null;
  if (log) {  // Plotly's log axes take their range in decades
    const floor = Math.min(...figures.flatMap((figure) => figure.data.flatMap((trace) => (trace.y ?? [])
      .filter((value) => typeof value === "number" && Number.isFinite(value) && value > 0))));
    return [Math.log10(floor) - 0.05, Math.log10(high) + 0.05];
  }
  if (high <= low) high = low + (percent ? 1 : 1e-6);
  const pad = 0.04 * (high - low);
  return [low < 0 ? low - pad : 0, percent ? Math.min(high + pad, 1.02) : high + pad];
}

function column(study) {
  return el("section", { class: "panel", "data-study-id": String(study.study_id), "aria-label": study.name },
    el("h2", {}, el("a", { href: `/studies/${study.study_id}`, text: study.name }), " ", el("span", { class: "cmp-badge" })),
    el("p", { class: "muted cmp-summary" }),
    el("div", { class: "cmp-verdict" }),
    el("div", { class: "chart", id: `cmp-acc-${study.study_id}`, role: "img", "aria-label": `Validation accuracy of ${study.name}` }),
    el("div", { class: "chart", id: `cmp-loss-${study.study_id}`, role: "img", "aria-label": `Validation loss of ${study.name}` }));
}

async function render() {
  const colours = colourMap(view.studies.flatMap((study) => study.groups.map((g) => g.key)));
  const grid = $("compare-grid");
  const band = $("compare-band").value;
  if (!grid.children.length) grid.replaceChildren(...view.studies.map(column));
  // Badges, summaries and verdicts are redrawn on every refresh; the charts are updated in place.
  for (const study of view.studies) {
    const section = grid.querySelector(`section[data-study-id="${study.study_id}"]`);
    if (!section) continue;
    section.querySelector(".cmp-badge").replaceChildren(badge(study.status));
    section.querySelector(".cmp-summary").textContent =
      `${study.groups.length} initializer(s) · seeds ${study.seeds.join(", ")} · ${study.planned_epochs} epochs`;
    section.querySelector(".cmp-verdict").replaceChildren(verdictTable(study, colours));
  }
  const options = { band, seeds: false, log: $("compare-log").checked, isolated: null, legend: true };
  const charts = [["acc", "val_accuracy", "Validation accuracy", true], ["loss", "val_loss", "Validation loss", false]];
  const drawings = [];
  for (const [prefix, metric, title, percent] of charts) {
    const figures = view.studies.map((study) => [study, curveFigure(metric, title, study, colours, options)]);
    const range = sharedRange(figures.map(([, figure]) => figure), percent, !percent && options.log);
    for (const [study, figure] of figures) {
      if (range) Object.assign(figure.layout.yaxis, { range, autorange: false });
      drawings.push(draw($(`cmp-${prefix}-${study.study_id}`), figure));
    }
  }
  await Promise.all(drawings);
}

const timer = pageTimer(refresh, schedule);

/** Fetch the studies again while any of them is queued or running (not while the tab is hidden). */
function schedule() {
  if (view && view.studies.some((study) => ACTIVE_STATUSES.has(study.status))) timer.after(refreshMs());
  else timer.cancel();
}

async function refresh() {
  try {
    view = await fetchJSON(`/api/compare?ids=${ids.join(",")}`);
  } catch (err) {
    status.textContent = `Could not refresh the studies: ${err.message}. Retrying…`;
    timer.after(Math.max(refreshMs(), 5000));
    return;
  }
  status.textContent = summary();
  await render();
  schedule();
}

function summary() {
  const active = view.studies.filter((study) => ACTIVE_STATUSES.has(study.status)).length;
  return `${view.studies.length} studies${active ? ` (${active} still training; updated as epochs finish)` : ""}.`;
}

async function start() {
  if (ids.length < 2) {
    status.textContent = "Pick two or more studies on the studies page to compare them.";
    return;
  }
  if (!window.Plotly) { status.textContent = "Plotly did not load, so the charts cannot be drawn."; return; }
  try {
    view = await fetchJSON(`/api/compare?ids=${ids.join(",")}`);
  } catch (err) {
    status.textContent = `Could not load the studies: ${err.message}.`;
    return;
  }
  status.textContent = summary();
  await render();
  document.getElementById("compare").dataset.ready = "true";
  schedule();
}

$("compare-band").addEventListener("change", () => view && render());
$("compare-log").addEventListener("change", () => view && render());
start();
