// One run and one layer over every epoch: (c) a heatmap of its histograms on the study's shared
// edges (TensorBoard's histogram mode, seen from above) and (d) TensorBoard's Distributions
// view: bands between the min, 7, 16, 31, 50, 69, 84, 93 % and max percentiles.
import { finite, withAlpha } from "./common.js";
import { GRID, baseLayout, centreNote } from "./charts.js";
import { TENSOR_KINDS } from "./tensor_kinds.js";

/** answer: /runs/{id}/histograms. Each epoch's row is scaled to its own peak so every shape stays visible. */
export function heatmapFigure(answer, title, empty = "No statistics for this run yet.") {
  const edges = answer?.edges ?? [];
  const centres = edges.slice(1).map((e, i) => (e + edges[i]) / 2);
  const z = [];
  const share = [];
  for (const counts of answer?.counts ?? []) {
    const total = counts.reduce((a, b) => a + b, 0);
    const peak = Math.max(...counts, 0);
    z.push(counts.map((c) => (peak > 0 ? c / peak : null)));
    share.push(counts.map((c) => (total > 0 ? c / total : 0)));
  }
  const data = answer?.epochs?.length ? [{
    type: "heatmap", x: centres, y: answer.epochs, z, customdata: share, colorscale: "Viridis", zmin: 0, zmax: 1,
    colorbar: { title: { text: "of peak", side: "right" }, thickness: 12, tickformat: ".0%" },
    hovertemplate: "epoch %{y}<br>value %{x:.3g}<br>%{customdata:.2%} of the values<extra></extra>",
  }] : [];
  const words = TENSOR_KINDS[answer?.kind]?.words;
  const layout = baseLayout(`${title}: ${words ? `${words} ` : ""}histogram per epoch`, {
    xaxis: { title: { text: "value", standoff: 4 }, gridcolor: GRID },
    yaxis: { title: { text: "epoch" }, dtick: (answer?.epochs?.length ?? 0) <= 21 ? 1 : undefined, autorange: "reversed" },
    margin: { l: 56, r: 16, t: 40, b: 44 }, meta: { run: answer?.run_id, layer: answer?.layer },
  });
  if (!data.length) layout.annotations = [centreNote(empty)];
  return { data, layout };
}

const BANDS = [[0, 8, 0.12, "min – max"], [1, 7, 0.2, "7 – 93 %"], [2, 6, 0.3, "16 – 84 %"], [3, 5, 0.42, "31 – 69 %"]];

/** answer: /runs/{id}/percentiles; colour: the run's initializer colour. */
export function percentileFigure(answer, title, colour, empty = "No statistics for this run yet.") {
  const x = answer?.epochs ?? [];
  const at = (k) => (answer?.values ?? []).map((row) => finite(row[k]));
  const data = [];
  if (x.length) {
    for (const [low, high, alpha, name] of BANDS) {
      data.push({ type: "scatter", mode: "lines", x, y: at(high), line: { width: 0, color: colour }, showlegend: false,
                  hoverinfo: "skip", meta: { role: "band-high" } });
      data.push({ type: "scatter", mode: "lines", x, y: at(low), line: { width: 0, color: colour }, fill: "tonexty",
                  fillcolor: withAlpha(colour, alpha), name, hoverinfo: "skip", meta: { role: "band-low" } });
    }
    const custom = answer.values.map((row) => row);
    data.push({ type: "scatter", mode: "lines+markers", x, y: at(4), name: "median", line: { color: colour, width: 2.4 },
                marker: { size: 4, color: colour }, customdata: custom, meta: { role: "median" },
                hovertemplate: "epoch %{x}<br>max %{customdata[8]:.3g}<br>93 % %{customdata[7]:.3g}<br>84 % %{customdata[6]:.3g}"
                  + "<br>69 % %{customdata[5]:.3g}<br><b>median %{customdata[4]:.3g}</b><br>31 % %{customdata[3]:.3g}"
                  + "<br>16 % %{customdata[2]:.3g}<br>7 % %{customdata[1]:.3g}<br>min %{customdata[0]:.3g}<extra></extra>" });
  }
  const layout = baseLayout(`${title}: percentiles over epochs`, {
    showlegend: true, legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top", font: { size: 11 } },
    xaxis: { title: { text: "epoch", standoff: 4 }, gridcolor: GRID, dtick: x.length <= 21 ? 1 : undefined },
    yaxis: { title: { text: "value" }, gridcolor: GRID, zerolinecolor: "#c9ced4" },
    margin: { l: 60, r: 16, t: 40, b: 40 }, meta: { run: answer?.run_id, layer: answer?.layer },
  });
  if (!data.length) layout.annotations = [centreNote(empty)];
  return { data, layout };
}
