// A grid study (activations and/or depths): the measured version of seed 001's "which
// initializer for which activation" table — mean final validation accuracy over seeds per
// initializer (rows) and grid cell (columns), as a heatmap. Hidden for a study without a grid.
// A section renderer of the study page: study.js hands it the summary it already has.
import { FONT, PLOT_CONFIG } from "./charts.js";

const section = document.getElementById("grid-section");
const chart = document.getElementById("chart-grid");

/** rows: initializers (study order); columns: grid cells; z: mean final val. accuracy; text: mean ± std (n). */
export function gridFigure(groups) {
  const rows = [], columns = [], cells = new Map();
  for (const group of groups) {
    const [row, ...rest] = group.label.split(" · ");
    const column = rest.join(" · ");
    if (!rows.includes(row)) rows.push(row);
    if (!columns.includes(column)) columns.push(column);
    cells.set(`${row}\u0000${column}`, group.table.final_val_accuracy);
  }
  const z = rows.map((row) => columns.map((column) => cells.get(`${row}\u0000${column}`)?.mean ?? null));
  const text = rows.map((row) => columns.map((column) => {
    const cell = cells.get(`${row}\u0000${column}`);
    if (!cell || cell.mean === null) return "–";
    return `${(100 * cell.mean).toFixed(1)} %${cell.n > 1 ? ` ± ${(100 * cell.std).toFixed(1)}` : ""}`;
  }));
  return {
    data: [{ type: "heatmap", x: columns, y: rows, z, text, texttemplate: "%{text}", zmin: 0, zmax: 1,
             colorscale: "Viridis", colorbar: { title: { text: "val. acc." }, tickformat: ".0%" },
             hovertemplate: "%{y}<br>%{x}<br>final val. accuracy %{text}<extra></extra>" }],
    layout: { font: FONT, margin: { l: 200, r: 20, t: 30, b: 60 }, height: 120 + 48 * rows.length,
              xaxis: { side: "top", automargin: true }, yaxis: { autorange: "reversed", automargin: true },
              meta: { rows, columns } },
  };
}

/** Draw the heatmap for a grid study (activations and/or depths); other studies keep the section hidden. */
export async function renderGrid(spec, summary) {
  if (!section || !chart || (!spec.activations && !spec.depths)) return;
  section.hidden = false;
  const figure = gridFigure(summary.groups);
  chart.style.height = `${figure.layout.height}px`;  // one row per initializer: the box follows, no blank below
  if (window.Plotly) await window.Plotly.react(chart, figure.data, figure.layout, PLOT_CONFIG);
}
