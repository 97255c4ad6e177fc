// The gradient panel: per layer, the probe gradient's L2 norm over epochs on a log axis, one
// line per initializer (mean over seeds, min-max band). Every layer shares one y range, so a
// gradient that shrinks layer by layer towards the input (vanishing) or grows (exploding)
// shows as lines stepping down or up from panel to panel.
import { finite } from "./common.js";
import { GRID, bandTraces, baseLayout, centreNote } from "./charts.js";

const axisName = (kind, n) => (n === 1 ? kind : `${kind}${n}`);

/** view: a /gradients answer; colours: Map; options: {band, isolated}. */
export function gradientFigure(view, colours, options) {
  const layers = view.layers;
  const columns = Math.min(4, Math.max(1, layers.length));
  const rows = Math.max(1, Math.ceil(layers.length / columns));
  const positives = view.groups.flatMap((g) => Object.values(g.layers).flatMap((b) => [...b.mean, ...b.min]))
    .map(finite).filter((v) => v !== null && v > 0);
  // Exactly-zero norms cannot sit on a log axis: they are drawn at a floor under everything else.
  const floor = positives.length ? Math.min(...positives) / 10 : 1e-12;
  const transform = (v) => (v === null ? null : v > 0 ? v : floor);
  // One tick per decade once the norms span several; Plotly's own choice then labels 2s and 5s too.
  const decades = positives.length ? Math.log10(Math.max(...positives) / floor) : 0;
  const data = [];
  const annotations = [];
  const layout = baseLayout("Gradient L2 norm per layer (log scale)", {
    grid: { rows, columns, pattern: "independent", xgap: 0.06, ygap: 0.28 },
    height: 120 + rows * 250,
    margin: { l: 64, r: 12, t: 56, b: 44 },
    showlegend: true,
    legend: { orientation: "h", x: 0, xanchor: "left", y: -0.12 / rows, yanchor: "top", font: { size: 11 } },
    annotations,
  });
  layers.forEach((layer, i) => {
    const n = i + 1;
    const axes = { xaxis: axisName("x", n), yaxis: axisName("y", n) };
    layout[axisName("xaxis", n)] = { anchor: axes.yaxis, gridcolor: GRID, zeroline: false, title: { text: "epoch", standoff: 2 },
                                     dtick: view.epochs.length <= 21 ? 1 : undefined };
    layout[axisName("yaxis", n)] = { anchor: axes.xaxis, type: "log", gridcolor: GRID, exponentformat: "power",
                                     dtick: decades >= 2 ? 1 : undefined,
                                     matches: n === 1 ? undefined : "y", showticklabels: i % columns === 0 };
    annotations.push({ text: `<b>${layer.layer}</b>`, showarrow: false, xref: `${axes.xaxis} domain`, yref: `${axes.yaxis} domain`,
                       x: 0.5, y: 1.02, xanchor: "center", yanchor: "bottom", font: { size: 12 } });
    for (const group of view.groups) {
      const band = group.layers[layer.layer];
      if (!band) continue;
      const traces = bandTraces({
        x: view.epochs, band, key: group.key, label: group.label, colour: colours.get(group.key), mode: options.band,
        isolated: options.isolated, axes, format: ".3e", transform, showlegend: i === 0,
      });
      const mean = traces.at(-1);
      mean.marker = { ...mean.marker, symbol: band.mean.map((v) => (v === 0 ? "triangle-down" : "circle")),
                      size: band.mean.map((v) => (v === 0 ? 10 : mean.marker.size)) };
      mean.meta = { ...mean.meta, layer: layer.layer };
      data.push(...traces);
    }
  });
  if (!layers.length) {
    annotations.push(centreNote("No gradient recorded yet."));
    layout.height = 220;
  }
  return { data, layout };
}
