// The compare page: two or more studies' verdicts and validation curves in columns. Colours
// follow the initializer, not the study, so "He normal" is the same blue in every column.
import { badge, colourMap, el, fetchJSON, formatMeanStd } from "./common.js";
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

async function render() {
  const colours = colourMap(view.studies.flatMap((study) => study.groups.map((g) => g.key)));
  const grid = $("compare-grid");
  const band = $("compare-band").value;
  if (!grid.children.length) {
    grid.replaceChildren(...view.studies.map((study) => el("section", { class: "panel", "data-study-id": String(study.study_id),
                                                                         "aria-label": study.name },
      el("h2", {}, el("a", { href: `/studies/${study.study_id}`, text: study.name }), " ", badge(study.status)),
      el("p", { class: "muted", text: `${study.groups.length} initializer(s) · seeds ${study.seeds.join(", ")} · ${study.planned_epochs} epochs` }),
      verdictTable(study, colours),
      el("div", { class: "chart", id: `cmp-acc-${study.study_id}`, role: "img", "aria-label": `Validation accuracy of ${study.name}` }),
      el("div", { class: "chart", id: `cmp-loss-${study.study_id}`, role: "img", "aria-label": `Validation loss of ${study.name}` }))));
  }
  const options = { band, seeds: false, log: false, isolated: null, legend: true };
  await Promise.all(view.studies.flatMap((study) => [
    draw($(`cmp-acc-${study.study_id}`), curveFigure("val_accuracy", "Validation accuracy", study, colours, options)),
    draw($(`cmp-loss-${study.study_id}`), curveFigure("val_loss", "Validation loss", study, colours, options)),
  ]));
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
  status.textContent = `${view.studies.length} studies.`;
  await render();
  document.getElementById("compare").dataset.ready = "true";
}

$("compare-band").addEventListener("change", () => view && render());
start();
