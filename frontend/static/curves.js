// Learning curves: one figure per metric; per initializer a mean line over seeds in a band,
// optionally every seed's own line; one colour per initializer on every chart of the page.
import { finite } from "./common.js";
import { GRID, bandTraces, baseLayout, centreNote, visibility } from "./charts.js";
import { noEpochReason, recordedEpochs, studyFinished } from "./summary_table.js";

export const CURVE_CHARTS = [
  { id: "chart-val-accuracy", metric: "val_accuracy", title: "Validation accuracy" },
  { id: "chart-val-loss", metric: "val_loss", title: "Validation loss" },
  { id: "chart-accuracy", metric: "accuracy", title: "Training accuracy" },
  { id: "chart-loss", metric: "loss", title: "Training loss" },
];

const isLoss = (metric) => metric.endsWith("loss");

/**
 * view: a /summary answer; colours: Map(group key -> colour);
 * options: {band: "minmax"|"std"|"none", seeds: bool, log: bool, isolated: key|null, legend: bool}.
 */
export function curveFigure(metric, title, view, colours, options) {
  const percent = !isLoss(metric);
  const log = isLoss(metric) && options.log;
  const format = percent ? ".2%" : ".4f";
  // A log axis cannot show 0 or less: such points become gaps instead of breaking the axis.
  const transform = log ? (v) => (v !== null && v > 0 ? v : null) : (v) => v;
  const data = [];
  for (const group of view.groups) {
    const colour = colours.get(group.key);
    if (options.seeds && view.runs) {
      for (const run of view.runs.filter((r) => r.group === group.key)) {
        data.push({
          type: "scatter", mode: "lines", x: run.epochs, y: run[metric].map(finite).map(transform),
          name: `${group.label} · seed ${run.seed}`, legendgroup: group.key, showlegend: false,
          visible: visibility(group.key, options.isolated), connectgaps: false, opacity: 0.55,
          line: { color: colour, width: 1, dash: run.diverged ? "dot" : "solid" },
          meta: { group: group.key, role: "seed", run: run.run_id },
          hovertemplate: `<b>${group.label}</b> · seed ${run.seed}${run.diverged ? " (diverged)" : ""}`
            + `<br>epoch %{x}: %{y:${format}}<extra></extra>`,
        });
      }
    }
    data.push(...bandTraces({
      x: group.curves.epochs, band: group.curves[metric], key: group.key, label: group.label, colour,
      mode: options.band, isolated: options.isolated, format, transform, showlegend: options.legend,
    }));
  }
  const epochs = Math.max(1, view.planned_epochs || 1);
  const layout = baseLayout(title, {
    uirevision: `${metric}:${log}`,
    showlegend: options.legend,
    legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top", font: { size: 11 } },
    margin: { l: 58, r: 12, t: 36, b: options.legend ? 40 : 40 },
    xaxis: { title: { text: "epoch", standoff: 6 }, dtick: epochs <= 20 ? 1 : undefined, zeroline: false,
             gridcolor: GRID, range: [0.7, epochs + 0.3] },
    yaxis: percent
      ? { tickformat: ".0%", gridcolor: GRID, rangemode: "tozero" }
      : { type: log ? "log" : "linear", gridcolor: GRID, rangemode: log ? undefined : "tozero",
          title: { text: log ? "cross-entropy (log)" : "cross-entropy", standoff: 4 } },
  });
  const note = emptyNote(metric, title, view);
  if (!data.length || note) {
    layout.annotations = [centreNote(note ?? "No epoch finished yet.")];
    if (percent) layout.yaxis.range = [0, 1]; // Plotly's empty axis would read 0 – 400 %
  }
  return { data, layout };
}

/** Why a chart has nothing to draw (null: it has): no epoch yet, none ever (the runs failed), or only NaN/∞ values. */
export function emptyNote(metric, title, view) {
  if (!recordedEpochs(view)) {
    return studyFinished(view) ? noEpochReason(view).replace(": ", ":<br>") : "No epoch finished yet.";
  }
  const values = [...view.groups.map((g) => g.curves[metric].mean), ...(view.runs ?? []).map((r) => r[metric])];
  if (values.some((series) => series.some((v) => finite(v) !== null))) return null;
  const what = isLoss(metric) ? "loss" : "accuracy";
  return `Every ${title.toLowerCase()} value is NaN or infinite:<br>the runs diverged (no ${what} to draw).`;
}

/**
 * A click on a legend entry isolates that initializer on every chart (click it again: all back).
 * Plotly's own toggling is turned off so the page's one isolation state drives all charts.
 * Hooked once per chart, after its first drawing (before it, the div has no .on).
 */
export function isolateOnLegendClick(div, onIsolate) {
  if (div.dataset.legendHooked || typeof div.on !== "function") return;
  div.dataset.legendHooked = "true";
  div.on("plotly_legendclick", (event) => {
    const key = event.data[event.curveNumber]?.legendgroup;
    if (key) onIsolate(key);
    return false;
  });
  div.on("plotly_legenddoubleclick", () => false);
}
