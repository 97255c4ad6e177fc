"""The study page's theory check: per layer, each run's epoch-0 tensor against its initializer's promise.

Pure assembly over rows the storage layer returns (app/storage/views.py), the study's spec
(which initializer draws each layer, and its shape) and the closed-form distributions of
app/domain/theory.py; the route in app/api/routes/theory.py is one call.
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import lru_cache
from typing import Any

from app.domain.layers import fans
from app.domain.spec import InitializerRef, StudySpec
from app.domain.theory import Theory, density_on, ks_from_quantiles, mismatch_threshold, theory_for


@lru_cache(maxsize=512)
def _theory(init_id: str, params: tuple, shape: tuple[int, ...]) -> Theory | None:
    return theory_for(init_id, dict(params), shape)


def _shapes(spec: StudySpec, depth: int | None, kind: str, recorded: set[str]) -> dict[str, tuple[int, ...]]:
    """Kernel shape of each layer of one run's network that has a ``kind`` tensor, input to output.

    Every weighted layer has a kernel; a hidden layer followed by BatchNorm has no bias (the
    worker builds it without one, app/domain/architecture.py), so its bias is left out unless
    the run recorded one (rows written by an older worker): the view lists the tensors there are.
    """
    return {layer.name: layer.kernel_shape for layer in spec.architecture(depth).weighted()
            if kind == "kernel" or layer.bias or layer.name in recorded}


def theory_report(spec: StudySpec, runs: list[dict[str, Any]], tensors: list[dict[str, Any]],
                  kind: str) -> dict[str, Any]:
    """Per layer: every run's KS statistic and verdict, and one density curve per scheme."""
    by_run = {run["id"]: run for run in runs}
    stored = {(row["run_id"], row["layer"]): row for row in tensors}
    layers = []
    mismatches = 0
    recorded: dict[int, set[str]] = defaultdict(set)
    for run_id, name in stored:
        recorded[run_id].add(name)
    shapes_of = {run_id: _shapes(spec, run.get("depth"), kind, recorded[run_id]) for run_id, run in by_run.items()}
    deepest = max(by_run.values(), key=lambda run: run.get("depth") or 0, default={})
    for name, _ in spec.kernel_shapes(deepest.get("depth")):
        if not any(name in shapes for shapes in shapes_of.values()):
            continue  # no run has this tensor: the bias of a layer followed by BatchNorm
        rows, curves = [], {}
        shape, size = (0,), 0
        for run_id, run in by_run.items():
            if name not in shapes_of[run_id]:
                continue  # a shallower run of a grid study has no such layer (or no such bias)
            kernel = shapes_of[run_id][name]
            shape = kernel if kind == "kernel" else kernel[-1:]  # a conv kernel keeps its rank: Keras's fans
            size = math.prod(shape)
            drawn = InitializerRef(id=run["initializer"], params=run["initializer_params"] or {})
            scheme = spec.scheme(drawn, name, kind, run.get("bias_variance"), run.get("depth"))
            init_id, params = scheme.id, dict(scheme.params)
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
        fan_in, fan_out = fans(shape)
        layers.append({"layer": name, "fan_in": int(fan_in), "fan_out": int(fan_out),
                       "size": size, "runs": rows, "curves": list(curves.values())})
    return {"kind": kind, "epoch": 0, "layers": layers, "mismatches": mismatches}
