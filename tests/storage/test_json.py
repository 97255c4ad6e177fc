"""The JSON columns' decoder: orjson for speed, Python's json where orjson refuses a bare NaN."""

from __future__ import annotations

import math

from app.storage.db import _json_loads


def test_plain_arrays_and_nan_both_decode():
    assert _json_loads("[0.5, -1e-30, 3]") == [0.5, -1e-30, 3]
    assert _json_loads(b'{"edges": [0.0, 1.0]}') == {"edges": [0.0, 1.0]}
    low, nan, inf = _json_loads("[-1.5, NaN, Infinity]")  # what json.dumps writes for non-finite floats
    assert low == -1.5 and math.isnan(nan) and inf == math.inf
