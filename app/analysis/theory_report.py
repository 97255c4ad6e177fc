"""The study page's theory check: per layer, each run's epoch-0 tensor against its initializer's promise.

Pure assembly over rows the storage layer returns (app/storage/views.py) and the
distributions of app/analysis/theory.py; the route in app/api/theory.py is one call.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from app.analysis.theory import Theory, density_on, ks_from_quantiles, mismatch_threshold, theory_for

# Each hidden Dense layer: kernel (fan_in, units) from the run's initializer, bias (units,)
# from the study's bias initializer; the output layer's kernel from model.output_initializer
# when the study names one.


def layer_shapes(spec: dict[str, Any], depth: int | None = None) -> list[tuple[str, int, int]]:
    """(name, fan_in, units) of every Dense layer of the model, input to output.

    ``depth``: a grid study's run with that many hidden layers, each as wide as the first.
    """
    from worker.training.datasets import DATASETS
    from worker.training.model import dense_layer_names

    info = DATASETS[spec["dataset"]["name"]]
    hidden = list(spec["model"]["hidden_units"])
    if depth:
        hidden = [hidden[0]] * depth
    widths = [info.input_dim, *hidden, info.num_classes]
    return [(name, widths[index], widths[index + 1]) for index, name in enumerate(dense_layer_names(len(hidden)))]


def _ref(value: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(value, str):
        return value, {}
    return value["id"], dict(value.get("params") or {})


def scheme_of(spec: dict[str, Any], run: dict[str, Any], layer: str, kind: str) -> tuple[str, dict[str, Any]]:
    """Which initializer (id, params) drew this run's ``kind`` tensor of ``layer``."""
    if kind == "bias":
        return _ref(spec.get("bias_initializer") or "zeros")
    output = spec["model"].get("output_initializer")
    if layer == "output" and output:
        return _ref(output)
    return run["initializer"], dict(run["initializer_params"] or {})


@lru_cache(maxsize=512)
def _theory(init_id: str, params: tuple, shape: tuple[int, ...]) -> Theory | None:
    return theory_for(init_id, dict(params), shape)


def theory_report(spec: dict[str, Any], runs: list[dict[str, Any]], tensors: list[dict[str, Any]],
                  kind: str) -> dict[str, Any]:
    """Per layer: every run's KS statistic and verdict, and one density curve per scheme."""
    by_run = {run["id"]: run for run in runs}
    stored = {(row["run_id"], row["layer"]): row for row in tensors}
    layers = []
    mismatches = 0
    shapes_of = {run_id: {name: (fan_in, units) for name, fan_in, units in layer_shapes(spec, run.get("depth"))}
                 for run_id, run in by_run.items()}
    deepest = max(by_run.values(), key=lambda run: run.get("depth") or 0, default={})
    for name, _, _ in layer_shapes(spec, deepest.get("depth")):
        rows, curves = [], {}
        fan_in = units = size = 0
        for run_id, run in by_run.items():
            if name not in shapes_of[run_id]:
                continue  # a shallower run of a grid study has no such layer
            fan_in, units = shapes_of[run_id][name]
            shape = (fan_in, units) if kind == "kernel" else (units,)
            size = math.prod(shape)
            init_id, params = scheme_of(spec, run, name, kind)
            theory = _theory(init_id, tuple(sorted(params.items())), shape)
            row = stored.get((run_id, name))
            quantiles = row["quantiles"] if row else None
            ks = ks_from_quantiles(quantiles, theory) if theory and quantiles else None
            threshold = mismatch_threshold(size, len(quantiles)) if quantiles else None
            mismatch = None if ks is None else ks > threshold
            mismatches += bool(mismatch)
            rows.append({"run_id": run_id, "initializer": init_id, "theory": theory.label if theory else None,
                         "approximate": bool(theory and theory.approximate), "ks": ks, "threshold": threshold,
                         "mismatch": mismatch})
            key = (init_id, tuple(sorted(params.items())))
            curve = curves.setdefault(key, {"initializer": init_id, "params": params, "run_ids": [],
                                            "label": theory.label if theory else None, "point": None,
                                            "x": [], "y": [], "_theory": theory, "_span": []})
            curve["run_ids"].append(run_id)
            if quantiles:
                curve["_span"] += [quantiles[0], quantiles[-1]]
        for curve in curves.values():
            theory = curve.pop("_theory")
            span = curve.pop("_span")
            if theory is None:
                continue
            if theory.point is not None:
                curve["point"] = theory.point
                continue
            low, high = theory.dist.ppf([0.0005, 0.9995])
            if span:
                low, high = min(low, min(span)), max(high, max(span))
            density = density_on(theory, float(low), float(high))
            if density:
                curve.update(density)
        layers.append({"layer": name, "fan_in": fan_in if kind == "kernel" else units, "fan_out": units,
                       "size": size, "runs": rows, "curves": list(curves.values())})
    return {"kind": kind, "epoch": 0, "layers": layers, "mismatches": mismatches}
