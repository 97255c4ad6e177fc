// The signal-propagation page: a small form, POST /api/diagnostics/signal-propagation, and three
// charts against layer index (activation variance, gradient variance: log axes; dead units),
// one line per initializer in the colour it has on every other page.
import { colourMap, el, fetchJSON, finite, initializerKey, problemText } from "./common.js";
import { GRID, baseLayout, draw } from "./charts.js";
import { chosenInitializers, initializerItem } from "./initializer_picker.js";

const $ = (id) => document.getElementById(id);
const form = $("signal-form");
const status = $("signal-status");
const formError = $("signal-error");
const URL_PROBE = "/api/diagnostics/signal-propagation";

// Seed 002's argument: with ReLU, √(2/n) keeps the signal through 20 layers, ±1/√n does not.
const SEED_002 = { depth: 20, width: 256, activation: "relu", dataset: "mnist", seed: 0, samples: 256,
                   initializers: ["he_normal", "uniform_fan_in"], family: "mlp", normalization: "none", residual: "no" };
// Seed 002's question: does normalization make the initializer irrelevant? (for the signal at init, yes)
const BATCHNORM = { ...SEED_002, normalization: "batchnorm" };

const isCnn = () => $("s-family").value === "cnn";

/** "16, 32" → [16, 32]; anything else is left for the server to name. */
function channels() {
  const text = $("s-channels").value.trim();
  return text.split(/[\s,]+/).filter((piece) => piece !== "").map(Number);
}

let catalog = []; // GET /api/initializers: each entry's parameters and their defaults

function readForm() {
  const depth = Number($("s-depth").value);
  const width = Number($("s-width").value);
  const residual = $("s-residual").value;
  const model = { hidden_units: Array.from({ length: Number.isInteger(depth) && depth > 0 ? depth : 0 }, () => width),
                  activation: $("s-activation").value, family: $("s-family").value,
                  normalization: $("s-normalization").value, residual: residual !== "no" };
  if (residual === "zero") model.zero_init_residual = true;
  if (isCnn()) Object.assign(model, { conv_channels: channels(), pooling: $("s-pooling").value });
  return {
    model,
    initializers: chosenInitializers($("s-initializer-list"), catalog),
    dataset: { name: $("s-dataset").value },
    seed: Number($("s-seed").value),
    probe_samples: Number($("s-samples").value),
  };
}

function fill(preset) {
  $("s-depth").value = preset.depth;
  $("s-width").value = preset.width;
  $("s-activation").value = preset.activation;
  if ([...$("s-dataset").options].some((option) => option.value === preset.dataset)) $("s-dataset").value = preset.dataset;
  $("s-seed").value = preset.seed;
  $("s-samples").value = preset.samples;
  $("s-family").value = preset.family;
  $("s-normalization").value = preset.normalization;
  $("s-residual").value = preset.residual;
  showFamily();
  for (const box of form.querySelectorAll("#s-initializer-list input[type=checkbox]")) box.checked = preset.initializers.includes(box.value);
}

function showFamily() {
  for (const field of form.querySelectorAll("[data-cnn]")) field.hidden = !isCnn();
  $("s-depth").min = isCnn() ? 0 : 1;  // a CNN's dense head may be empty
}

function clearErrors() {
  formError.hidden = true;
  formError.replaceChildren();
  for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

/** Each 422 item next to its field (the longest data-field that prefixes it); the rest above the form. */
function showErrors(detail, lead) {
  const loose = [];
  for (const item of Array.isArray(detail) ? detail : [{ field: "body", msg: String(detail) }]) {
    let field = String(item.field ?? "body");
    let message = problemText(item);
    // A rule over several fields comes back on "body", its message led by the field to change.
    const named = field === "body" ? /^([a-z_]+(?:\.[a-z_]+)*): (.+)$/s.exec(message) : null;
    if (named) [, field, message] = named;
    let best = null;
    for (const slot of form.querySelectorAll(".field-error[data-field]")) {
      const key = slot.dataset.field;
      if ((field === key || field.startsWith(`${key}.`)) && (!best || key.length > best.dataset.field.length)) best = slot;
    }
    if (!best) { loose.push(`${field}: ${message}`); continue; }
    best.textContent = best.textContent ? `${best.textContent} ${message}` : message;
    for (const control of form.querySelectorAll(`[aria-describedby~="${best.id}"]`)) control.setAttribute("aria-invalid", "true");
  }
  formError.replaceChildren(lead, ...(loose.length ? [el("ul", {}, ...loose.map((text) => el("li", { text })))] : []));
  formError.hidden = false;
  formError.focus();
}

/** Problems the page can see without asking the server (the server checks the same and more). */
function localProblems(body) {
  const problems = [];
  const depth = Number($("s-depth").value);
  const width = Number($("s-width").value);
  const least = Number($("s-depth").min);
  if (!Number.isInteger(depth) || depth < least || depth > Number($("s-depth").max)) {
    problems.push({ field: "model.hidden_units", msg: `hidden layers must be a whole number from ${least} to ${$("s-depth").max}` });
  }
  if (isCnn() && (!channels().length || !channels().every((c) => Number.isInteger(c) && c > 0))) {
    problems.push({ field: "model.conv_channels", msg: "channels per conv layer, whole numbers separated by commas (e.g. 16, 32)" });
  }
  if (!Number.isInteger(width) || width < 1 || width > Number($("s-width").max)) {
    problems.push({ field: "model.hidden_units", msg: `units per layer must be a whole number from 1 to ${$("s-width").max}` });
  }
  if (!body.initializers.length) problems.push({ field: "initializers", msg: "tick at least one initializer" });
  return problems;
}

// ---- charts ------------------------------------------------------------------------------------

/** A log-axis series: exact zeros sit on a floor (drawn ▼), overflow ("Infinity", "NaN") leaves a gap. */
function logSeries(values, floor) {
  return values.map((value) => { const v = finite(value); return v === null ? null : v > 0 ? v : floor; });
}

function variances(view, name) {
  return view.initializers.flatMap((net) => net.layers.map((layer) => finite(layer[name]))).filter((v) => v !== null && v > 0);
}

function variancePlot(view, colours, name, title, hover) {
  const positives = variances(view, name);
  const floor = positives.length ? Math.min(...positives) / 10 : 1e-12;
  const decades = positives.length ? Math.log10(Math.max(...positives) / floor) : 0;
  const data = view.initializers.map((net) => {
    const raw = net.layers.map((layer) => layer[name]);
    const colour = colours.get(initializerKey(net.id, net.params));
    return {
      type: "scatter", mode: "lines+markers", name: net.name, x: net.layers.map((layer) => layer.index),
      y: logSeries(raw, floor), line: { color: colour, width: 2.4 }, connectgaps: false,
      marker: { color: colour, size: raw.map((v) => (v === 0 ? 10 : 6)),
                symbol: net.layers.map((layer, i) => (raw[i] === 0 ? "triangle-down" : layer.layer === "output" ? "diamond" : "circle")) },
      customdata: net.layers.map((layer, i) => [layer.layer, typeof raw[i] === "number" ? raw[i].toExponential(3) : String(raw[i]),
                                               hover(layer)]),
      meta: { initializer: net.id },
      hovertemplate: `<b>${net.name}</b><br>%{customdata[0]}: %{customdata[1]}%{customdata[2]}<extra></extra>`,
    };
  });
  return { data, layout: layout(view, title, { type: "log", exponentformat: "power", dtick: decades >= 2 ? Math.ceil(decades / 8) : undefined,
                                               title: { text: "variance (log)" } }) };
}

/** Dead ReLU units (0 on every probe sample: the failure tags' definition), solid; constant units
 *  (the same output on every probe sample, whatever the activation), dashed. */
function deadPlot(view, colours) {
  const data = view.initializers.flatMap((net) => {
    const colour = colours.get(initializerKey(net.id, net.params));
    const trace = (field, dash, what) => ({
      type: "scatter", mode: "lines+markers", name: `${net.name}: ${what}`, x: net.layers.map((layer) => layer.index),
      y: net.layers.map((layer) => finite(layer[field])), line: { color: colour, width: 2.4, dash }, connectgaps: false,
      marker: { color: colour, size: 6, symbol: net.layers.map((layer) => (layer.layer === "output" ? "diamond" : "circle")) },
      customdata: net.layers.map((layer) => [layer.layer, layer.units]), meta: { initializer: net.id, measure: field },
      hovertemplate: `<b>${net.name}</b><br>%{customdata[0]}: %{y:.1%} of %{customdata[1]} units ${what}<extra></extra>`,
    });
    const traces = [trace("constant_fraction", "dot", "constant")];
    if (net.layers.some((layer) => layer.dead_fraction !== null)) traces.unshift(trace("dead_fraction", "solid", "dead (ReLU)"));
    return traces;
  });
  return { data, layout: layout(view, "Dead ReLU units (0 on every probe sample) and constant units (dotted: same output on every sample)",
                                { range: [-0.03, 1.03], tickformat: ".0%", title: { text: "share of units" } }) };
}

function layout(view, title, yaxis) {
  return baseLayout(title, {
    height: 340, showlegend: true, legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top" },
    margin: { l: 70, r: 16, t: 40, b: 90 },
    xaxis: { title: { text: `layer (1 – ${view.depth} hidden, ${view.depth + 1} = output)`, standoff: 4 }, gridcolor: GRID,
             zeroline: false, range: [0.5, view.depth + 1.5], dtick: view.depth > 25 ? 5 : 1 },
    yaxis: { gridcolor: GRID, zeroline: false, ...yaxis },
  });
}

/** One sentence per initializer: how much of layer 1's activation variance the last hidden layer keeps. */
function summary(view) {
  return view.initializers.map((net) => {
    const hidden = net.layers.slice(0, view.depth);
    const first = finite(hidden[0].activation_variance);
    const last = finite(hidden.at(-1).activation_variance);
    const overflow = hidden.find((layer) => finite(layer.activation_variance) === null);
    let text;
    if (overflow) text = `the activations overflow (∞ or NaN) at ${overflow.layer}`;
    else if (!first) text = "layer 1 has no activation variance at all: every input gives the same output";
    else text = `layer ${view.depth} keeps ${(last / first).toPrecision(2)}× layer 1's activation variance`;
    const relu = hidden.some((layer) => layer.dead_fraction !== null);
    const field = relu ? "dead_fraction" : "constant_fraction";
    const share = Math.max(...hidden.map((layer) => finite(layer[field]) ?? 0));
    const what = relu ? "dead ReLU units (0 on every probe sample)" : "constant units (the same output on every probe sample)";
    return el("li", { "data-initializer": net.id }, el("b", { text: net.name }), `: ${text}; at most ${(share * 100).toFixed(0)} % ${what} in a hidden layer.`);
  });
}

async function render(view) {
  const colours = colourMap(view.initializers.map((net) => initializerKey(net.id, net.params)));
  $("signal-results").hidden = false;
  $("signal-summary").replaceChildren(...summary(view));
  await Promise.all([
    draw($("chart-activation"), variancePlot(view, colours, "activation_variance", "Activation variance (forward)",
      (layer) => `<br>pre-activation: ${finite(layer.preactivation_variance)?.toExponential(3) ?? layer.preactivation_variance}`)),
    draw($("chart-gradient"), variancePlot(view, colours, "gradient_variance", "Gradient variance (backward, w.r.t. pre-activations)",
      () => "")),
    draw($("chart-dead"), deadPlot(view, colours)),
  ]);
}

/** A worker answers the probe; while it is still measuring the API answers 202 with a URL to poll. */
async function answer(view) {
  while (view && view.poll && (view.status === "queued" || view.status === "running")) {
    status.textContent = `Probing… (a worker is measuring: ${view.status})`;
    await new Promise((resolve) => setTimeout(resolve, 500));
    view = await fetchJSON(view.poll);
  }
  return view;
}

async function probe(event) {
  event?.preventDefault();
  clearErrors();
  const body = readForm();
  const problems = localProblems(body);
  if (problems.length) { showErrors(problems, "Fix the marked fields first."); return; }
  if (!window.Plotly) { status.textContent = "Plotly did not load, so the charts cannot be drawn."; return; }
  $("s-submit").disabled = true;
  status.textContent = "Probing…";
  const started = performance.now();
  try {
    const view = await answer(await fetchJSON(URL_PROBE, { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "application/json" } }));
    await render(view);
    status.textContent = `${view.initializers.length} network(s) of ${view.depth} hidden layers on ${view.probe_samples} ${view.dataset} samples `
      + `in ${((performance.now() - started) / 1000).toFixed(1)} s.`;
    document.getElementById("signal-results").dataset.ready = "true";
  } catch (err) {
    status.textContent = "";
    if (err.status === 422) showErrors(err.body?.detail, "The server rejected these settings; see the marked fields.");
    else showErrors([{ field: "body", msg: err.body?.detail ?? err.message }], `The probe failed (${err.message.split(" ")[0]}).`);
  } finally {
    $("s-submit").disabled = false;
  }
}

async function start() {
  let initializers;
  let datasets;
  try {
    [initializers, datasets] = await Promise.all([fetchJSON("/api/initializers"), fetchJSON("/api/datasets")]);
  } catch (err) {
    status.textContent = `Could not load the initializers and data sets: ${err.message}.`;
    return;
  }
  $("s-dataset").replaceChildren(...datasets.map((set) => el("option", { value: set.id, text: set.name })));
  catalog = initializers;
  $("s-initializer-list").replaceChildren(...initializers.map((entry) => initializerItem(entry, "s-")));
  fill(SEED_002);
  $("preset-seed-002").addEventListener("click", () => { fill(SEED_002); probe(); });
  $("preset-batchnorm").addEventListener("click", () => { fill(BATCHNORM); probe(); });
  $("s-family").addEventListener("change", showFamily);
  form.addEventListener("submit", probe);
  form.setAttribute("data-ready", "true"); // not form.dataset: the form has a control named "dataset"
}

start();
