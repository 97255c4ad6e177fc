"""The initializer registry: every scheme initlab can apply, with its formula and source.

The API imports this module to validate study requests and to serve the catalog, so it
must stay free of TensorFlow: each builder imports ``keras`` only when a worker actually
builds a layer. Every scheme is a seeded ``keras.initializers`` object, because the point
of the lab is that a run can be repeated bit for bit, and because Keras already gets the
subtle parts right (fans, the truncated normal's variance correction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

Builder = Callable[[dict[str, float], "int | None"], Any]


@dataclass(frozen=True)
class InitializerEntry:
    id: str
    name: str
    formula: str
    reference: str
    params: dict[str, float]
    builder: Builder
    # Orthogonal needs a matrix; a bias vector has none, so it is offered for kernels only.
    kernel_only: bool = False
    # Checks on merged params that a plain "is it a number" test cannot express.
    check: Callable[[dict[str, float]], str | None] | None = field(default=None, repr=False)


def _keras_initializers():
    import keras

    return keras.initializers


def _variance_scaling(scale: float, mode: str, distribution: str) -> Builder:
    def build(params: dict[str, float], seed: int | None):
        return _keras_initializers().VarianceScaling(
            scale=scale, mode=mode, distribution=distribution, seed=seed
        )

    return build


def _named(class_name: str) -> Builder:
    def build(params: dict[str, float], seed: int | None):
        return getattr(_keras_initializers(), class_name)(seed=seed)

    return build


def _constant(value: float | None = None) -> Builder:
    def build(params: dict[str, float], seed: int | None):
        return _keras_initializers().Constant(value if value is not None else params["value"])

    return build


def _random_uniform(minval: float | None = None, maxval: float | None = None) -> Builder:
    def build(params: dict[str, float], seed: int | None):
        low = minval if minval is not None else params["minval"]
        high = maxval if maxval is not None else params["maxval"]
        return _keras_initializers().RandomUniform(minval=low, maxval=high, seed=seed)

    return build


def _random_normal(params: dict[str, float], seed: int | None):
    return _keras_initializers().RandomNormal(
        mean=params["mean"], stddev=params["stddev"], seed=seed
    )


def _truncated_normal(params: dict[str, float], seed: int | None):
    return _keras_initializers().TruncatedNormal(
        mean=params["mean"], stddev=params["stddev"], seed=seed
    )


def _orthogonal(params: dict[str, float], seed: int | None):
    return _keras_initializers().Orthogonal(gain=params["gain"], seed=seed)


def _require_interval(params: dict[str, float]) -> str | None:
    if params["minval"] >= params["maxval"]:
        return f"minval ({params['minval']}) must be below maxval ({params['maxval']})"
    return None


def _require_positive(name: str) -> Callable[[dict[str, float]], str | None]:
    def check(params: dict[str, float]) -> str | None:
        return None if params[name] > 0 else f"{name} must be positive, got {params[name]}"

    return check


_GLOROT_LIMIT = "√(6/(fan_in+fan_out))"
_TRUNCATED = "drawn from a normal truncated at ±2σ₀, σ₀ = σ/0.8796 so the kept values have std σ"

_ENTRIES = [
    InitializerEntry(
        "zeros", "Zeros", "W = 0",
        "seed 000; seed 001 (tf.keras.initializers.Zeros)", {}, _constant(0.0),
    ),
    InitializerEntry(
        "ones", "Ones", "W = 1",
        "seed 000; seed 001 (tf.keras.initializers.Ones)", {}, _constant(1.0),
    ),
    InitializerEntry(
        "constant", "Constant", "W = value",
        "Keras Constant; 0.1 is the small positive bias of TensorFlow's classic MNIST tutorial",
        {"value": 0.1}, _constant(),
    ),
    InitializerEntry(
        "uniform_0_1", "Uniform [0, 1]", "W ~ U[0, 1]",
        "seed 000 (RandomUniform(minval=0, maxval=1))", {}, _random_uniform(0.0, 1.0),
    ),
    InitializerEntry(
        "random_uniform", "Random uniform", "W ~ U[minval, maxval]",
        "seed 001 (RandomUniform, Keras defaults ±0.05)",
        {"minval": -0.05, "maxval": 0.05}, _random_uniform(), check=_require_interval,
    ),
    InitializerEntry(
        "random_normal", "Random normal", "W ~ N(mean, stddev²)",
        "seed 001 (RandomNormal, Keras defaults mean 0, stddev 0.05)",
        {"mean": 0.0, "stddev": 0.05}, _random_normal, check=_require_positive("stddev"),
    ),
    InitializerEntry(
        "truncated_normal", "Truncated normal",
        "W ~ N(mean, stddev²) with draws beyond mean ± 2·stddev redrawn (std ≈ 0.88·stddev)",
        "Keras TruncatedNormal; seed 001 exercise (normal clipped at 2σ)",
        {"mean": 0.0, "stddev": 0.05}, _truncated_normal, check=_require_positive("stddev"),
    ),
    InitializerEntry(
        "uniform_fan_in", "Uniform ±1/√fan_in", "W ~ U[−1/√fan_in, +1/√fan_in]",
        "seed 000 (Udacity rule, uniform); VarianceScaling(1/3, fan_in, uniform)",
        {}, _variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
    ),
    InitializerEntry(
        "normal_fan_in", "Normal σ = 1/√fan_in", "W ~ N(0, 1/fan_in)",
        "seed 000 (Udacity rule, normal); seed 002 (1/√n scaling)",
        {}, _variance_scaling(1.0, "fan_in", "untruncated_normal"),
    ),
    InitializerEntry(
        "glorot_uniform", "Glorot (Xavier) uniform",
        f"W ~ U[−{_GLOROT_LIMIT}, +{_GLOROT_LIMIT}]",
        "Glorot & Bengio 2010", {}, _named("GlorotUniform"),
    ),
    InitializerEntry(
        "glorot_normal", "Glorot (Xavier) normal",
        f"W with std σ = √(2/(fan_in+fan_out)), {_TRUNCATED}",
        "Glorot & Bengio 2010", {}, _named("GlorotNormal"),
    ),
    InitializerEntry(
        "he_uniform", "He uniform", "W ~ U[−√(6/fan_in), +√(6/fan_in)]",
        "He et al. 2015", {}, _named("HeUniform"),
    ),
    InitializerEntry(
        "he_normal", "He normal", f"W with std σ = √(2/fan_in), {_TRUNCATED}",
        "He et al. 2015", {}, _named("HeNormal"),
    ),
    InitializerEntry(
        "he_normal_untruncated", "He normal (untruncated)",
        "W = randn(fan_in, fan_out) · √(2/fan_in), i.e. W ~ N(0, 2/fan_in)",
        "seed 002 (numpy recipe); He et al. 2015",
        {}, _variance_scaling(2.0, "fan_in", "untruncated_normal"),
    ),
    InitializerEntry(
        "lecun_uniform", "LeCun uniform", "W ~ U[−√(3/fan_in), +√(3/fan_in)]",
        "LeCun et al. 1998 (Efficient BackProp)", {}, _named("LecunUniform"),
    ),
    InitializerEntry(
        "lecun_normal", "LeCun normal", f"W with std σ = √(1/fan_in), {_TRUNCATED}",
        "LeCun et al. 1998; Klambauer et al. 2017 (SELU)", {}, _named("LecunNormal"),
    ),
    InitializerEntry(
        "orthogonal", "Orthogonal",
        "W = gain · Q, Q the orthonormal factor of the QR decomposition of a standard "
        "normal matrix (WᵀW = gain²·I when fan_in ≥ fan_out)",
        "Saxe et al. 2014", {"gain": 1.0}, _orthogonal,
        kernel_only=True, check=_require_positive("gain"),
    ),
    InitializerEntry(
        "keras_default", "Keras default (glorot_uniform)",
        f"What keras.layers.Dense uses when no initializer is named (Keras 3: glorot_uniform): "
        f"W ~ U[−{_GLOROT_LIMIT}, +{_GLOROT_LIMIT}]",
        "seed 000 (tf.keras default); Glorot & Bengio 2010", {}, _named("GlorotUniform"),
    ),
]

REGISTRY: dict[str, InitializerEntry] = {entry.id: entry for entry in _ENTRIES}


def _entry(init_id: str) -> InitializerEntry:
    if init_id not in REGISTRY:
        raise KeyError(f"unknown initializer '{init_id}' (known: {', '.join(REGISTRY)})")
    return REGISTRY[init_id]


def resolve_params(init_id: str, params: dict[str, float] | None) -> dict[str, float]:
    """Merge user params over the defaults and validate them, without importing Keras.

    The API calls this to reject a study before anything is queued, so a bad parameter
    is reported to the user at once rather than failing a run on the worker later.
    """
    entry = _entry(init_id)
    given = dict(params or {})
    unknown = sorted(set(given) - set(entry.params))
    if unknown:
        allowed = ", ".join(sorted(entry.params)) or "none"
        raise ValueError(
            f"initializer '{init_id}' has no parameter(s) {', '.join(unknown)} "
            f"(allowed: {allowed})"
        )
    merged = dict(entry.params)
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter '{name}' of '{init_id}' must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"parameter '{name}' of '{init_id}' must be finite, got {value}")
        merged[name] = float(value)
    if entry.check is not None:
        problem = entry.check(merged)
        if problem:
            raise ValueError(f"initializer '{init_id}': {problem}")
    return merged


def build_initializer(init_id: str, params: dict[str, float] | None, seed: int | None):
    """A seeded Keras initializer. KeyError on an unknown id, ValueError on a bad param."""
    return _entry(init_id).builder(resolve_params(init_id, params), seed)


def catalog() -> list[dict]:
    """What GET /api/initializers serves: plain JSON-able dicts, in a stable order."""
    return [
        {
            "id": entry.id,
            "name": entry.name,
            "formula": entry.formula,
            "params": dict(entry.params),
            "reference": entry.reference,
            "kernel_only": entry.kernel_only,
        }
        for entry in _ENTRIES
    ]
