"""Rules for initializer parameters, declared as data so that the form can check them too.

A rule is a small JSON-schema dict (``frontend/static/form_rules.js`` reads the same dicts
from GET /api/initializers): ``type`` "number" | "string", ``enum``, ``exclusiveMinimum``,
``minimum``, ``maximum`` (a number without bounds of its own stays within ±``MAX_MAGNITUDE``),
``nullable``, and ``only_with`` {other parameter: [values]}, meaning the value must stay
null unless the other parameter holds one of those values. Every failure is a
``ParamError`` that names the parameter, so the API's 422 can point at
``initializers.0.params.distribution`` rather than at the whole initializer.
"""

from __future__ import annotations

import math
from typing import Any

Rule = dict[str, Any]
# Every number a rule accepts is one the worker can train with. A parameter becomes float32
# weights (a constant, a mean, a stddev, a gain, a range maxval - minval, the custom scale's
# sigma = sqrt(scale / n)), so it must be far inside float32's range (3.4e38): a constant of
# 3.5e38 is inf in float32 and the run failed in training, and a custom uniform of scale 1e300
# overflowed the same way. Within +-1e6 every weight a rule can draw stays below about 1e7
# (a normal draw's tail in float32 reaches ~7 sigma), so every tensor, its sum of squares
# (16.8 M weights x (7e6)^2 ~ 8e20) and its recorded statistics are finite at epoch 0, and a
# run that is too large only diverges (NaN loss, a result) instead of failing. Measured on the
# real training path: constant 1e6, random_normal(mean=1e6, stddev=1e6), orthogonal(gain=1e6)
# with a constant -1e6 bias all trained (losses up to 7e21); nothing larger teaches more.
# A rule without bounds of its own gets these (the custom initializer's scale, say).
MAX_MAGNITUDE = 1e6
NUMBER: Rule = {"type": "number", "minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE}
POSITIVE: Rule = {"type": "number", "exclusiveMinimum": 0.0, "maximum": MAX_MAGNITUDE}


class ParamError(ValueError):
    """A bad initializer parameter. ``param`` names it; None when only the combination is wrong."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def check_value(init_id: str, name: str, value: Any, rule: Rule) -> float | str | None:
    """The value, normalized (numbers as float), or ParamError naming the parameter and its rule."""
    where = f"parameter '{name}' of '{init_id}'"
    if value is None:
        if rule.get("nullable"):
            return None
        raise ParamError(f"{where} must be a {rule['type']}, got null", name)
    if rule["type"] == "string":
        if not isinstance(value, str):
            raise ParamError(f"{where} must be a string, got {value!r}", name)
        if "enum" in rule and value not in rule["enum"]:
            raise ParamError(f"{where} must be one of {', '.join(rule['enum'])}; got {value!r}", name)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"{where} must be a number, got {value!r}", name)
    if not math.isfinite(value):
        raise ParamError(f"{where} must be finite, got {value}", name)
    low, high = rule.get("exclusiveMinimum"), rule.get("maximum", MAX_MAGNITUDE)
    floor = rule.get("minimum", -MAX_MAGNITUDE)
    if low is not None and value <= low:
        must = "positive (> 0)" if low == 0 else f"greater than {low:g}"
        raise ParamError(f"{where} must be {must}, got {value}", name)
    why = " (a bound that keeps float32 weights finite in training)" if MAX_MAGNITUDE in (high, -floor) else ""
    if value > high:
        raise ParamError(f"{where} must be at most {high:g}{why}, got {value:g}", name)
    if value < floor:
        raise ParamError(f"{where} must be at least {floor:g}{why}, got {value:g}", name)
    return float(value)


def check_combination(init_id: str, merged: dict[str, Any], rules: dict[str, Rule]) -> None:
    """The ``only_with`` rules, on the parameters merged over their defaults."""
    for name, rule in rules.items():
        for other, allowed in rule.get("only_with", {}).items():
            if merged.get(name) is not None and merged.get(other) not in allowed:
                raise ParamError(
                    f"parameter '{name}' of '{init_id}' applies only when {other} is {' or '.join(allowed)} "
                    f"(leave it null when {other} is {merged.get(other)})", name,
                )
