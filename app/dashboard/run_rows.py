"""One run's recorded tensors of one layer, kept between requests and read only where new.

The heatmap and the percentile bands of a run redraw at every new epoch of a training study,
and each redraw used to read (and re-bin) every epoch's JSON histogram again: the slowest page
request under load (issue 11). An attempt's recorded epochs never change once written, so
they are kept per (run attempt, kind, layer) and only later epochs are read; the re-binned
rows are kept per shared edges, and recomputed only when the edges move. A run is told
apart by (database, id, created_at, attempts, started_at), as app/dashboard/cache.py does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.settings import get_settings
from app.storage import views


@dataclass
class _Entry:
    rows: list[dict[str, Any]] = field(default_factory=list)
    derived: dict[Any, list[Any]] = field(default_factory=dict)  # a derivation's key -> one value per row


class RunRows:
    def __init__(self, max_entries: int = 128):
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def derived(self, run: dict[str, Any], kind: str, layer: str, key: Any,
                derive: Callable[[list[dict[str, Any]]], list[Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
        """The rows, and ``derive(rows)`` (one value per row) for each, deriving only rows not derived
        under ``key`` yet; another key (new shared edges) starts again from the first row."""
        entry, rows = self._entry(run, kind, layer)
        with self._lock:
            done = list(entry.derived.get(key, []))
        if len(done) < len(rows):
            done += derive(rows[len(done):])
            with self._lock:
                entry.derived[key] = done
                for stale in [other for other in entry.derived if other != key and other[0] == key[0]]:
                    del entry.derived[stale]  # the same derivation on edges that have moved on
        return rows, done[:len(rows)]

    def _entry(self, run: dict[str, Any], kind: str, layer: str) -> tuple[_Entry, list[dict[str, Any]]]:
        key = (get_settings().database_url, run["id"], str(run["created_at"]), run["attempts"], str(run["started_at"]),
               kind, layer)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
            known = list(entry.rows)
        after = known[-1]["epoch"] if known else -1
        new = views.tensors_of_run(run["id"], kind, layer, after_epoch=after)
        if new:
            with self._lock:
                if len(entry.rows) == len(known):  # nobody extended it meanwhile
                    entry.rows = known + new
        return entry, known + new


RUN_ROWS = RunRows()


def edges_key(edges: np.ndarray) -> bytes:
    return np.asarray(edges, dtype=np.float64).tobytes()
