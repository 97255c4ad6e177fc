// Histograms on the study's shared bin edges (per layer, the same edges for every run and
// epoch): (a) small multiples, rows = layers, columns = initializers, epoch 0 against a chosen
// epoch; (b) every initializer overlaid for one layer. Seeds of an initializer are pooled.
import { fetchJSON } from "./common.js";
import { FONT, GRID, baseLayout, centreNote, visibility } from "./charts.js";
import { TENSOR_KINDS } from "./tensor_kinds.js";

const BASE_LINE = "rgba(90, 96, 105, 0.8)";
const BASE_FILL = "rgba(90, 96, 105, 0.22)";

/** Fetches /histograms answers; a recorded epoch of a finished study never changes, so those are kept. */
export class HistogramCache {
  constructor(studyId) { this.studyId = studyId; this.entries = new Map(); }

  async get({ kind, epoch, range }, finished) {
    const key = `${kind}:${epoch}:${range}`;
    if (this.entries.has(key)) return this.entries.get(key);
    const body = await fetchJSON(`/api/studies/${this.studyId}/histograms?kind=${kind}&epoch=${epoch}&range=${range}`);
    if (finished) this.entries.set(key, body);
    return body;
  }

  clear() { this.entries.clear(); }
}

/** Pool the runs of one group in one layer: summed counts as a density step outline (null if empty). */
export function pooledOutline(layer, runIds) {
  if (!layer) return null;
  const runs = layer.runs.filter((r) => runIds.includes(r.run_id));
  const edges = layer.edges;
  const counts = new Array(edges.length - 1).fill(0);
  let total = 0, outside = 0, nonfinite = 0;
  for (const run of runs) {
    run.counts.forEach((c, i) => { counts[i] += c; });
    total += run.total;
    outside += run.below + run.above;
    nonfinite += run.nonfinite;
  }
  if (total <= 0) return nonfinite ? { x: [], y: [], nonfinite, outside, total } : null;
  const x = [edges[0]];
  const y = [0];
  counts.forEach((count, i) => {
    const density = count / (total * (edges[i + 1] - edges[i]));
    x.push(edges[i], edges[i + 1]);
    y.push(density, density);
  });
  x.push(edges.at(-1));
  y.push(0);
  return { x, y, nonfinite, outside, total };
}

const axis = (kind, n) => (n === 1 ? kind : `${kind}${n}`);

function outsideNote(outline) {
  const parts = [];
  if (outline.outside >= 0.5) parts.push(`${(100 * outline.outside / outline.total).toFixed(1)} % outside the range`);
  if (outline.nonfinite) parts.push(`${outline.nonfinite} non-finite`);
  return parts.join(", ");
}

/** At most ``count`` of ``names``, evenly spread over the depth, the first and the last always. */
export function spreadLayers(names, count) {
  if (names.length <= count) return names;
  const picked = new Set(Array.from({ length: count }, (_, i) => Math.round((i * (names.length - 1)) / (count - 1))));
  return names.filter((_, i) => picked.has(i));
}

/** A column heading in full, wrapped at its " · " parts (then at spaces) into lines of about ``width`` characters:
 * a cut label would make "Glorot (Xavier) uniform · 2 blocks" and "… · 4 blocks" read the same. */
export function wrapLabel(label, width = 24) {
  const words = label.split(" · ").flatMap((part, i) => {
    const pieces = part.length > width ? part.split(" ") : [part];
    return pieces.map((piece, j) => ({ piece, glue: j > 0 ? " " : i > 0 ? " · " : "" }));
  });
  const lines = [];
  for (const { piece, glue } of words) {
    if (lines.length && (lines.at(-1) + glue + piece).length <= width) lines[lines.length - 1] += glue + piece;
    else lines.push(lines.length && glue === " · " ? `· ${piece}` : piece);
  }
  return lines;
}

/** The layers a group's network has: those where a run of the group recorded something at epoch 0. */
function layersOf(base, group) {
  return new Set((base?.layers ?? []).filter((l) => l.runs.some((r) => group.run_ids.includes(r.run_id))).map((l) => l.layer));
}

/** (a) rows = layers, columns = groups. base / current: /histograms answers at epoch 0 and the chosen epoch;
 * shown: the layer names to draw (null: all); finished: no run is queued or running (nothing more will come). */
export function gridFigure(base, current, groups, colours, { tensor, epoch, theory = null, shown = null, finished = false }) {
  const source = current ?? base;
  const layers = (source?.layers ?? []).filter((l) => (l.runs.length || base?.layers.some((b) => b.layer === l.layer))
    && (shown === null || shown.includes(l.layer)));
  const data = [];
  const annotations = [];
  const rows = Math.max(1, layers.length);
  const columns = Math.max(1, groups.length);
  const headings = groups.map((group) => wrapLabel(group.label));
  const extra = 15 * (Math.max(1, ...headings.map((lines) => lines.length)) - 1);
  const layout = baseLayout(epoch > 0 ? `${TENSOR_KINDS[tensor].title} histograms: epoch 0 (grey) and epoch ${epoch} (colour)`
    : `${TENSOR_KINDS[tensor].title} histograms at initialization (epoch 0)`, {
    font: { ...FONT, size: 11 }, showlegend: false, annotations, meta: { epoch, tensor },
    margin: { l: 70, r: 16, t: 84 + extra, b: 30 }, height: rows * 150 + 110 + extra,
    grid: { rows, columns, pattern: "independent", xgap: 0.08, ygap: 0.3 },
  });
  if (!layers.length || !groups.length) {
    annotations.push(centreNote(finished ? "No layer statistics were recorded (see the runs table)."
      : "No layer statistics recorded yet."));
    Object.assign(layout, { height: 200, xaxis: { visible: false }, yaxis: { visible: false } });
    return { data, layout };
  }
  const networks = groups.map((group) => layersOf(base, group));
  layers.forEach((layer, r) => {
    const baseLayer = base?.layers.find((l) => l.layer === layer.layer);
    groups.forEach((group, c) => {
      const n = r * columns + c + 1;
      const xa = axis("x", n);
      const ya = axis("y", n);
      const first = r * columns + 1;
      layout[axis("xaxis", n)] = { anchor: ya, nticks: 4, tickfont: { size: 10 }, gridcolor: GRID, zerolinecolor: "#c9ced4",
                                   matches: n === first ? undefined : axis("x", first) };
      const yaxis = { anchor: xa, showticklabels: false, rangemode: "tozero", gridcolor: GRID, zeroline: false };
      layout[axis("yaxis", n)] = yaxis;
      const label = `${group.label} · ${layer.layer}`;
      const before = pooledOutline(baseLayer, group.run_ids);
      const after = epoch > 0 ? pooledOutline(layer, group.run_ids) : null;
      if (before?.x.length) {
        data.push({ type: "scatter", mode: "lines", x: before.x, y: before.y, xaxis: xa, yaxis: ya, fill: "tozeroy",
                    fillcolor: BASE_FILL, line: { color: BASE_LINE, width: 1 }, meta: { group: group.key, layer: layer.layer, epoch: 0 },
                    hovertemplate: `${label}<br>epoch 0<br>value %{x:.3g}<br>density %{y:.3g}<extra></extra>` });
      }
      if (after?.x.length) {
        data.push({ type: "scatter", mode: "lines", x: after.x, y: after.y, xaxis: xa, yaxis: ya,
                    line: { color: colours.get(group.key), width: 2 }, meta: { group: group.key, layer: layer.layer, epoch },
                    hovertemplate: `${label}<br>epoch ${epoch}<br>value %{x:.3g}<br>density %{y:.3g}<extra></extra>` });
        // A spike at init (zeros, ones) would flatten the chosen epoch: let it run off the top instead.
        const top = Math.max(...after.y);
        if (before?.y.length && top > 0 && Math.max(...before.y) > 3 * top) yaxis.range = [0, top * 1.15];
      }
      theoryTraces(theory, layer.layer, group, xa, ya, label, data, annotations);
      const note = [before, after].filter(Boolean).map(outsideNote).filter(Boolean).at(-1);
      if (note) {
        annotations.push({ text: `⚠ ${note}`, showarrow: false, xref: `${xa} domain`, yref: `${ya} domain`, x: 1, y: 1,
                           xanchor: "right", yanchor: "top", font: { size: 10, color: "#a1271d" } });
      }
      if (!before?.x.length && !after?.x.length) {
        // An empty trace keeps the cell in the grid (Plotly lays out only subplots with traces).
        data.push({ type: "scatter", mode: "lines", x: [null], y: [null], xaxis: xa, yaxis: ya, hoverinfo: "skip" });
        // A depth grid's shallower network has no such layer; a diverged one only NaN/∞ values.
        const why = networks[c].size && !networks[c].has(layer.layer) ? "no such layer in this network"
          : (before?.nonfinite || after?.nonfinite) ? "only NaN/∞ values" : finished ? "no data recorded" : "no data yet";
        annotations.push({ text: why, showarrow: false, xref: `${xa} domain`, yref: `${ya} domain`, x: 0.5, y: 0.5,
                           font: { size: 11, color: "#4a525c" }, meta: { note: "empty", group: group.key, layer: layer.layer } });
        layout[axis("xaxis", n)].showticklabels = false;
      }
      if (r === 0) {
        // Long labels (custom initializers, grid cells) would run into the next column's: wrapped, never cut.
        const text = headings[c].map((line) => `<b>${line}</b>`).join("<br>");
        annotations.push({ text, hovertext: group.label, showarrow: false, xref: `${xa} domain`, yref: "paper", x: 0.5, y: 1,
                           meta: { heading: group.label },
                           yshift: 22, xanchor: "center", yanchor: "bottom", font: { size: 12, color: colours.get(group.key) } });
      }
      if (c === 0) {
        annotations.push({ text: layer.layer, showarrow: false, xref: "paper", yref: `${ya} domain`, x: 0, xshift: -10,
                           y: 0.5, xanchor: "right", textangle: -90, font: { size: 11 } });
      }
    });
  });
  return { data, layout };
}

/**
 * The initializer's promised density (dashed) over the epoch-0 outline, and the KS statistic of
 * the group's runs against it (red when a run's tensor does not follow it: a registry bug or a
 * data-dependent initializer). theory: the /theory answer for this tensor kind, or null.
 */
function theoryTraces(theory, layerName, group, xa, ya, label, data, annotations) {
  const layer = theory?.layers.find((l) => l.layer === layerName);
  if (!layer) return;
  const curve = layer.curves.find((c) => c.run_ids.some((id) => group.run_ids.includes(id)));
  if (curve?.x.length) {
    data.push({ type: "scatter", mode: "lines", x: curve.x, y: curve.y, xaxis: xa, yaxis: ya,
                line: { color: "#1b1f24", width: 1.2, dash: "dash" }, meta: { group: group.key, layer: layerName, theory: true },
                hovertemplate: `${label}<br>theory: ${curve.label}<br>value %{x:.3g}<br>density %{y:.3g}<extra></extra>` });
  }
  const checks = layer.runs.filter((r) => group.run_ids.includes(r.run_id) && r.ks !== null);
  if (!checks.length) return;
  const worst = checks.reduce((a, b) => (b.ks > a.ks ? b : a));
  const bad = checks.some((r) => r.mismatch);
  annotations.push({ text: `${bad ? "⚠ " : ""}KS ${worst.ks.toFixed(3)}${bad ? " ≠ theory" : ""}`, showarrow: false,
                     xref: `${xa} domain`, yref: `${ya} domain`, x: 0, y: 1, xanchor: "left", yanchor: "top",
                     font: { size: 10, color: bad ? "#a1271d" : "#4a525c" },
                     hovertext: `${curve?.label ?? "no closed form"}; KS ${worst.ks.toFixed(4)} (flagged above ${worst.threshold.toFixed(4)})` });
}

/** (b) one layer, every group at the chosen epoch on one axis. */
export function overlayFigure(current, layerName, groups, colours, { tensor, epoch, isolated, finished = false }) {
  const layer = layerName ? current?.layers.find((l) => l.layer === layerName) : undefined;
  const data = [];
  let nonfinite = 0;
  for (const group of groups) {
    const outline = pooledOutline(layer, group.run_ids);
    nonfinite += outline?.nonfinite ?? 0;
    if (!outline?.x.length) continue;
    data.push({ type: "scatter", mode: "lines", x: outline.x, y: outline.y, name: group.label, legendgroup: group.key,
                visible: visibility(group.key, isolated), line: { color: colours.get(group.key), width: 2 },
                fill: "tozeroy", fillcolor: "rgba(0,0,0,0)", meta: { group: group.key },
                hovertemplate: `<b>${group.label}</b><br>value %{x:.3g}<br>density %{y:.3g}<extra></extra>` });
  }
  const annotations = [];
  // One spike (zeros, ones: every value in one bin) would flatten every other curve: cap the
  // axis at the tallest of the rest and say which curve runs off the top.
  const peaks = data.map((trace) => Math.max(...trace.y)).sort((a, b) => b - a);
  let range;
  if (peaks.length > 1 && peaks[0] > 4 * peaks[1] && peaks[1] > 0) {
    range = [0, peaks[1] * 1.25];
    const tall = data.filter((trace) => Math.max(...trace.y) > range[1]).map((trace) => trace.name);
    annotations.push({ text: `${tall.join(", ")} runs off the top (a spike)`, showarrow: false, xref: "paper", yref: "paper",
                       x: 1, y: 1, xanchor: "right", yanchor: "bottom", font: { size: 11, color: "#4a525c" } });
  }
  const layout = baseLayout(`${TENSOR_KINDS[tensor].heading}${layerName ? ` of ${layerName}` : ""} at epoch ${epoch}, every initializer`, {
    annotations,
    showlegend: true, legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top", font: { size: 11 } },
    xaxis: { title: { text: "value", standoff: 4 }, gridcolor: GRID, zerolinecolor: "#c9ced4" },
    yaxis: { title: { text: "density" }, gridcolor: GRID, rangemode: "tozero", range }, margin: { l: 60, r: 16, t: 40, b: 40 },
    meta: { epoch, tensor, layer: layerName },
  });
  if (!data.length) {
    const text = !layerName ? (finished ? "No layer statistics were recorded<br>(see the runs table)."
      : "No layer statistics recorded yet.")
      : nonfinite ? `Every value of ${layerName} at epoch ${epoch} is NaN or infinite:<br>the runs diverged.`
        : finished ? `No data for ${layerName} at epoch ${epoch}.` : "No data at this epoch yet.";
    layout.annotations = [centreNote(text)];
  }
  return { data, layout };
}
