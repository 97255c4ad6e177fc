"""The study page's histogram views: every run's tensors on edges shared by the study, and percentiles.

Rows from app.storage.views, the re-binning from app.analysis.histograms; the per-layer
ranges that fix the shared edges come from the aggregate cache (app/dashboard/cache.py).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from app.analysis import histograms as hist
from app.dashboard.cache import CACHE
from app.dashboard.memo import MEMO
from app.dashboard.run_rows import RUN_ROWS, edges_key
from app.schemas.dashboard import (
    HistogramLayer,
    HistogramRun,
    HistogramView,
    RunHistograms,
    RunPercentiles,
)
from app.storage import views


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
    found = hist.rebin_many(edges, [(row["quantiles"], row["edges"], row["counts"], row["min"], row["max"]) for row in rows])
    return [empty if binned is None else binned for binned in found]


def histogram_view(study_id: int, kind: str, epoch: int, bins: int, robust: bool) -> HistogramView:
    """Every run's histogram of ``kind`` at one epoch, per layer, on the layer's shared edges (kept until
    the study's data change: app/dashboard/memo.py)."""
    return MEMO.answer(study_id, "histograms", (kind, epoch, bins, robust),
                       lambda: _histogram_view(study_id, kind, epoch, bins, robust))


def _histogram_view(study_id: int, kind: str, epoch: int, bins: int, robust: bool) -> HistogramView:
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
    """One run and layer at every epoch, on the study's shared edges for that layer (kept until the study's
    data change)."""
    return MEMO.answer(study_id, "run histograms", (run_id, layer, kind, bins, robust),
                       lambda: _run_histograms(run_id, study_id, layer, kind, bins, robust))


def _run_of(study_id: int, run_id: int, runs: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    return next((run for run in (views.study_runs(study_id) if runs is None else runs) if run["id"] == run_id), None)


def _run_histograms(run_id: int, study_id: int, layer: str, kind: str, bins: int, robust: bool) -> RunHistograms | None:
    study_runs = views.study_runs(study_id)
    edges = shared_edges(study_id, kind, bins, robust, study_runs).get(layer)
    run = _run_of(study_id, run_id, study_runs)
    if edges is None or run is None:
        return None
    # Re-binned once per row and shared edges: only new epochs, unless the edges moved.
    rows, binned = RUN_ROWS.derived(run, kind, layer, ("binned", bins, edges_key(edges[1])),
                                    lambda new: _binned_all(edges[1], new, bins))
    return RunHistograms(
        run_id=run_id, layer=layer, kind=kind, range="robust" if robust else "full", edges=edges[1].tolist(),
        approximate=any(b["approximate"] for b in binned), epochs=[row["epoch"] for row in rows],
        counts=[_rounded(b["counts"]) for b in binned], below=[round(b["below"], 2) for b in binned],
        above=[round(b["above"], 2) for b in binned], nonfinite=[row["nonfinite"] for row in rows])


def run_percentiles(run_id: int, study_id: int, layer: str, kind: str) -> RunPercentiles | None:
    """TensorBoard's nine percentiles of one run's layer at every epoch (kept until the study's data change);
    None when no run of the study recorded such a layer, as run_histograms (the route's 404)."""
    return MEMO.answer(study_id, "run percentiles", (run_id, layer, kind),
                       lambda: _run_percentiles(run_id, study_id, layer, kind))


def _percentiles(row: dict[str, Any]):
    return hist.percentiles(row["quantiles"], row["edges"], row["counts"], hist.TENSORBOARD_PERCENTILES,
                            row["min"], row["max"])


def _run_percentiles(run_id: int, study_id: int, layer: str, kind: str) -> RunPercentiles | None:
    epochs, values, nonfinite = [], [], []
    approximate = False
    study_runs = views.study_runs(study_id)
    run = _run_of(study_id, run_id, study_runs)
    if run is None or layer not in CACHE.ranges(study_runs, kind, False):
        return None
    rows, found_all = RUN_ROWS.derived(
        run, kind, layer, ("percentiles",), lambda new: [_percentiles(row) for row in new])
    for row, found in zip(rows, found_all):
        epochs.append(row["epoch"])
        nonfinite.append(row["nonfinite"])
        if found is None:
            values.append([None] * len(hist.TENSORBOARD_PERCENTILES))
            continue
        values.append(found[0])
        approximate = approximate or found[1]
    return RunPercentiles(run_id=run_id, layer=layer, kind=kind, fractions=list(hist.TENSORBOARD_PERCENTILES),
                          epochs=epochs, values=values, nonfinite=nonfinite, approximate=approximate)
