"""Numbers on the wire: NaN and ±Infinity are results (a diverged loss, an exploding
network's variance) and travel as the strings "NaN", "Infinity", "-Infinity", as in every
API answer, where strict JSON (and PostgreSQL's json type) has no token for them."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float spelled as JSON APIs spell it; the rest unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value
