"""Exit a worker whose consumer has silently stopped taking messages.

Celery's Redis consumer can go quiet after the broker restarts (celery#8030,
#8091, #9054): the process lives on, idle, while messages wait. An idle worker
that sees ready messages in its queue for longer than INITLAB_CONSUMER_STALL_S
is stuck, so it exits with status 75 and its supervisor (compose's restart
policy, `initlab up`) starts a fresh one. Its runs are safe: SQL holds them.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import signals

from app.settings import get_settings
from worker.broker_inspect import ready_message_count

log = logging.getLogger("initlab.worker")
EXIT_STALLED = 75
_busy = threading.Event()
_stalled_since: float | None = None


@signals.task_prerun.connect
def _task_started(**_kwargs) -> None:
    _busy.set()


@signals.task_postrun.connect
def _task_ended(**_kwargs) -> None:
    _busy.clear()


def check_consumer(queues: list[str]) -> None:
    """Exit when this worker has been idle while messages wait in the queues it consumes."""
    global _stalled_since
    settings = get_settings()
    waiting = 0 if _busy.is_set() else ready_message_count(settings, queues)
    if not waiting:
        _stalled_since = None
        return
    now = time.monotonic()
    if _stalled_since is None:
        _stalled_since = now
    elif now - _stalled_since > settings.consumer_stall_s:
        log.critical("idle for %.0fs while %s messages wait: the broker consumer is stuck; exiting so a fresh "
                     "worker takes over", now - _stalled_since, waiting)
        logging.shutdown()
        os._exit(EXIT_STALLED)
