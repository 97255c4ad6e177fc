"""The study page's summary and gradient views: rows from app.storage.views, science from app.analysis.

The routes (app/api/routes/dashboard.py) stay thin; this module decides what each view
contains: which runs form a group (one initializer in one grid cell, in the study's own
order so colours stay put), which epochs are sent, and the seed-paired statistics.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from app.analysis.statistics import study_statistics
from app.analysis.summary import (
    METRICS, aggregate, group_verdict, group_key, initializer_key, mark_leaders, pick_epochs, run_verdict,
)
from app.dashboard.cache import CACHE
from app.dashboard.memo import MEMO
from app.domain.lifecycle import study_status
from app.domain.registry import REGISTRY
from app.domain.registry import label as initializer_label
from app.domain.spec import StudySpec
from app.schemas.dashboard import (
    Band, Curves, GradientGroup, GradientView, Group, GroupStatistics, GroupTable, LayerRef, RunSeries,
    StudyStatistics, StudySummaryView,
)
from app.storage import views


def _label(spec: StudySpec, initializer: str, params: dict[str, Any], activation: str | None = None,
           depth: int | None = None, bias_variance: float | None = None) -> str:
    cell = spec.cell_label(activation, depth, bias_variance)
    return " · ".join([initializer_label(initializer, params), *([cell] if cell else [])])


def _groups(spec: StudySpec, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Initializer groups in the study's own order (so colours stay put), each with its runs by seed.

    In a grid study (activations and/or depths) a group is one initializer in one grid cell; in a
    weight-variance sweep one (σ_w², σ_b²) in one cell.
    """
    groups: dict[str, dict[str, Any]] = {}

    def add(initializer: str, params: dict[str, Any], activation: str | None, depth: int | None,
            bias_variance: float | None) -> dict[str, Any]:
        key = group_key(initializer, params, activation, depth, bias_variance)
        return groups.setdefault(key, {"key": key, "initializer": initializer, "params": dict(params),
                                       "activation": activation, "depth": depth, "bias_variance": bias_variance,
                                       "runs": []})

    for planned in spec.runs():
        add(planned.initializer.id, planned.initializer.params, planned.activation, planned.depth, planned.bias_variance)
    for run in runs:
        add(run["initializer"], run["initializer_params"] or {}, run.get("activation"), run.get("depth"),
            run.get("bias_variance"))["runs"].append(run)
    seeds = list(spec.seeds)
    order = {seed: i for i, seed in enumerate(seeds)}
    for group in groups.values():
        group["runs"].sort(key=lambda run: (order.get(run["seed"], len(seeds)), run["seed"]))
    return [group for group in groups.values() if group["runs"]]


def _band(series: list[dict[int, Any]], epochs: list[int]) -> Band:
    return Band(**aggregate(series, epochs))


def study_summary(study_id: int, max_points: int = 200, with_runs: bool = True, with_stats: bool = True,
                  baseline: str | None = None, threshold: float = 90.0) -> StudySummaryView | None:
    """Groups with their verdict (table row), mean/band curves and seed-paired statistics, plus per-run series;
    kept until the study's data change (app/dashboard/memo.py)."""
    return MEMO.answer(study_id, "summary", (max_points, with_runs, with_stats, baseline, threshold),
                       lambda: _study_summary(study_id, max_points, with_runs, with_stats, baseline, threshold))


def _study_summary(study_id: int, max_points: int, with_runs: bool, with_stats: bool, baseline: str | None,
                   threshold: float) -> StudySummaryView | None:
    header = views.study_header(study_id)
    if header is None:
        return None
    runs = views.study_runs(study_id)
    by_run: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in views.study_epoch_metrics(study_id):
        by_run[row["run_id"]].append(row)
    all_epochs = sorted({row["epoch"] for rows in by_run.values() for row in rows})
    shown = pick_epochs(all_epochs, max_points)
    spec = StudySpec.model_validate(header["spec"])
    spec_activation = spec.model.activation
    groups, tables, series_out, paired = [], [], [], []
    for group in _groups(spec, runs):
        verdicts = [run_verdict(by_run[run["id"]]) for run in group["runs"]]
        cell = spec.cell_label(group["activation"], group["depth"], group["bias_variance"])
        paired.append({"key": group["key"], "initializer": group["initializer"], "cell": cell,
                       "choice": initializer_key(group["initializer"], group["params"]),
                       "activation": group["activation"] or spec_activation, "runs": [
            {"seed": run["seed"], "status": run["status"], "diverged": verdict["diverged"], "rows": by_run[run["id"]],
             "final": verdict["final_val_accuracy"], "best": verdict["best_val_accuracy"]}
            for run, verdict in zip(group["runs"], verdicts)]})
        tables.append(group_verdict(verdicts, [run["status"] for run in group["runs"]],
                                    [run["seed"] for run in group["runs"]]))
        per_metric = {m: [{row["epoch"]: row[m] for row in by_run[run["id"]]} for run in group["runs"]] for m in METRICS}
        groups.append({
            "key": group["key"], "initializer": group["initializer"], "params": group["params"],
            "activation": group["activation"] or spec_activation, "depth": group["depth"] or spec.hidden_layers(),
            "hidden_layers": spec.hidden_layers(group["depth"]),
            "label": _label(spec, group["initializer"], group["params"], group["activation"], group["depth"],
                            group["bias_variance"]), "cell": cell,
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
    leaders = mark_leaders(tables, [group["cell"] for group in groups])
    statistics, stats = None, [None] * len(groups)
    if with_stats:
        found = study_statistics(paired, spec.model.activation, baseline, threshold)
        stats = [GroupStatistics(**{k: v for k, v in g.items() if k != "key"}) for g in found.pop("groups")]
        statistics = StudyStatistics(**found)
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        counts[run["status"]] += 1
    return StudySummaryView(
        study_id=study_id, name=header["name"], status=study_status(dict(counts)), created_at=header["created_at"],
        planned_epochs=spec.planned_epochs, seeds=list(spec.seeds),
        groups=[Group(**g, table=GroupTable(**{k: v for k, v in t.items() if k != "counted"}, leader=i in leaders),
                      stats=s)
                for i, (g, t, s) in enumerate(zip(groups, tables, stats))],
        runs=series_out if with_runs else None, downsampled=len(shown) < len(all_epochs), statistics=statistics,
    )


def gradient_view(study_id: int, max_points: int = 200) -> GradientView | None:
    """Per layer and initializer: the probe gradient's L2 norm over epochs, aggregated over seeds (kept
    until the study's data change)."""
    return MEMO.answer(study_id, "gradients", (max_points,), lambda: _gradient_view(study_id, max_points))


def _gradient_view(study_id: int, max_points: int) -> GradientView | None:
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
    spec = StudySpec.model_validate(header["spec"])
    for group in _groups(spec, runs):
        bands = {layer: _band([aggregates[run["id"]].norms.get(layer, {}) for run in group["runs"]], shown)
                 for layer in layers}
        label = _label(spec, group["initializer"], group["params"], group["activation"], group["depth"],
                       group["bias_variance"])
        groups.append(GradientGroup(key=group["key"], label=label, layers=bands))
    ordered = sorted(layers.items(), key=lambda item: item[1])
    return GradientView(study_id=study_id, epochs=shown, layers=[LayerRef(layer=n, index=i) for n, i in ordered],
                        groups=groups, downsampled=len(shown) < len(all_epochs))
