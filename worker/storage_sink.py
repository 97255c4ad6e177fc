"""The Sink the Celery worker hands to the training core: it writes through app.storage.

Every write is fenced by the owner (``host:pid``) that claimed the run: a worker
whose lease ran out and whose run was claimed by another stops writing and stops
training, so one run never trains twice at the same time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from app.settings import get_settings
from app.storage import epochs
from app.storage import runs as run_store
from app.storage.db import DatabaseFileGone, StorageUnavailable
from worker.events import event
from worker.retry import with_storage_retry

if TYPE_CHECKING:
    from worker.training.sink import RunEpoch


class _Gone(RuntimeError):
    """DatabaseFileGone, in a type with_storage_retry does not wait on: a removed file does not come back."""


def _unless_gone(write):
    def call(*args, **kwargs):
        try:
            return write(*args, **kwargs)
        except DatabaseFileGone as exc:
            raise _Gone(str(exc)) from exc

    call.__name__ = getattr(write, "__name__", "write")
    return call


def worker_identity() -> str:
    """What claim_run stores as the run's worker_host, and what fences its writes."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StorageSink:
    """Records are retried through a database outage (training waits); progress is
    throttled to one write per heartbeat interval, and a missed one is only skipped.
    """

    def __init__(self, owner: str | None = None) -> None:
        self.owner = owner or worker_identity()
        self._interval = get_settings().heartbeat_interval_s
        self._last_beat: dict[int, float] = {}
        self._stop: dict[int, bool] = {}

    def record(self, epoch: int, runs: list[RunEpoch]) -> None:
        """The group's epoch in one transaction (app/storage/epochs.py), retried through an outage.

        The transaction itself skips a run this worker no longer owns; a run that was already
        stopped here (cancelled, or fenced before) is written while it is still this worker's.
        """
        try:
            lost = with_storage_retry(_unless_gone(epochs.record_group_epoch), epoch, runs, owner=self.owner)
        except _Gone as exc:
            for entry in runs:
                self._gone(entry.run_id, exc)
            return
        for run_id in lost:
            if not self._stop.get(run_id):
                event("run_fenced", run_id, logging.WARNING,
                      reason=f"run {run_id} is not running under {self.owner}; stopping it here")
            self._stop[run_id] = True
        for entry in runs:
            if entry.metrics is not None and entry.run_id not in lost:
                event("epoch_recorded", entry.run_id, epoch=epoch, **entry.metrics)

    def progress(self, run_id: int, epoch: int, batch: int, batches: int) -> None:
        now = time.monotonic()
        if now - self._last_beat.get(run_id, 0.0) < self._interval and batch not in (0, batches):
            return
        self._last_beat[run_id] = now
        self._beat(run_id, batch=batch, batches=batches)

    def should_stop(self, run_id: int) -> bool:
        return self._stop.get(run_id, False)

    @contextmanager
    def keepalive(self, run_ids: Iterable[int]) -> Iterator[None]:
        """Renew the runs' leases from a thread while they train.

        The training loop beats too, but not while TensorFlow traces a model or
        evaluates: the lease must not run out just because a step is slow.
        """
        run_ids = list(run_ids)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self._interval):
                for run_id in run_ids:
                    if not self._stop.get(run_id):
                        self._beat(run_id)

        thread = threading.Thread(target=beat, name="initlab-keepalive", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def _beat(self, run_id: int, **progress: int) -> None:
        try:
            self._stop[run_id] = run_store.heartbeat(run_id, owner=self.owner, **progress) or self._stop.get(run_id, False)
        except DatabaseFileGone as exc:
            self._gone(run_id, exc)
        except StorageUnavailable:
            self._last_beat[run_id] = time.monotonic() - self._interval / 2  # try again soon

    def _gone(self, run_id: int, exc: Exception) -> None:
        """The database file was removed or replaced: what the run records would be lost, so it stops."""
        if not self._stop.get(run_id):
            event("run_fenced", run_id, logging.ERROR, reason=f"{exc}; stopping it here")
        self._stop[run_id] = True
