"""Celery tasks and worker signals: a few lines that call the training core."""

from __future__ import annotations

import logging
import os
import threading

from celery import signals

from worker.celery_app import TRAIN_GROUP_TASK, TRAIN_RUN_TASK, celery_app
from worker.execution import execute_group, execute_run

log = logging.getLogger("initlab.worker")
shutting_down = threading.Event()
_reconciler_stop = threading.Event()

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@celery_app.task(name=TRAIN_GROUP_TASK, acks_late=True)
def train_group(run_ids: list[int]) -> dict[str, str]:
    outcomes = execute_group([int(run_id) for run_id in run_ids], stop_event=shutting_down.is_set)
    return {str(run_id): outcome for run_id, outcome in outcomes.items()}


@celery_app.task(name=TRAIN_RUN_TASK, acks_late=True)
def train_run(run_id: int) -> str:
    return execute_run(run_id, stop_event=shutting_down.is_set)


@signals.worker_shutting_down.connect
def _stop_training(**_kwargs) -> None:
    # A warm shutdown would otherwise wait for a whole run to finish; the
    # trainer stops at the next batch and the run goes back to the queue.
    shutting_down.set()
    _reconciler_stop.set()


@signals.after_setup_logger.connect
def _json_event_lines(**_kwargs) -> None:
    from worker import events

    events.configure()


@signals.worker_init.connect
def _load_training_core(**_kwargs) -> None:
    # Import Keras and TensorFlow (seconds) before taking work, not inside the first
    # task, where it would count against the first study's time. Safe: the solo pool
    # never forks this process.
    import worker.training.fused  # noqa: F401


@signals.worker_ready.connect
def _start_reconciler(**_kwargs) -> None:
    from worker.reconciler import start_reconciler_thread

    start_reconciler_thread(_reconciler_stop)
