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

The answers kept are bounded by their memory (INITLAB_VIEW_MEMO_MB), not only by their number:
every distinct argument combination is an entry (an epoch of the histogram slider, a summary
threshold), and on a 512-run study one histogram view holds about 8 MB, so 126 of them took the
API from 169 MB to 1.2 GB. Each answer's size is estimated once, when it is kept (answer_size),
and the least recently used answers are dropped until the memo is back under its budget; an
answer larger than the whole budget is handed out but not kept.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Callable, TypeVar

from pydantic import BaseModel

from app.settings import get_settings
from app.storage import views

T = TypeVar("T")
MAX_ENTRIES = 512  # one per (study, view, arguments): a view's older versions are replaced, not added
MB = 2**20


WAIT_S = 30.0  # a waiter computes the answer itself after this long (the first request is stuck)


class _Pending:
    """One answer being computed; the requests that want the same one wait on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: object = None


_SCALARS = frozenset((float, int, bool, str, type(None)))
_SEQUENCES = (list, tuple, set, frozenset)
_ALLOCATION = 16  # pymalloc hands out multiples of 16 bytes
_FLOATS, _FLOAT = {float}, 32  # a float asks for 24 bytes and takes 32


def answer_size(value: object) -> int:
    """Bytes ``value`` holds in this process, its parts included (each container once), estimated from
    sys.getsizeof rounded up to the allocator's 16 bytes.

    Answers are pydantic models of lists of floats: the walk visits each model, dict and list, and
    sizes a list of floats in one pass (no Python call per value). On a 512-run x 20-epoch study it
    sized a histogram view in 10 ms (building it: 170 ms), the summary in 7 ms (100 ms) and the
    metrics, 10,752 models, in 32 ms (180 ms). Its 7.7-8.0 MB for a histogram view matched the
    8.2 MB of RSS each one kept added; it is 1.07-1.8 times tracemalloc's count of the bytes the
    objects asked for (which leaves out the allocator's rounding), never below. Their JSON's length
    times one factor would not do: Python memory per JSON byte measured 1.3 (run percentiles), 1.7
    (gradients), 3.1 (summary), 8.2-9.0 (histograms, metrics)."""
    size, rounding = sys.getsizeof, _ALLOCATION - 1
    seen: set[int] = set()
    stack = [value]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += (size(item) + rounding) & ~rounding
        if isinstance(item, _SEQUENCES):
            children = item
        elif isinstance(item, BaseModel):
            fields = item.__dict__
            total += (size(fields) + rounding) & ~rounding
            total += (size(item.__pydantic_fields_set__) + rounding) & ~rounding
            if item.__pydantic_extra__ is not None:
                stack.append(item.__pydantic_extra__)
            if item.__pydantic_private__ is not None:
                stack.append(item.__pydantic_private__)
            children = fields.values()  # its keys are the class's field names, shared by every instance
        elif isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        else:
            continue
        types = set(map(type, children))
        if types == _FLOATS:
            total += len(children) * _FLOAT  # the bulk of an answer: a list of floats, without a call per value
        elif types <= _SCALARS:
            # Shared small ints, None and strings are counted as if they were not: there are few.
            total += sum(map(size, children)) + len(children) * (_ALLOCATION // 2)
        else:
            for child in children:
                if type(child) in _SCALARS:
                    total += (size(child) + rounding) & ~rounding
                else:
                    stack.append(child)
    return total


class ViewMemo:
    """Answers per (database, study, view, arguments) and study version, the least recently used
    dropped past ``max_entries`` answers or ``max_bytes`` (default: INITLAB_VIEW_MEMO_MB) of them."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int | None = None) -> None:
        self._entries: OrderedDict[tuple, tuple[tuple, object, int]] = OrderedDict()
        self._pending: dict[tuple, _Pending] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0  # answer_size of every entry kept

    @property
    def max_bytes(self) -> int:
        return get_settings().view_memo_mb * MB if self._max_bytes is None else self._max_bytes

    @property
    def size(self) -> int:
        """The estimated bytes of the answers kept."""
        return self._bytes

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
            keep = pending.ok and pending.value is not None
            size = answer_size(pending.value) if keep else 0  # outside the lock too
            limit = self.max_bytes
            with self._lock:
                self._pending.pop((key, version), None)
                if keep:
                    self._drop(key)  # an older version of this answer, or one a waiter kept meanwhile
                    if size <= limit:
                        self._entries[key] = (version, pending.value, size)
                        self._bytes += size
                        while self._entries and (len(self._entries) > self._max_entries or self._bytes > limit):
                            self._drop(next(iter(self._entries)))
            pending.done.set()
        return value

    def _drop(self, key: tuple) -> None:
        kept = self._entries.pop(key, None)
        if kept is not None:
            self._bytes -= kept[2]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


MEMO = ViewMemo()
