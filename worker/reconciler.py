"""Finds runs whose worker died and gives them back to the queue.

The database is the source of truth: a run marked running whose heartbeat is
older than the lease has no live worker. It is queued again, or failed once it
has used up its attempts, so no run stays "running" forever.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from app.queue import QueueUnavailable, dispatch
from app.settings import get_settings
from app.storage import studies
from app.storage.db import StorageUnavailable
from worker.broker_inspect import run_ids_in_broker
from worker.events import event
from worker.watchdog import check_consumer

log = logging.getLogger("initlab.reconciler")


def sweep_orphaned_runs() -> list[int]:
    settings = get_settings()
    requeued = []
    for run_id in studies.stale_running_runs(timedelta(seconds=settings.run_lease_s)):
        run = studies.get_run(run_id)
        if run is None:
            continue
        if run.attempts >= settings.max_attempts:
            studies.finish_run(run_id, "failed", error=(
                f"the worker was lost {run.attempts} times while training this run "
                "(killed, or out of memory?); not retried again"))
            event("run_failed", run_id, logging.WARNING, error=f"worker lost {run.attempts} times; not retried")
        elif studies.release_run(run_id, note="worker lost; requeued"):
            requeued.append(run_id)
            event("run_requeued", run_id, logging.WARNING, reason="lease expired (worker lost)")
    lost = forget_lost_messages()
    for run_id in lost:
        event("run_message_lost", run_id, logging.WARNING, message="the broker lost its message; sending them again")
    for run_id in dispatch():
        event("run_dispatched", run_id, reason="no message carried it")
    return requeued


def forget_lost_messages() -> list[int]:
    """Queued runs whose message the broker no longer has go back to 'not yet sent'."""
    settings = get_settings()
    carried = run_ids_in_broker(settings)
    if carried is None:
        return []
    # Only runs sent a while ago: a message being handed from the queue to a
    # worker is briefly in neither place. A run sent twice is harmless, since
    # claiming a run is atomic and the second message finds it taken.
    lost = [run_id for run_id in studies.dispatched_queued_runs(timedelta(seconds=settings.dispatch_grace_s))
            if run_id not in carried]
    if lost:
        studies.forget_dispatch(lost)
    return lost


def start_reconciler_thread(stop: threading.Event) -> threading.Thread:
    interval = min(5.0, max(1.0, get_settings().run_lease_s / 3))

    def loop() -> None:
        while not stop.is_set():
            try:
                sweep_orphaned_runs()
                check_consumer()
            except (StorageUnavailable, QueueUnavailable) as exc:
                log.warning("reconciler: %s", exc)
            except Exception:  # keep the thread alive whatever one sweep hits
                log.exception("reconciler sweep failed")
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="initlab-reconciler", daemon=True)
    thread.start()
    return thread
