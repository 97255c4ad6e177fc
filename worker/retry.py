"""Retry a storage call while the database is briefly unreachable.

The API answers 503 at once and lets the client retry; a worker in the middle
of training has nobody to hand the error to, so it waits with exponential
backoff and carries on when the database is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from app.settings import get_settings
from app.storage.db import DatabaseFileGone, StorageUnavailable

T = TypeVar("T")
log = logging.getLogger("initlab.worker")


def with_storage_retry(call: Callable[..., T], *args, **kwargs) -> T:
    budget = get_settings().storage_retry_s
    deadline = time.monotonic() + budget
    delay = 0.1
    while True:
        try:
            return call(*args, **kwargs)
        except StorageUnavailable as exc:
            # A vanished database file does not come back by waiting: nothing to retry.
            if isinstance(exc, DatabaseFileGone) or time.monotonic() + delay > deadline:
                raise
            log.warning("database unavailable (%s); retrying %s in %.1fs", exc, call.__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
