"""Finds runs whose worker died and gives them back to the queue.

The database is the source of truth: a run marked running whose heartbeat is
older than the lease has no live worker. It is queued again, or failed once it
has used up its attempts, so no run stays "running" forever.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from app.queue import QueueUnavailable, dispatch
from app.settings import get_settings
from app.storage import probes, studies
from app.storage import runs as run_store
from app.storage.db import DatabaseFileGone, StorageUnavailable
from worker.broker_inspect import run_ids_in_broker
from worker.events import event
from worker.watchdog import check_consumer

log = logging.getLogger("initlab.reconciler")


def sweep_orphaned_runs() -> list[int]:
    """One pass; returns the runs put back in the queue.

    A lost run whose cancel was asked ends ``cancelled`` (never queued again, never failed:
    a cancel always ends in ``cancelled``); one that used its attempts fails with the reason.
    A run's attempts count the workers lost while training it: a worker that gives a run back
    on shutdown takes its attempt back (``release_run``), so INITLAB_MAX_ATTEMPTS and the
    "lost N times" of the failure are about crashes only.
    """
    settings = get_settings()
    requeued = []
    for run_id in run_store.stale_running_runs(timedelta(seconds=settings.run_lease_s)):
        run = run_store.get_run(run_id)
        if run is None:
            continue
        give_up = None
        if run.attempts >= settings.max_attempts:
            give_up = (f"the worker was lost {run.attempts} times while training this run "
                       "(killed, or out of memory?); not retried again")
        outcome = run_store.release_run(run_id, note="worker lost; requeued", fail_with=give_up)
        if outcome == "queued":
            requeued.append(run_id)
            event("run_requeued", run_id, logging.WARNING, reason="lease expired (worker lost)")
        elif outcome == "failed":
            event("run_failed", run_id, logging.WARNING, error=f"worker lost {run.attempts} times; not retried")
        elif outcome == "cancelled":
            event("run_cancelled", run_id, reason="its cancel was pending when its worker was lost")
    for run_id in run_store.cancel_flagged_queued_runs():
        event("run_cancelled", run_id, reason="queued with a pending cancel")
    lost = forget_lost_messages()
    for run_id in lost:
        event("run_message_lost", run_id, logging.WARNING, message="the broker lost its message; sending them again")
    for run_id in dispatch():
        event("run_dispatched", run_id, reason="no message carried it")
    for probe_id in probes.fail_stale_probes(timedelta(seconds=settings.probe_timeout_s)):
        event("probe_failed", None, logging.WARNING, probe_id=probe_id, error="no worker finished it in time")
    return requeued


def forget_lost_messages() -> list[int]:
    """Queued runs whose message the broker no longer has go back to 'not yet sent'."""
    settings = get_settings()
    # Only runs sent a while ago: a message being handed from the queue to a
    # worker is briefly in neither place. A run sent twice is harmless, since
    # claiming a run is atomic and the second message finds it taken.
    sent = run_store.dispatched_queued_runs(timedelta(seconds=settings.dispatch_grace_s))
    if not sent:
        return []
    # Each run's message waits in its study's queue (INITLAB_QUEUE, or the study's "queue").
    carried: set[int] = set()
    for queue in sorted({queue or settings.queue for queue in studies.queues_of_runs(sent).values()}):
        in_queue = run_ids_in_broker(settings.model_copy(update={"queue": queue}))
        if in_queue is None:
            return []
        carried |= in_queue
    lost = [run_id for run_id in sent if run_id not in carried]
    if lost:
        run_store.forget_dispatch(lost)
    return lost


def start_reconciler_thread(stop: threading.Event, queues: list[str]) -> threading.Thread:
    interval = min(5.0, max(1.0, get_settings().run_lease_s / 3))

    said_gone = [0.0]

    def loop() -> None:
        while not stop.is_set():
            try:
                sweep_orphaned_runs()
                check_consumer(queues)
            except DatabaseFileGone as exc:
                # Nothing this worker stores would survive: say so loudly, about once a minute.
                if time.monotonic() - said_gone[0] > 60:
                    said_gone[0] = time.monotonic()
                    event("work_refused", None, logging.ERROR, error=str(exc))
            except (StorageUnavailable, QueueUnavailable) as exc:
                log.warning("reconciler: %s", exc)
            except Exception:  # keep the thread alive whatever one sweep hits
                log.exception("reconciler sweep failed")
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="initlab-reconciler", daemon=True)
    thread.start()
    return thread
