// The "how the weights moved" panel: its controls (tensor, range, epoch slider, layer and run
// pickers) and its four charts. Data are fetched lazily, per tensor kind and epoch for the
// grid and overlay, per run and layer for the epoch views, and kept once a study has finished.
import { el, fetchJSON } from "./common.js";
import { draw } from "./charts.js";
import { isolateOnLegendClick } from "./curves.js";
import { HistogramCache, gridFigure, overlayFigure, spreadLayers } from "./histograms.js";
import { heatmapFigure, percentileFigure } from "./hist_epochs.js";
import { tensorOptions } from "./tensor_kinds.js";

const $ = (id) => document.getElementById(id);
const GRID_LAYERS = 8; // rows of the grid before a deep net's layers are spread out

/** Replace a select's options, keeping the chosen value when it still exists. */
function setOptions(select, options, fallback) {
  const before = select.value;
  const signature = JSON.stringify(options);
  if (select.dataset.signature !== signature) {
    select.replaceChildren(...options.map(([value, text]) => el("option", { value, text })));
    select.dataset.signature = signature;
  }
  const values = options.map(([value]) => value);
  select.value = values.includes(before) ? before : (values.includes(fallback) ? fallback : values[0] ?? "");
}

export class HistPanel {
  constructor(studyId, onIsolate) {
    this.studyId = studyId;
    this.cache = new HistogramCache(studyId);
    this.theories = new Map(); // tensor kind -> /theory answer (fixed once epoch 0 is recorded everywhere)
    this.chosenEpoch = null; // null: follow the latest epoch
    this.context = null;
    this.token = 0;
    this.epochToken = 0;
    this.onIsolate = onIsolate;
    this.slider = $("hist-epoch");
    let timer = null;
    this.slider.addEventListener("input", () => {
      const value = Number(this.slider.value);
      this.chosenEpoch = value >= Number(this.slider.max) ? null : value;
      $("hist-epoch-value").textContent = `${value}${this.chosenEpoch === null ? " (latest)" : ""}`;
      clearTimeout(timer);
      timer = setTimeout(() => this.safely(this.render()), 100);
    });
    for (const id of ["hist-tensor", "hist-range", "hist-theory", "hist-layers"]) {
      $(id).addEventListener("change", () => this.safely(this.render().then(() => this.renderEpochs())));
    }
    $("overlay-layer").addEventListener("change", () => this.safely(this.render()));
    for (const id of ["epochs-run", "epochs-layer"]) $(id).addEventListener("change", () => this.safely(this.renderEpochs()));
  }

  /** A failed fetch leaves the charts as they were and says so in the hint, instead of an uncaught error. */
  safely(promise) {
    return promise.catch((err) => {
      console.warn("initlab: histograms", err);
      $("hist-note").textContent = `Could not load histograms (${err.message}).`;
    });
  }

  /** context: {groups, colours, isolated, finished, normalization, runs: [{id, seed, group, label}]}. */
  async update(context, { data = true } = {}) {
    this.context = context;
    setOptions($("hist-tensor"), tensorOptions(context.normalization), "kernel");
    if (data && !context.finished) this.cache.clear();
    await this.render(); // sets the layer pickers the epoch views read
    await this.renderEpochs();
  }

  options() {
    return { kind: $("hist-tensor").value, range: $("hist-range").value };
  }

  async render() {
    if (!this.context) return;
    const token = ++this.token;
    const { groups, colours, isolated, finished } = this.context;
    const { kind, range } = this.options();
    const base = await this.cache.get({ kind, epoch: 0, range }, finished);
    const epochs = base.epochs.filter((e) => e > 0);
    const latest = epochs.at(-1) ?? 0;
    const chosen = this.chosenEpoch === null ? latest : Math.min(latest, this.chosenEpoch);
    const current = chosen > 0 ? await this.cache.get({ kind, epoch: chosen, range }, finished) : null;
    if (token !== this.token) return; // a newer request has started
    Object.assign(this.slider, { min: "0", max: String(latest), disabled: latest === 0 });
    this.slider.value = String(chosen);
    $("hist-epoch-value").textContent = latest === 0 ? `0 (only initialization ${finished ? "was recorded" : "so far"})`
      : `${chosen}${chosen === latest ? " (latest)" : ""}`;
    const approximate = base.approximate || current?.approximate;
    $("hist-note").textContent = approximate
      ? "Approximate: some rows were recorded before quantiles were stored and are re-binned from their own 64-bin histograms." : "";
    const layers = base.layers.map((l) => [l.layer, l.layer]);
    setOptions($("overlay-layer"), layers, layers[0]?.[0]);
    setOptions($("epochs-layer"), layers, layers[0]?.[0]);
    const theory = await this.theoryFor(kind, finished);
    if (token !== this.token) return;
    if (theory?.mismatches) {
      $("hist-note").textContent += ` ⚠ ${theory.mismatches} tensor(s) at epoch 0 do not follow their initializer's`
        + " distribution (KS above the threshold): see the red cells.";
    }
    const names = base.layers.map((l) => l.layer);
    const shown = $("hist-layers").value === "all" ? names : spreadLayers(names, GRID_LAYERS);
    if (shown.length < names.length) {
      $("hist-note").textContent += ` Showing ${shown.length} of ${names.length} layers, spread over the depth`
        + " (Layers: all shows every one; the overlay and epoch views below take any layer).";
    }
    const grid = gridFigure(base, current, groups, colours, { tensor: kind, epoch: chosen, theory, shown, finished });
    const hist = $("chart-hist");
    hist.style.minWidth = `${Math.max(1, groups.length) * 190 + 90}px`;
    const overlay = overlayFigure(current ?? base, $("overlay-layer").value, groups, colours,
                                  { tensor: kind, epoch: chosen, isolated, finished });
    await Promise.all([draw(hist, grid), draw($("chart-overlay"), overlay)]);
    isolateOnLegendClick($("chart-overlay"), this.onIsolate);
  }

  /** The theory check for kernels or biases, when asked for; null for gradients or on an error. */
  async theoryFor(kind, finished) {
    if (!$("hist-theory").checked || (kind !== "kernel" && kind !== "bias")) return null;
    if (this.theories.has(kind)) return this.theories.get(kind);
    try {
      const body = await fetchJSON(`/api/studies/${this.studyId}/theory?kind=${kind}`);
      if (finished) this.theories.set(kind, body);
      return body;
    } catch (err) {
      console.warn("initlab: theory", err);
      return null;
    }
  }

  async renderEpochs() {
    if (!this.context) return;
    const token = ++this.epochToken;
    const { runs, colours, finished } = this.context;
    setOptions($("epochs-run"), runs.map((r) => [String(r.id), `${r.label} · seed ${r.seed}`]), String(runs[0]?.id ?? ""));
    const run = runs.find((r) => String(r.id) === $("epochs-run").value);
    const layer = $("epochs-layer").value;
    if (!run || !layer) {
      // Nothing to pick: say why instead of leaving two blank boxes.
      const note = !run ? "No run to show." : finished
        ? "No layer statistics were recorded<br>(see the runs table)."
        : "No layer statistics recorded yet.";
      const title = run ? `${run.label} · seed ${run.seed}` : "No run";
      await Promise.all([draw($("chart-heatmap"), heatmapFigure(null, title, note)),
                         draw($("chart-percentiles"), percentileFigure(null, title, colours.get(run?.group), note))]);
      this.epochKey = null;
      return;
    }
    const { kind, range } = this.options();
    const key = JSON.stringify([run.id, layer, kind, range]);
    if (finished && this.epochKey === key) return;
    const query = `layer=${encodeURIComponent(layer)}&kind=${kind}`;
    const [heat, bands] = await Promise.all([
      fetchJSON(`/api/runs/${run.id}/histograms?${query}&range=${range}`).catch(() => null),
      fetchJSON(`/api/runs/${run.id}/percentiles?${query}`).catch(() => null),
    ]);
    if (token !== this.epochToken) return;
    const title = `${run.label} · seed ${run.seed} · ${layer}`;
    const empty = finished ? "No statistics were recorded for this run and layer." : undefined;
    await Promise.all([draw($("chart-heatmap"), heatmapFigure(heat, title, empty)),
                       draw($("chart-percentiles"), percentileFigure(bands, title, colours.get(run.group), empty))]);
    this.epochKey = key;
  }
}
