"""Per-run aggregates the study page asks for again and again, kept in memory and grown epoch by epoch.

Shared histogram edges need, per layer, the range of every tensor of every run and epoch,
and the gradient panel needs every gradient norm. Both read one small row per (run, epoch,
layer, kind), but on SQLite those rows sit inside ~4 kB records (the JSON histograms), so a
64-run x 50-epoch study costs ~40 ms of page reads per request, every request. The answer
only grows: a finished run never changes, and a training run only adds epochs. So each
run's aggregate is read once and then extended with the epochs recorded since ("epoch >
last seen", served by the (run_id, epoch, layer, kind) unique index).

A run is recognised by (database, id, created_at, attempts, started_at): a new attempt
rewrites its rows from scratch (claim_run deletes them), and a reused id belongs to a new run.
started_at tells attempts apart that a user's retry numbers from 1 again.

The lock guards only the bookkeeping, never a database read: with the read inside it, every
histogram and gradient request of every open page waited in one line behind the others'
queries (p95 1.7 s with 20 readers on PostgreSQL, issue 11). So an aggregate, once handed
out, is never changed (a request reads it without the lock): new epochs are folded into a
copy that replaces it. Two requests may read the same new rows at once; folding is
idempotent (ranges widen, a norm or an epoch is set again), so either order gives the same.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from app.domain.lifecycle import TERMINAL_STATUSES
from app.settings import get_settings
from app.storage import views

ROBUST_SPREAD = 4.0  # robust range: mean +- this many std per tensor, see analysis.histograms.robust_range
MAX_RUNS = 4096


@dataclass
class RunAggregate:
    epoch: int = -1  # the last epoch folded in
    final: bool = False  # read after the run had finished: nothing more will come
    layers: dict[str, int] = field(default_factory=dict)  # layer -> index
    # (kind, layer) -> [low, high, robust low, robust high] over the finite values
    ranges: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    norms: dict[str, dict[int, float | None]] = field(default_factory=dict)  # gradient: layer -> epoch -> L2
    epochs: dict[str, set[int]] = field(default_factory=dict)  # kind -> the epochs recorded

    def widen(self, key: tuple[str, str], low: float, high: float, robust_low: float, robust_high: float) -> None:
        known = self.ranges.get(key)
        if known is None:
            self.ranges[key] = [low, high, robust_low, robust_high]
        else:
            known[:] = [min(known[0], low), max(known[1], high), min(known[2], robust_low), max(known[3], robust_high)]

    def copy(self) -> "RunAggregate":
        """A copy to fold new rows into: the original may be in use by other requests."""
        return RunAggregate(
            epoch=self.epoch, final=self.final, layers=dict(self.layers),
            ranges={key: list(values) for key, values in self.ranges.items()},
            norms={layer: dict(norms) for layer, norms in self.norms.items()},
            epochs={kind: set(epochs) for kind, epochs in self.epochs.items()})


def _finite(*values: Any) -> bool:
    try:
        return all(math.isfinite(value) for value in values)
    except TypeError:  # None, or SQLite's text 'NaN'
        return False


def _number(value: Any) -> float | None:
    """A float column read without ExactFloat: SQLite hands NaN back as the text 'NaN'."""
    return float(value) if isinstance(value, str) else value


class AggregateCache:
    def __init__(self, max_runs: int = MAX_RUNS) -> None:
        self._entries: OrderedDict[tuple, RunAggregate] = OrderedDict()
        self._lock = threading.Lock()
        self._max_runs = max_runs

    def aggregates(self, runs: list[dict[str, Any]]) -> dict[int, RunAggregate]:
        """Up-to-date aggregates of these runs (rows of views.study_runs), reading only what is new.

        The answer's aggregates never change afterwards (see the module docstring)."""
        url = get_settings().database_url
        keys: dict[int, tuple] = {}
        found: dict[int, RunAggregate] = {}
        after: dict[int, int] = {}
        finishing: set[int] = set()
        with self._lock:
            for run in runs:
                key = keys[run["id"]] = (url, run["id"], str(run["created_at"]), run["attempts"], str(run["started_at"]))
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = RunAggregate()
                self._entries.move_to_end(key)
                found[run["id"]] = entry
                if not entry.final:
                    after[run["id"]] = entry.epoch
                    # Status was read before the rows: a run seen finished has written everything.
                    if run["status"] in TERMINAL_STATUSES:
                        finishing.add(run["id"])
            self._evict()
        if not after:
            return found
        rows = views.layer_scalars(after)  # outside the lock
        diverged = [(run_id, epoch, layer, kind) for run_id, kind, layer, _, epoch, nonfinite, *_ in rows if nonfinite]
        extremes = views.finite_extremes(diverged) if diverged else []
        by_run: dict[int, list[tuple]] = {}
        for row in rows:
            by_run.setdefault(row[0], []).append(row)
        extremes_by_run: dict[int, list[tuple]] = {}
        for item in extremes:
            extremes_by_run.setdefault(item[0], []).append(item)
        with self._lock:
            for run_id in set(by_run) | set(extremes_by_run) | finishing:
                # Fold into the newest published aggregate (another request may have advanced it).
                entry = self._entries.get(keys[run_id], found[run_id]).copy()
                self._fold(entry, by_run.get(run_id, []), extremes_by_run.get(run_id, []))
                entry.final = entry.final or run_id in finishing
                self._entries[keys[run_id]] = found[run_id] = entry
            self._evict()
        return found

    def _evict(self) -> None:
        while len(self._entries) > self._max_runs:
            self._entries.popitem(last=False)

    @staticmethod
    def _fold(entry: RunAggregate, rows: list[tuple], extremes: list[tuple]) -> None:
        """Fold one run's new layer_stats rows (views.layer_scalars) and its diverged rows' finite ranges."""
        for _, kind, layer, index, epoch, nonfinite, mean, std, low, high, l2 in rows:
            entry.layers[layer] = index
            entry.epochs.setdefault(kind, set()).add(epoch)
            if epoch > entry.epoch:
                entry.epoch = epoch
            if kind == "gradient":
                entry.norms.setdefault(layer, {})[epoch] = _number(l2)
            if nonfinite:
                continue  # its finite range comes from extremes
            if _finite(low, high, mean, std):  # all values finite: so are the moments, unless they overflowed
                spread = ROBUST_SPREAD * std
                entry.widen((kind, layer), low, high, max(low, mean - spread), min(high, mean + spread))
        for _, kind, layer, low, high in extremes:
            entry.widen((kind, layer), low, high, low, high)

    def ranges(self, runs: list[dict[str, Any]], kind: str, robust: bool) -> dict[str, tuple[int, float, float]]:
        """Per layer: (index, low, high) of ``kind`` over every run and epoch given."""
        out: dict[str, tuple[int, float, float]] = {}
        for entry in self.aggregates(runs).values():
            for (entry_kind, layer), values in entry.ranges.items():
                if entry_kind != kind:
                    continue
                low, high = (values[2], values[3]) if robust else (values[0], values[1])
                known = out.get(layer)
                index = entry.layers[layer]
                out[layer] = (index, low, high) if known is None else (index, min(known[1], low), max(known[2], high))
        return out

    def epochs(self, runs: list[dict[str, Any]], kind: str) -> list[int]:
        """The epochs for which some of these runs has ``kind`` statistics (the histogram slider's stops)."""
        found: set[int] = set()
        for entry in self.aggregates(runs).values():
            found |= entry.epochs.get(kind, set())
        return sorted(found)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = AggregateCache()
