// The study page's controller: it owns the page's state and its one refresh cycle, and feeds the
// section renderers (verdict table, curves, gradients, shared-edge histograms, statistics,
// failure modes, grid heatmap, runs, export). It loads everything once, then follows the study
// live through server-sent events: progress bars move at once, and when the event stream says
// new data was written (its data version changed) one refresh fetches every view again. No
// section polls on its own; the page stops listening when the study is over.
import { ACTIVE_STATUSES, colourMap, el, fetchJSON, formatDuration, readJSON } from "./common.js";
import { draw } from "./charts.js";
import { CURVE_CHARTS, curveFigure, isolateOnLegendClick } from "./curves.js";
import { gradientFigure } from "./gradients.js";
import { HistPanel } from "./hist_panel.js";
import { renderChips } from "./legend.js";
import { openLiveStream } from "./live.js";
import { renderRuns, runAction } from "./runs_table.js";
import { renderSummary, verdictSentence } from "./summary_table.js";
import { renderExport } from "./study_export.js";
import { renderFailures } from "./study_failures.js";
import { renderGrid } from "./study_grid.js";
import { mountStats, reload as reloadStats } from "./study_stats.js";
import { mountPhase } from "./phase.js";

const root = document.getElementById("study");
const studyId = root.dataset.studyId;
const $ = (id) => document.getElementById(id);
const status = $("live-status");

const state = {
  study: null, summary: null, gradients: null, colours: new Map(), isolated: null, live: new Map(),
  stream: null, version: null, busy: false, again: false, timer: null, refreshes: 0, notice: "",
};
const hist = new HistPanel(studyId, isolate);

const options = () => ({ band: $("band-mode").value, seeds: $("show-seeds").checked, log: $("loss-log").checked,
                         isolated: state.isolated });
const active = () => (state.study?.runs ?? []).some((run) => ACTIVE_STATUSES.has(run.status));

/** The study's runs with the newest live progress laid over them. */
function mergedRuns() {
  return (state.study?.runs ?? []).map((run) => ({ ...run, ...(state.live.get(run.id) ?? {}) }));
}

function runRows() {
  const byId = new Map(mergedRuns().map((run) => [run.id, run]));
  const last = new Map((state.summary?.runs ?? []).map((series) => [series.run_id, Object.fromEntries(
    ["loss", "val_loss", "val_accuracy"].map((m) => [m, series[m].at(-1)]))]));
  return (state.summary?.groups ?? []).flatMap((group) => group.run_ids.filter((id) => byId.has(id)).map((id) => ({
    run: byId.get(id), label: group.label, colour: state.colours.get(group.key), last: last.get(id),
  })));
}

const curveFigureAt = (i) => curveFigure(CURVE_CHARTS[i].metric, CURVE_CHARTS[i].title, state.summary, state.colours,
                                         { ...options(), legend: i < 2 });

/** The first chart alone: the one a reader looks at first, and the one the page's speed is measured by. */
async function drawFirstCurve() {
  await draw($(CURVE_CHARTS[0].id), curveFigureAt(0));
  if (!root.dataset.firstChart) {
    root.dataset.firstChart = String(Math.round(performance.now()));
    performance.mark("initlab:first-chart");
  }
}

async function drawCurves({ first = true } = {}) {
  if (first) await drawFirstCurve();
  await Promise.all(CURVE_CHARTS.slice(1).map((chart, i) => draw($(chart.id), curveFigureAt(i + 1))));
  for (const { id } of CURVE_CHARTS) isolateOnLegendClick($(id), isolate);
}

async function drawGradients() {
  await draw($("chart-gradients"), gradientFigure(state.gradients, state.colours, options()));
  isolateOnLegendClick($("chart-gradients"), isolate);
}

function histContext() {
  const groups = state.summary.groups;
  const label = new Map(groups.map((g) => [g.key, g.label]));
  const runs = state.summary.runs ?? [];
  return { groups, colours: state.colours, isolated: state.isolated, finished: !active(),
           normalization: state.study.spec?.model?.normalization ?? "none",
           runs: runs.map((r) => ({ id: r.run_id, seed: r.seed, group: r.group, label: label.get(r.group) })) };
}

function renderTables() {
  renderChips($("init-chips"), state.summary.groups, state.colours, state.isolated, isolate);
  renderSummary($("summary-table"), state.summary, state.colours);
  $("verdict-text").textContent = verdictSentence(state.summary);
  renderRuns($("runs-table").tBodies[0], runRows(), act);
}

function renderHeader() {
  const runs = mergedRuns();
  const study = state.study;
  const badge = $("study-status");
  badge.textContent = study.status;
  badge.className = `badge status-${study.status}`;
  $("cancel-study").hidden = !runs.some((run) => ACTIVE_STATUSES.has(run.status));
  $("retry-study").hidden = !runs.some((run) => run.status === "failed" || run.status === "cancelled");
  $("delete-study").hidden = runs.some((run) => ACTIVE_STATUSES.has(run.status));  // the API refuses it then (409)
  const running = runs.filter((run) => ACTIVE_STATUSES.has(run.status));
  $("overall-progress").hidden = !running.length;
  if (running.length) {
    const fraction = runs.reduce((sum, run) => sum + (run.fraction ?? (run.status === "succeeded" ? 1 : 0)), 0) / runs.length;
    const eta = Math.max(0, ...runs.map((run) => (run.status === "running" ? run.eta_s ?? 0 : 0)));
    $("overall-bar").value = fraction;
    $("overall-text").textContent = `${Math.round(fraction * 100)} % of all batches · ${running.length} run(s) unfinished`
      + (eta > 0 ? ` · slowest running run: about ${formatDuration(eta)} left` : "");
  }
}

/** The first requests, started by study_early.js while plotly.min.js loads (used once). */
function earlyOrFresh() {
  const early = window.INITLAB_EARLY;
  window.INITLAB_EARLY = null; // later refreshes must see new data
  return early ? [readJSON(early.study), readJSON(early.summary)]
    : [fetchJSON(`/api/studies/${studyId}`), fetchJSON(`/api/studies/${studyId}/summary?stats=false`)];
}

/** The sections that draw from views of their own, fetched in the same cycle. */
async function refreshSections() {
  const failures = fetchJSON(`/api/studies/${studyId}/failures`)
    .then(renderFailures, (err) => console.warn("initlab: failure modes", err));
  await Promise.all([failures, reloadStats(), renderGrid(state.study.spec ?? {}, state.summary),
                     state.phase ? state.phase() : null]);
}

/** The one refresh cycle: fetch what the page shows and redraw it all; overlapping calls fold into one more pass. */
async function refreshData() {
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    const [study, summary] = await Promise.all(earlyOrFresh());
    Object.assign(state, { study, summary, colours: colourMap(summary.groups.map((g) => g.key)) });
    await drawFirstCurve();
    renderHeader();
    renderTables();
    await drawCurves({ first: false });
    state.gradients = await fetchJSON(`/api/studies/${studyId}/gradients`);
    await Promise.all([drawGradients(), hist.update(histContext()), refreshSections()]);
    state.refreshes += 1;
    root.dataset.refreshes = String(state.refreshes);
  } catch (err) {
    if (err.status === 404) { status.textContent = "This study no longer exists."; stopLive(); return; }
    console.warn("initlab: refresh failed", err);
    status.textContent = `Could not refresh (${err.message}); trying again shortly.`;
    setTimeout(scheduleData, 4000);
  } finally {
    state.busy = false;
  }
  if (state.again) { state.again = false; refreshData(); }
}

function scheduleData() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refreshData, 150);
}

/** Isolation changes visibility only: redraw from what is already loaded. */
function isolate(key) {
  state.isolated = state.isolated === key ? null : key;
  redraw();
}

function redraw() {
  if (!state.summary) return;
  renderChips($("init-chips"), state.summary.groups, state.colours, state.isolated, isolate);
  const warn = (err) => console.warn("initlab: redraw", err);
  drawCurves().catch(warn);
  if (state.gradients) drawGradients().catch(warn);
  hist.context = histContext();
  hist.safely(hist.render());
}

/** The header's "Trained with" line, as the page's template draws it, from the feed's [[description, runs], ...]. */
function renderEnvironments(environments) {
  let row = $("spec-environment");
  if (!environments.length) { if (row) row.hidden = true; return; }
  if (!row) {
    row = el("div", { id: "spec-environment" }, el("dt", { text: "Trained with" }), el("dd"));
    root.querySelector("dl.spec")?.append(row);
  }
  row.hidden = false;
  const dd = row.querySelector("dd");
  if (environments.length === 1) { dd.textContent = environments[0][0]; return; }
  dd.replaceChildren(el("strong", { text: `${environments.length} environments, whose numbers differ` }),
                     `: ${environments.map(([text, count]) => `${text} (${count} run${count !== 1 ? "s" : ""})`).join("; ")}`);
}

/** One "progress" event: the whole study (a stream's first) or, with partial, only the runs that changed
 *  and the running ones, laid over what the page has (app/api/routes/events.py). */
function onProgress(event) {
  if (!event.partial) state.live.clear();
  for (const run of event.runs) state.live.set(run.id, run);
  if (event.environments) renderEnvironments(event.environments);
  if (state.study) {
    state.study.status = event.status;
    const byId = new Map(state.study.runs.map((run) => [run.id, run]));
    for (const live of event.runs) {
      const run = byId.get(live.id);
      if (run) Object.assign(run, { status: live.status, epoch: live.epoch, batch: live.batch, batches: live.batches, error: live.error });
    }
    renderHeader();
    // Rows whose run did not change are compared, not rebuilt (runs_table.js).
    if (state.summary && event.runs.length) renderRuns($("runs-table").tBodies[0], runRows(), act);
  }
  if (event.data_version !== state.version) {
    if (state.version !== null) scheduleData();
    state.version = event.data_version;
  }
  status.textContent = (state.notice ? `${state.notice} ` : "") + "Live: progress and charts update as the runs train.";
}

function startLive() {
  if (state.stream) return;
  root.dataset.live = "true";
  state.stream = openLiveStream(studyId, {
    onProgress,
    onEnd: () => {
      state.stream = null;
      root.dataset.live = "false";
      status.textContent = (state.notice ? `${state.notice} ` : "") + "Every run has finished; the page is no longer live.";
      scheduleData();
    },
    onState: (what) => { if (what === "closed") { stopLive(); status.textContent = "The live feed was closed; reload to resume."; } },
  });
}

function stopLive() {
  state.stream?.close();
  state.stream = null;
  root.dataset.live = "false";
}

async function act(verb, run) {
  state.notice = (await runAction(verb, run)) ?? "";
  await refreshData();
  if (active()) startLive();
}

$("cancel-study").addEventListener("click", async () => {
  if (!window.confirm("Cancel every queued or running run of this study?")) return;
  try { await fetchJSON(`/api/studies/${studyId}/cancel`, { method: "POST" }); } catch (err) { state.notice = `Could not cancel: ${err.message}.`; }
  await refreshData();
});
$("delete-study").addEventListener("click", async () => {
  if (!window.confirm("Delete this study, its runs and everything recorded for them? This cannot be undone.")) return;
  try {
    await fetchJSON(`/api/studies/${studyId}`, { method: "DELETE" });
    window.location.assign("/");
  } catch (err) {
    state.notice = `Could not delete: ${err.message}.`;
    await refreshData();
  }
});
$("retry-study").addEventListener("click", async () => {
  const failed = mergedRuns().filter((run) => run.status === "failed" || run.status === "cancelled");
  const errors = (await Promise.all(failed.map((run) => runAction("retry", run)))).filter(Boolean);
  state.notice = errors.join(" ");
  await refreshData();
  if (active()) startLive();
});
for (const id of ["band-mode", "show-seeds", "loss-log"]) $(id).addEventListener("change", redraw);

async function start() {
  if (!window.Plotly) {
    status.textContent = "Plotly did not load, so the charts cannot be drawn.";
    return;
  }
  mountStats(studyId);
  renderExport(studyId);
  if (document.getElementById("phase-section")) state.phase = mountPhase(studyId);
  await refreshData();
  if (active()) startLive();
  else status.textContent = "Every run has finished; the page is no longer live.";
  root.dataset.ready = "true";
}

start();
