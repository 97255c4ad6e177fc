"""The study page's views, answered again from memory until the study's data change (issue 11).

Every open study page asks for the same views of the same study (summary, gradients,
histograms, failures, a run's heatmap and bands), and a training study changes only once
per epoch. With 20 pages open, computing each answer afresh kept the API's one core busy
with identical work and put p95 above a second. So each answer is kept with the study's
version (views.study_version: one small query) and handed out while that version holds.

The version is read before the answer is computed: if a write lands in between, the answer
is kept under the older version and the next request, which sees the new one, computes it
again. An answer is never returned for a version it was not computed at or after. Answers
are pydantic models that nobody changes after they are built. None (no such study, or no
such layer) is never kept.

When a new epoch lands, every open page misses at once; one request computes the answer for
that version and the others wait for it instead of computing it again (while it is being
computed the machine is busiest, so 20 copies of the work made every one of them slower).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, TypeVar

from app.settings import get_settings
from app.storage import views

T = TypeVar("T")
MAX_ENTRIES = 512  # one per (study, view, arguments): a view's older versions are replaced, not added


WAIT_S = 30.0  # a waiter computes the answer itself after this long (the first request is stuck)


class _Pending:
    """One answer being computed; the requests that want the same one wait on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: object = None


class ViewMemo:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple, tuple[tuple, object]] = OrderedDict()
        self._pending: dict[tuple, _Pending] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def answer(self, study_id: int, view: str, args: tuple, compute: Callable[[], T | None],
               depends: Callable[[tuple], tuple] | None = None) -> T | None:
        """``compute()``'s answer for this study's current data, computed at most once per version.

        depends: the part of views.study_version the view reads (default: all of it), for a view
        that changes less often than the study, such as one that reads epoch 0 only."""
        version = views.study_version(study_id)
        if version is None:
            return compute()
        if depends is not None:
            version = depends(version)
        key = (get_settings().database_url, study_id, view, args)
        with self._lock:
            kept = self._entries.get(key)
            if kept is not None and kept[0] == version:
                self._entries.move_to_end(key)
                return kept[1]  # type: ignore[return-value]
            pending = self._pending.get((key, version))
            first = pending is None
            if first:
                pending = self._pending[(key, version)] = _Pending()
        if not first:
            if pending.done.wait(WAIT_S) and pending.ok:
                return pending.value  # type: ignore[return-value]
            return compute()  # the first request failed (or is stuck): answer on our own
        try:
            value = compute()  # outside the lock: other views and studies are answered meanwhile
            pending.value, pending.ok = value, True
        finally:
            with self._lock:
                self._pending.pop((key, version), None)
                if pending.ok and pending.value is not None:
                    self._entries[key] = (version, pending.value)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._max_entries:
                        self._entries.popitem(last=False)
            pending.done.set()
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


MEMO = ViewMemo()
