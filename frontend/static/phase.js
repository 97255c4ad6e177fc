// The phase diagram of a weight-variance sweep: the measured metric over σ_w² × depth as a
// heatmap, with mean-field theory drawn on it (the critical σ_w* and the trainable-depth curve
// c·ξ_c), and per depth the measured correlation of two inputs at init against the prediction.
// Used by the phase page (phase_page.js) and by the study page's phase section (study.js).
import { colourMap, el, fetchJSON, finite, problemText } from "./common.js";
import { GRID, PLOT_CONFIG, baseLayout } from "./charts.js";

const $ = (id) => document.getElementById(id);

/** The heatmap of one σ_b² with its theory; a figure for Plotly.react. */
export function phaseFigure(view, bias) {
  const cells = view.cells.filter((cell) => cell.bias_variance === bias);
  const x = view.weight_variances;
  const y = view.depths;
  const at = new Map(cells.map((cell) => [`${cell.weight_variance}|${cell.depth}`, cell]));
  const z = y.map((depth) => x.map((weight) => finite(at.get(`${weight}|${depth}`)?.mean)));
  const text = y.map((depth) => x.map((weight) => {
    const cell = at.get(`${weight}|${depth}`);
    if (!cell || cell.mean === null) return "–";
    return `${(100 * cell.mean).toFixed(0)}`;
  }));
  const theory = view.theory.find((t) => t.bias_variance === bias) ?? view.theory[0];
  const top = Math.max(...y) * 1.15;
  const data = [{
    type: "heatmap", x, y, z, text, texttemplate: "%{text}", zmin: 0, zmax: 1, colorscale: "Viridis",
    colorbar: { title: { text: view.metric.replace("_", " ") }, tickformat: ".0%" }, name: "measured",
    hovertemplate: "σ_w² %{x}<br>depth %{y}<br>%{z:.1%}<extra></extra>",
  }];
  if (theory) {
    // Cut, not clamped, where it leaves the plot: a clamped curve lay flat along the top edge. A white line
    // over a black one reads on every cell; the legend shows the black one (white on white is invisible).
    const y = theory.curve.depth.map((d) => (d === null || d > top ? null : d));
    const curve = { type: "scatter", mode: "lines", x: theory.curve.weight_variance, y, legendgroup: "theory" };
    data.push({ ...curve, name: `${theory.c}·ξ_c (theory)`, line: { color: "#000000", width: 5 }, hoverinfo: "skip" });
    data.push({ ...curve, name: `${theory.c}·ξ_c`, showlegend: false, line: { color: "#ffffff", width: 3 },
                hovertemplate: "σ_w² %{x:.3f}: trainable depth %{y:.1f}<extra></extra>" });
    if (theory.critical_weight_variance !== null) {
      data.push({
        type: "scatter", mode: "lines", name: `σ_w* = ${theory.critical_weight_variance.toFixed(3)} (χ₁ = 1)`,
        x: [theory.critical_weight_variance, theory.critical_weight_variance], y: [0, top],
        line: { color: "#d55e00", width: 2.5, dash: "dash" }, hoverinfo: "name",
      });
    }
  }
  const edge = (view.edges ?? []).find((e) => e.bias_variance === bias);
  if (edge && edge.trained !== false) {  // nothing trained: no measured region to draw (the note says so)
    data.push({
      type: "scatter", mode: "lines+markers", name: "deepest trainable (measured)", x: edge.weight_variance,
      // open markers: the cell's value stays readable under them
      y: edge.trainable_depth, line: { color: "#f0e442", width: 2 }, marker: { size: 12, symbol: "diamond-open" },
      hovertemplate: `σ_w² %{x}: trains to depth %{y} (≥ ${(100 * edge.threshold).toFixed(0)} %)<extra></extra>`,
    });
    if (edge.critical_weight_variance !== null) {
      data.push({
        type: "scatter", mode: "lines", name: `measured σ_w* ≈ ${edge.critical_weight_variance.toFixed(2)}`,
        x: [edge.critical_weight_variance, edge.critical_weight_variance], y: [0, top],
        line: { color: "#f0e442", width: 2, dash: "dot" }, hoverinfo: "name",
      });
    }
  }
  const critical = theory?.critical_weight_variance;
  const annotations = critical === null || critical === undefined ? [] : [
    // above the plot, where no cell hides them, at its two ends: they never overlap, even on a phone
    { x: 0, xref: "paper", xanchor: "left", y: 1, yref: "paper", yanchor: "bottom", text: "← ordered", showarrow: false,
      font: { size: 13 } },
    { x: 1, xref: "paper", xanchor: "right", y: 1, yref: "paper", yanchor: "bottom", text: "chaotic →", showarrow: false,
      font: { size: 13 } },
  ];
  return {
    data,
    layout: baseLayout(`${theory?.activation ?? ""}, σ_b² = ${bias}`, {
      height: 520, annotations, legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top" },
      margin: { l: 60, r: 16, t: 56, b: 130 },
      xaxis: { title: { text: "σ_w² (weight variance × fan_in)" }, gridcolor: GRID },
      yaxis: { title: { text: "depth (hidden layers)" }, range: [0, top], gridcolor: GRID },
    }),
  };
}

/** Measured (solid) and predicted (dotted) correlation per layer, one colour per σ_w², for one depth and σ_b². */
export function correlationFigure(view, bias, depth) {
  const items = view.correlations.filter((item) => item.bias_variance === bias && item.depth === depth);
  const colours = colourMap(items.map((item) => String(item.weight_variance)));
  const data = items.flatMap((item) => {
    const colour = colours.get(String(item.weight_variance));
    const traces = [{ type: "scatter", mode: "lines+markers", name: `σ_w² ${item.weight_variance}`, x: item.layers,
                      y: item.measured_c.map(finite), line: { color: colour, width: 2 }, marker: { size: 4 },
                      legendgroup: String(item.weight_variance) }];
    if (item.predicted) {
      traces.push({ type: "scatter", mode: "lines", name: `σ_w² ${item.weight_variance} (theory)`, x: item.layers,
                    y: item.predicted.c.map(finite), line: { color: colour, width: 2, dash: "dot" },
                    legendgroup: String(item.weight_variance), showlegend: false });
    }
    return traces;
  });
  return { data, layout: baseLayout(`depth ${depth}: solid measured, dotted predicted`, {
    height: 380, xaxis: { title: { text: "layer" }, gridcolor: GRID },
    yaxis: { title: { text: "correlation of two inputs" }, gridcolor: GRID }, legend: { orientation: "v" } }) };
}

/** What the theory says about one σ_b²: where its edge of chaos is, if it has one. */
function theoryNote(theory, bias) {
  const critical = theory?.critical_weight_variance;
  return critical === null || critical === undefined
    ? `${theory?.activation}: no edge of chaos at σ_b² = ${bias} (χ₁ reaches 1 only where the signal's length diverges).`
    : `${theory.activation}, σ_b² = ${bias}: the theory puts the edge of chaos at σ_w* = ${critical.toFixed(3)}.`;
}

/** What was measured: the σ_w² that trains deepest, or that nothing trained (the best cell is not clearly above chance). */
function measuredNote(edge) {
  if (edge === undefined) return "";
  const percent = (value) => `${(100 * value).toFixed(0)} %`;
  if (edge.trained === false) {
    const seeds = `${edge.seeds} seed${edge.seeds === 1 ? "" : "s"}`;
    return ` Measured: nothing trained: the best cell reaches ${percent(edge.best)}, less than`
      + ` ${Number((100 * edge.margin).toFixed(1))} points above chance (${percent(edge.chance)})`
      + ` (the best of ${edge.cells} cells at chance, ${seeds} of ${edge.samples} images each, passes that`
      + ` in at most ${Number((100 * edge.noise_rate).toFixed(1))} % of diagrams),`
      + " so there is no trainable depth and no measured σ_w*.";
  }
  if (edge.critical_weight_variance === null) return "";
  return ` Measured: the σ_w² that trains deepest is ${edge.critical_weight_variance.toFixed(2)}`
    + (edge.critical_range[0] !== edge.critical_range[1] ? ` (a tie from ${edge.critical_range[0]} to ${edge.critical_range[1]})` : "")
    + ` (a cell trains at ≥ ${percent(edge.threshold)}, halfway from chance to the best cell).`;
}

/** Mount the controls and charts inside ``root``'s elements; returns reload(). */
export function mountPhase(studyId) {
  const state = { view: null, bias: null, depth: null };
  const status = $("phase-status");

  async function draw() {
    const view = state.view;
    if (!window.Plotly || !view) return;
    const figure = phaseFigure(view, state.bias);
    await window.Plotly.react($("chart-phase"), figure.data, figure.layout, PLOT_CONFIG);
    const correlation = correlationFigure(view, state.bias, state.depth);
    await window.Plotly.react($("chart-correlation"), correlation.data, correlation.layout, PLOT_CONFIG);
    const theory = view.theory.find((t) => t.bias_variance === state.bias);
    const edge = (view.edges ?? []).find((e) => e.bias_variance === state.bias);
    $("phase-theory-note").textContent = theoryNote(theory, state.bias) + measuredNote(edge)
      + (view.theory_caveat ? ` ${view.theory_caveat}` : "");
    $("phase").dataset.rendered = String((Number($("phase").dataset.rendered) || 0) + 1);
  }

  function syncOptions() {
    const view = state.view;
    state.bias = state.bias ?? view.bias_variances[0];
    state.depth = state.depth ?? view.depths.at(-1);
    $("phase-bias").replaceChildren(...view.bias_variances.map((b) => el("option", { value: String(b), text: String(b) })));
    $("phase-bias").value = String(state.bias);
    $("phase-cell-depth").replaceChildren(...view.depths.map((d) => el("option", { value: String(d), text: String(d) })));
    $("phase-cell-depth").value = String(state.depth);
  }

  async function reload() {
    const query = new URLSearchParams({ metric: $("phase-metric").value, c: $("phase-c").value || "6" });
    try {
      state.view = await fetchJSON(`/api/studies/${studyId}/phase?${query}`);
    } catch (err) {
      // A 422 names the parameter and its rule: say it, and mark the control (c is the one a person types).
      const problems = Array.isArray(err.body?.detail) ? err.body.detail : [];
      const reason = problems.map((item) => `${item.field}: ${problemText(item)}`).join("; ");
      if (problems.some((item) => item.field === "c")) $("phase-c").setAttribute("aria-invalid", "true");
      status.textContent = `Could not load the phase diagram (${reason || err.message}).`;
      return;
    }
    $("phase-c").removeAttribute("aria-invalid");
    syncOptions();
    const finished = state.view.cells.reduce((sum, cell) => sum + cell.finished, 0);
    const runs = state.view.cells.reduce((sum, cell) => sum + cell.run_ids.length, 0);
    status.textContent = finished < runs ? `${finished} of ${runs} runs finished; cells fill in as runs finish.` : "";
    await draw();
  }

  $("phase-metric").addEventListener("change", reload);
  $("phase-c").addEventListener("change", reload);
  $("phase-bias").addEventListener("change", () => { state.bias = Number($("phase-bias").value); draw(); });
  $("phase-cell-depth").addEventListener("change", () => { state.depth = Number($("phase-cell-depth").value); draw(); });
  return reload;
}
