// What every chart on the pages shares: fonts, colours of the grid, the Plotly config, and
// the mean-line-in-a-band traces that stand for "one initializer over its seeds".
import { finite, withAlpha } from "./common.js";

export const FONT = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12, color: "#1b1f24" };
export const GRID = "#e3e6ea";

export const PLOT_CONFIG = {
  responsive: true,
  displaylogo: false,
  // plotly.js 4 shows a "Share chart" button by default that uploads the chart's data to Plotly's
  // cloud: the pages work offline and a study's data stays on this machine.
  showSendToCloud: false,
  showEditInChartStudio: false,
  plotlyServerURL: "",
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
  toImageButtonOptions: { format: "png", scale: 2 },
};

/** A layout with the pages' look; ``extra`` wins. */
/** A note in the middle of an empty chart: why it has nothing to draw. */
export const centreNote = (text) => ({ text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 });

export function baseLayout(title, extra = {}) {
  return {
    title: { text: title, x: 0.01, xanchor: "left", font: { size: 14 } },
    font: FONT,
    margin: { l: 60, r: 16, t: 40, b: 44 },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    hovermode: "closest",
    hoverlabel: { namelength: -1 },
    ...extra,
  };
}

/** Plotly's visibility for a group when ``isolated`` is the one key shown (null: all shown). */
export function visibility(key, isolated) {
  return isolated === null || isolated === key ? true : "legendonly";
}

/**
 * Traces of one group over epochs: a shaded band (min-max or +-1 std, or none) and the mean line.
 * band: {mean, std, min, max, n} arrays aligned with x. Hover on the mean line shows exact values.
 */
export function bandTraces({ x, band, key, label, colour, mode, isolated, axes = {}, format = ".4f",
                             showlegend = true, transform = (v) => v }) {
  const traces = [];
  const mean = band.mean.map(finite);
  const visible = visibility(key, isolated);
  if (mode !== "none") {
    const low = band.mean.map((m, i) => (mode === "std"
      ? (finite(m) === null || finite(band.std[i]) === null ? null : m - band.std[i]) : finite(band.min[i])));
    const high = band.mean.map((m, i) => (mode === "std"
      ? (finite(m) === null || finite(band.std[i]) === null ? null : m + band.std[i]) : finite(band.max[i])));
    const common = { type: "scatter", mode: "lines", x, line: { width: 0, color: colour }, hoverinfo: "skip",
                     showlegend: false, legendgroup: key, visible, connectgaps: false, ...axes };
    traces.push({ ...common, y: high.map(transform), meta: { group: key, role: "band-high" } });
    traces.push({ ...common, y: low.map(transform), fill: "tonexty", fillcolor: withAlpha(colour, 0.2),
                  meta: { group: key, role: "band-low" } });
  }
  const custom = band.mean.map((m, i) => [band.std[i], band.min[i], band.max[i], band.n[i], m]);
  const markerSize = x.length > 30 ? 0 : 5; // past 30 epochs, dots only blur the line
  traces.push({
    type: "scatter", mode: "lines+markers", x, y: mean.map(transform), name: label, legendgroup: key, showlegend,
    visible, connectgaps: false, line: { color: colour, width: 2.4 }, marker: { color: colour, size: markerSize },
    customdata: custom, meta: { group: key, role: "mean" }, ...axes,
    hovertemplate: `<b>${label}</b><br>epoch %{x}: mean %{customdata[4]:${format}} ± %{customdata[0]:${format}}`
      + `<br>min %{customdata[1]:${format}} · max %{customdata[2]:${format}} · %{customdata[3]} seed(s)<extra></extra>`,
  });
  return traces;
}

/** Draw (or update) a figure; a missing Plotly is reported once by the page, not per chart. */
export function draw(div, figure) {
  return window.Plotly.react(div, figure.data, figure.layout, PLOT_CONFIG);
}
