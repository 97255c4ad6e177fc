"""The initializer registry: every scheme initlab can apply, with its formula, source and rules.

One list, read by the API's validation, the form (GET /api/initializers), the docs and the
theory overlay, and turned into ``keras.initializers`` objects by the worker
(worker/training/initializers.py). Each entry says what it draws as a *recipe*: the name of
a Keras initializer class and its arguments (``VarianceScaling`` with scale, mode and
distribution for the fan-based rules, as Keras's own Glorot/He/LeCun subclasses do), so the
worker draws with Keras itself, the seed making a run repeatable bit for bit, and the
domain's theory (app/domain/theory.py) reads the distribution off the same recipe. Nothing
here imports TensorFlow or Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from app.domain import custom
from app.domain.param_rules import NUMBER, POSITIVE, ParamError, Rule, check_combination, check_value

# Most parameters are numbers; the custom initializer's distribution and mode are words,
# and its clip_sigma may be null.
ParamValue = float | str | None
Params = dict[str, ParamValue]
# (Keras initializer class, its arguments); "Custom" is the declarative custom initializer.
Recipe = tuple[str, dict[str, Any]]
CUSTOM = "Custom"
# Not a Keras class: the worker builds it from Keras's Orthogonal (worker/training/initializers.py).
DELTA_ORTHOGONAL = "DeltaOrthogonal"
# LSUV's rule (Mishkin & Matas 2015): rescale on this many training samples until the
# pre-activation variance is 1 within the tolerance, at most this many times.
LSUV_BATCH = 256
LSUV_TOLERANCE = 0.1
LSUV_ITERATIONS = 10


@dataclass(frozen=True)
class InitializerEntry:
    id: str
    name: str
    formula: str
    reference: str
    params: Params  # defaults
    recipe: Callable[[Params], Recipe] = field(repr=False)
    # Orthogonal needs a matrix; a bias vector has none, so it is offered for kernels only.
    kernel_only: bool = False
    # Checks on merged params that no single parameter's rule can express.
    check: Callable[[Params], str | None] | None = field(default=None, repr=False)
    # Rules per parameter; a parameter without one is any finite number.
    rules: dict[str, Rule] = field(default_factory=dict)
    # LSUV: the recipe gives the starting weights, and the worker then rescales each such
    # layer on a batch of the run's data (worker/training/lsuv.py) before epoch 0.
    rescale_on_data: bool = False
    label: Callable[[Params], str] | None = field(default=None, repr=False)

    def rule(self, name: str) -> Rule:
        return self.rules.get(name, NUMBER)


def _variance_scaling(scale: float, mode: str, distribution: str) -> Callable[[Params], Recipe]:
    return lambda params: ("VarianceScaling", {"scale": scale, "mode": mode, "distribution": distribution})


def _constant(value: float | None = None) -> Callable[[Params], Recipe]:
    return lambda params: ("Constant", {"value": float(params["value"] if value is None else value)})


def _random_uniform(minval: float | None = None, maxval: float | None = None) -> Callable[[Params], Recipe]:
    return lambda params: ("RandomUniform", {"minval": params["minval"] if minval is None else minval,
                                             "maxval": params["maxval"] if maxval is None else maxval})


def _random_normal(params: Params) -> Recipe:
    return "RandomNormal", {"mean": params["mean"], "stddev": params["stddev"]}


def _truncated_normal(params: Params) -> Recipe:
    return "TruncatedNormal", {"mean": params["mean"], "stddev": params["stddev"]}


def _orthogonal(gain: float | None = None) -> Callable[[Params], Recipe]:
    return lambda params: ("Orthogonal", {"gain": float(params["gain"] if gain is None else gain)})


def _delta_orthogonal(params: Params) -> Recipe:
    return DELTA_ORTHOGONAL, {"gain": float(params["gain"])}


def _custom(params: Params) -> Recipe:
    return CUSTOM, dict(params)


def _require_interval(params: Params) -> str | None:
    if params["minval"] >= params["maxval"]:
        return f"minval ({params['minval']}) must be below maxval ({params['maxval']})"
    return None


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
        {"mean": 0.0, "stddev": 0.05}, _random_normal, rules={"stddev": POSITIVE},
    ),
    InitializerEntry(
        "truncated_normal", "Truncated normal",
        "W ~ N(mean, stddev²) with draws beyond mean ± 2·stddev redrawn (std ≈ 0.88·stddev)",
        "Keras TruncatedNormal; seed 001 exercise (normal clipped at 2σ)",
        {"mean": 0.0, "stddev": 0.05}, _truncated_normal, rules={"stddev": POSITIVE},
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
        "Glorot & Bengio 2010", {}, _variance_scaling(1.0, "fan_avg", "uniform"),
    ),
    InitializerEntry(
        "glorot_normal", "Glorot (Xavier) normal",
        f"W with std σ = √(2/(fan_in+fan_out)), {_TRUNCATED}",
        "Glorot & Bengio 2010", {}, _variance_scaling(1.0, "fan_avg", "truncated_normal"),
    ),
    InitializerEntry(
        "he_uniform", "He uniform", "W ~ U[−√(6/fan_in), +√(6/fan_in)]",
        "He et al. 2015", {}, _variance_scaling(2.0, "fan_in", "uniform"),
    ),
    InitializerEntry(
        "he_normal", "He normal", f"W with std σ = √(2/fan_in), {_TRUNCATED}",
        "He et al. 2015", {}, _variance_scaling(2.0, "fan_in", "truncated_normal"),
    ),
    InitializerEntry(
        "he_normal_untruncated", "He normal (untruncated)",
        "W = randn(fan_in, fan_out) · √(2/fan_in), i.e. W ~ N(0, 2/fan_in)",
        "seed 002 (numpy recipe); He et al. 2015",
        {}, _variance_scaling(2.0, "fan_in", "untruncated_normal"),
    ),
    InitializerEntry(
        "lecun_uniform", "LeCun uniform", "W ~ U[−√(3/fan_in), +√(3/fan_in)]",
        "LeCun et al. 1998 (Efficient BackProp)", {}, _variance_scaling(1.0, "fan_in", "uniform"),
    ),
    InitializerEntry(
        "lecun_normal", "LeCun normal", f"W with std σ = √(1/fan_in), {_TRUNCATED}",
        "LeCun et al. 1998; Klambauer et al. 2017 (SELU)", {}, _variance_scaling(1.0, "fan_in", "truncated_normal"),
    ),
    InitializerEntry(
        "orthogonal", "Orthogonal",
        "W = gain · Q, Q the orthonormal factor of the QR decomposition of a standard "
        "normal matrix (WᵀW = gain²·I when fan_in ≥ fan_out)",
        "Saxe et al. 2014", {"gain": 1.0}, _orthogonal(),
        kernel_only=True, rules={"gain": POSITIVE},
    ),
    InitializerEntry(
        "delta_orthogonal", "Delta-orthogonal",
        "A convolution kernel (kh, kw, c_in, c_out) that is gain · Q at its centre tap and 0 at every other "
        "tap, Q a c_in × c_out orthogonal matrix as orthogonal draws it; a Dense kernel is orthogonal itself",
        "Xiao et al. 2018 (Dynamical isometry and a mean field theory of CNNs)", {"gain": 1.0},
        _delta_orthogonal, kernel_only=True, rules={"gain": POSITIVE},
    ),
    InitializerEntry(
        "keras_default", "Keras default (glorot_uniform)",
        f"What keras.layers.Dense uses when no initializer is named (Keras 3: glorot_uniform): "
        f"W ~ U[−{_GLOROT_LIMIT}, +{_GLOROT_LIMIT}]",
        "seed 000 (tf.keras default); Glorot & Bengio 2010", {}, _variance_scaling(1.0, "fan_avg", "uniform"),
    ),
    InitializerEntry(
        "lsuv", "LSUV (layer-sequential unit variance)",
        "W = orthogonal (gain 1), then layer by layer from the input: W ← W/√Var(x·W + b), the variance "
        f"of the pre-activations on {LSUV_BATCH} training samples, until |Var − 1| < {LSUV_TOLERANCE:g} "
        f"(at most {LSUV_ITERATIONS} rescalings)",
        "Mishkin & Matas 2015, All you need is a good init (cited in seed 000)",
        {}, _orthogonal(1.0), kernel_only=True, rescale_on_data=True,
    ),
    InitializerEntry(
        "custom", "Custom", custom.FORMULA, custom.REFERENCE,
        dict(custom.DEFAULTS), _custom, rules=custom.RULES, label=custom.label,
    ),
]

REGISTRY: dict[str, InitializerEntry] = {entry.id: entry for entry in _ENTRIES}


def _entry(init_id: str) -> InitializerEntry:
    if init_id not in REGISTRY:
        raise KeyError(f"unknown initializer '{init_id}' (known: {', '.join(REGISTRY)})")
    return REGISTRY[init_id]


def normalize_params(init_id: str, params: dict[str, Any] | None) -> Params:
    """The given params, each checked against its rule and normalized; the defaults are not added.

    What the API stores for a study, so two ways of writing one value (1 and 1.0) are one.
    Raises ParamError (a ValueError) naming the parameter.
    """
    return _validated(init_id, params)[0]


def resolve_params(init_id: str, params: dict[str, Any] | None) -> Params:
    """Merge user params over the defaults and validate them, without importing Keras.

    The API calls this to reject a study before anything is queued, so a bad parameter
    is reported to the user at once rather than failing a run on the worker later.
    Raises ParamError (a ValueError); its ``param`` names the parameter when one is to blame.
    """
    return _validated(init_id, params)[1]


def _validated(init_id: str, params: dict[str, Any] | None) -> tuple[Params, Params]:
    entry = _entry(init_id)
    given = dict(params or {})
    unknown = sorted(set(given) - set(entry.params))
    if unknown:
        allowed = ", ".join(sorted(entry.params)) or "none"
        raise ParamError(
            f"initializer '{init_id}' has no parameter(s) {', '.join(unknown)} (allowed: {allowed})"
        )
    given = {name: check_value(init_id, name, value, entry.rule(name)) for name, value in given.items()}
    merged = {**entry.params, **given}
    check_combination(init_id, merged, entry.rules)
    if entry.check is not None:
        problem = entry.check(merged)
        if problem:
            raise ParamError(f"initializer '{init_id}': {problem}")
    return given, merged


def recipe_of(init_id: str, params: dict[str, Any] | None) -> Recipe:
    """What ``init_id`` with ``params`` draws: (Keras initializer class, arguments); the worker builds it."""
    return _entry(init_id).recipe(resolve_params(init_id, params))


def format_param(value: Any) -> str:
    """A parameter value in labels, group keys and file names: numbers as %g, words and nulls as written."""
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def label(init_id: str, params: dict[str, Any] | None) -> str:
    """What charts and lists call a choice: "He normal", "Random normal (stddev=0.01)",
    "custom: truncated normal, fan_in, scale 1, clip 2σ"."""
    entry = REGISTRY.get(init_id)
    if entry is None:
        return init_id
    if entry.label is not None:
        return entry.label(dict(params or {}))
    shown = ", ".join(f"{name}={format_param(value)}" for name, value in sorted((params or {}).items()))
    return f"{entry.name} ({shown})" if shown else entry.name


def catalog() -> list[dict]:
    """What GET /api/initializers serves: plain JSON-able dicts, in a stable order."""
    return [
        {
            "id": entry.id,
            "name": entry.name,
            "formula": entry.formula,
            "params": dict(entry.params),
            "rules": {name: dict(entry.rule(name)) for name in entry.params},
            "reference": entry.reference,
            "kernel_only": entry.kernel_only,
            "needs_data": entry.rescale_on_data,
        }
        for entry in _ENTRIES
    ]
