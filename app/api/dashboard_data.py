"""Builds the study page's views: rows from app.storage.views, science from app.analysis.

The routes in dashboard.py stay thin; this module decides what each view contains (which
runs form a group, which epochs are sent, which edges a layer shares).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from app.analysis import histograms as hist
from app.analysis.statistics import study_statistics
from app.analysis.summary import (
    METRICS, aggregate, group_verdict, group_key, mark_leader, pick_epochs, run_verdict,
)
from app.schemas_dashboard import (
    Band, Curves, GradientGroup, GradientView, Group, GroupStatistics, GroupTable, HistogramLayer, HistogramRun,
    HistogramView, LayerRef, RunHistograms, RunPercentiles, RunSeries, StudyStatistics, StudySummaryView,
)
from app.api.dashboard_cache import CACHE
from app.storage import views
from app.storage.studies import study_status
from worker.training.initializers import REGISTRY
from worker.training.initializers import label as initializer_label


def _label(initializer: str, params: dict[str, Any], activation: str | None = None, depth: int | None = None) -> str:
    cell = [activation] if activation else []
    cell += [f"{depth} layer{'s' if depth != 1 else ''}"] if depth else []
    return " · ".join([initializer_label(initializer, params), *cell])


def _groups(spec: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Initializer groups in the study's own order (so colours stay put), each with its runs by seed.

    In a grid study (activations and/or depths) a group is one initializer in one grid cell.
    """
    groups: dict[str, dict[str, Any]] = {}

    def add(initializer: str, params: dict[str, Any], activation: str | None, depth: int | None) -> dict[str, Any]:
        key = group_key(initializer, params, activation, depth)
        return groups.setdefault(key, {"key": key, "initializer": initializer, "params": dict(params),
                                       "activation": activation, "depth": depth, "runs": []})

    for activation in spec.get("activations") or [None]:
        for depth in spec.get("depths") or [None]:
            for ref in spec.get("initializers", []):
                if isinstance(ref, str):
                    add(ref, {}, activation, depth)
                elif isinstance(ref, dict) and "id" in ref:
                    add(ref["id"], ref.get("params") or {}, activation, depth)
    for run in runs:
        add(run["initializer"], run["initializer_params"] or {}, run.get("activation"), run.get("depth"))["runs"].append(run)
    seeds = list(spec.get("seeds", []))
    order = {seed: i for i, seed in enumerate(seeds)}
    for group in groups.values():
        group["runs"].sort(key=lambda run: (order.get(run["seed"], len(seeds)), run["seed"]))
    return [group for group in groups.values() if group["runs"]]


def _band(series: list[dict[int, Any]], epochs: list[int]) -> Band:
    return Band(**aggregate(series, epochs))


def study_summary(study_id: int, max_points: int = 200, with_runs: bool = True, with_stats: bool = True,
                  baseline: str | None = None, threshold: float = 90.0) -> StudySummaryView | None:
    """Groups with their verdict (table row), mean/band curves and seed-paired statistics, plus per-run series."""
    header = views.study_header(study_id)
    if header is None:
        return None
    runs = views.study_runs(study_id)
    by_run: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in views.study_epoch_metrics(study_id):
        by_run[row["run_id"]].append(row)
    all_epochs = sorted({row["epoch"] for rows in by_run.values() for row in rows})
    shown = pick_epochs(all_epochs, max_points)
    model = header["spec"].get("model") or {}
    spec_activation, spec_depth = model.get("activation"), len(model.get("hidden_units") or []) or None
    groups, tables, series_out, paired = [], [], [], []
    for group in _groups(header["spec"], runs):
        verdicts = [run_verdict(by_run[run["id"]]) for run in group["runs"]]
        paired.append({"key": group["key"], "initializer": group["initializer"], "runs": [
            {"seed": run["seed"], "status": run["status"], "diverged": verdict["diverged"], "rows": by_run[run["id"]],
             "final": verdict["final_val_accuracy"], "best": verdict["best_val_accuracy"]}
            for run, verdict in zip(group["runs"], verdicts)]})
        tables.append(group_verdict(verdicts, [run["status"] for run in group["runs"]]))
        per_metric = {m: [{row["epoch"]: row[m] for row in by_run[run["id"]]} for run in group["runs"]] for m in METRICS}
        groups.append({
            "key": group["key"], "initializer": group["initializer"], "params": group["params"],
            "activation": group["activation"] or spec_activation, "depth": group["depth"] or spec_depth,
            "label": _label(group["initializer"], group["params"], group["activation"], group["depth"]),
            "formula": REGISTRY[group["initializer"]].formula if group["initializer"] in REGISTRY else "",
            "run_ids": [run["id"] for run in group["runs"]], "seeds": [run["seed"] for run in group["runs"]],
            "curves": Curves(epochs=shown, **{m: _band(per_metric[m], shown) for m in METRICS}),
        })
        if with_runs:
            keep = set(shown)
            for run, verdict in zip(group["runs"], verdicts):
                rows = [row for row in by_run[run["id"]] if row["epoch"] in keep]
                series_out.append(RunSeries(
                    run_id=run["id"], group=group["key"], seed=run["seed"], status=run["status"],
                    diverged=verdict["diverged"], epochs=[row["epoch"] for row in rows],
                    **{m: [row[m] for row in rows] for m in METRICS}))
    leader = mark_leader(tables)
    statistics, stats = None, [None] * len(groups)
    if with_stats:
        found = study_statistics(paired, str(header["spec"].get("model", {}).get("activation", "relu")), baseline, threshold)
        stats = [GroupStatistics(**{k: v for k, v in g.items() if k != "key"}) for g in found.pop("groups")]
        statistics = StudyStatistics(**found)
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        counts[run["status"]] += 1
    return StudySummaryView(
        study_id=study_id, name=header["name"], status=study_status(dict(counts)), created_at=header["created_at"],
        planned_epochs=int(header["spec"].get("training", {}).get("epochs") or max((r["epochs"] for r in runs), default=0)),
        seeds=list(header["spec"].get("seeds", [])),
        groups=[Group(**g, table=GroupTable(**t, leader=i == leader), stats=s)
                for i, (g, t, s) in enumerate(zip(groups, tables, stats))],
        runs=series_out if with_runs else None, downsampled=len(shown) < len(all_epochs), statistics=statistics,
    )


def gradient_view(study_id: int, max_points: int = 200) -> GradientView | None:
    """Per layer and initializer: the probe gradient's L2 norm over epochs, aggregated over seeds."""
    header = views.study_header(study_id)
    if header is None:
        return None
    runs = views.study_runs(study_id)
    aggregates = CACHE.aggregates(runs)
    layers: dict[str, int] = {}
    for entry in aggregates.values():
        layers.update({layer: entry.layers[layer] for layer in entry.norms})
    all_epochs = sorted({epoch for entry in aggregates.values() for norms in entry.norms.values() for epoch in norms})
    shown = pick_epochs(all_epochs, max_points)
    groups = []
    for group in _groups(header["spec"], runs):
        bands = {layer: _band([aggregates[run["id"]].norms.get(layer, {}) for run in group["runs"]], shown)
                 for layer in layers}
        groups.append(GradientGroup(key=group["key"], label=_label(group["initializer"], group["params"], group["activation"],
                                                                   group["depth"]), layers=bands))
    ordered = sorted(layers.items(), key=lambda item: item[1])
    return GradientView(study_id=study_id, epochs=shown, layers=[LayerRef(layer=n, index=i) for n, i in ordered],
                        groups=groups, downsampled=len(shown) < len(all_epochs))


def shared_edges(study_id: int, kind: str, bins: int, robust: bool,
                 runs: list[dict[str, Any]] | None = None) -> dict[str, tuple[int, np.ndarray]]:
    """Per layer: (index, edges) shared by every run and epoch of the study for this kind of tensor."""
    ranges = CACHE.ranges(views.study_runs(study_id) if runs is None else runs, kind, robust)
    return {layer: (index, hist.shared_edges(low, high, bins)) for layer, (index, low, high) in ranges.items()}


def _rounded(values: np.ndarray) -> list[float]:
    # Two decimals of a count are plenty and halve the JSON.
    return np.round(values, 2).tolist()


def _binned_all(edges: np.ndarray, rows: list[dict[str, Any]], bins: int) -> list[dict[str, Any]]:
    """Each row's histogram on ``edges`` (one batch in numpy); an all-NaN tensor gets empty bins."""
    empty = {"counts": np.zeros(bins), "below": 0.0, "above": 0.0, "total": 0.0, "approximate": False}
    found = hist.rebin_many(edges, [(row["quantiles"], row["edges"], row["counts"]) for row in rows])
    return [empty if binned is None else binned for binned in found]


def histogram_view(study_id: int, kind: str, epoch: int, bins: int, robust: bool) -> HistogramView:
    """Every run's histogram of ``kind`` at one epoch, per layer, on the layer's shared edges."""
    study_runs = views.study_runs(study_id)
    edges = shared_edges(study_id, kind, bins, robust, study_runs)
    rows_by_layer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in views.tensors_at_epoch(study_id, kind, epoch):
        if row["layer"] in edges:
            rows_by_layer[row["layer"]].append(row)
    layers, approximate = [], False
    for layer, (index, edge) in sorted(edges.items(), key=lambda item: item[1][0]):
        rows = rows_by_layer.get(layer, [])
        runs = []
        for row, binned in zip(rows, _binned_all(edge, rows, bins)):
            approximate = approximate or binned["approximate"]
            runs.append(HistogramRun(
                run_id=row["run_id"], counts=_rounded(binned["counts"]), below=round(binned["below"], 2),
                above=round(binned["above"], 2), total=binned["total"], nonfinite=row["nonfinite"],
                approximate=binned["approximate"]))
        layers.append(HistogramLayer(layer=layer, index=index, edges=edge.tolist(), runs=runs))
    return HistogramView(study_id=study_id, kind=kind, epoch=epoch, range="robust" if robust else "full",
                         epochs=CACHE.epochs(study_runs, kind), layers=layers, approximate=approximate)


def run_histograms(run_id: int, study_id: int, layer: str, kind: str, bins: int, robust: bool) -> RunHistograms | None:
    """One run and layer at every epoch, on the study's shared edges for that layer."""
    edges = shared_edges(study_id, kind, bins, robust).get(layer)
    if edges is None:
        return None
    rows = views.tensors_of_run(run_id, kind, layer)
    binned = _binned_all(edges[1], rows, bins)
    return RunHistograms(
        run_id=run_id, layer=layer, kind=kind, range="robust" if robust else "full", edges=edges[1].tolist(),
        approximate=any(b["approximate"] for b in binned), epochs=[row["epoch"] for row in rows],
        counts=[_rounded(b["counts"]) for b in binned], below=[round(b["below"], 2) for b in binned],
        above=[round(b["above"], 2) for b in binned], nonfinite=[row["nonfinite"] for row in rows])


def run_percentiles(run_id: int, layer: str, kind: str) -> RunPercentiles:
    """TensorBoard's nine percentiles of one run's layer at every epoch."""
    epochs, values, nonfinite = [], [], []
    approximate = False
    for row in views.tensors_of_run(run_id, kind, layer):
        found = hist.percentiles(row["quantiles"], row["edges"], row["counts"])
        epochs.append(row["epoch"])
        nonfinite.append(row["nonfinite"])
        if found is None:
            values.append([None] * len(hist.TENSORBOARD_PERCENTILES))
            continue
        values.append(found[0])
        approximate = approximate or found[1]
    return RunPercentiles(run_id=run_id, layer=layer, kind=kind, fractions=list(hist.TENSORBOARD_PERCENTILES),
                          epochs=epochs, values=values, nonfinite=nonfinite, approximate=approximate)
