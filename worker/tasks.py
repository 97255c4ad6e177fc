"""Celery tasks and worker signals: a few lines that call the training core."""

from __future__ import annotations

import gc
import logging
import os
import threading

from celery import signals

from app.domain.tasks import SIGNAL_PROBE_TASK, TRAIN_GROUP_TASK, TRAIN_RUN_TASK
from app.launch import tensorflow_env
from app.settings import get_settings
from worker import heartbeat
from worker.celery_app import celery_app
from worker.execution import execute_group, execute_run
from worker.probes import execute_probe

log = logging.getLogger("initlab.worker")
shutting_down = threading.Event()
_reconciler_stop = threading.Event()

for _name, _value in tensorflow_env(get_settings()).items():  # before Keras loads TensorFlow
    os.environ.setdefault(_name, _value)


@celery_app.task(name=TRAIN_GROUP_TASK, acks_late=True)
def train_group(run_ids: list[int]) -> dict[str, str]:
    outcomes = execute_group([int(run_id) for run_id in run_ids], stop_event=shutting_down.is_set)
    return {str(run_id): outcome for run_id, outcome in outcomes.items()}


@celery_app.task(name=TRAIN_RUN_TASK, acks_late=True)
def train_run(run_id: int) -> str:
    return execute_run(run_id, stop_event=shutting_down.is_set)


@celery_app.task(name=SIGNAL_PROBE_TASK, acks_late=True)
def signal_probe(probe_id: int) -> str:
    return execute_probe(int(probe_id))


@signals.worker_shutting_down.connect
def _stop_training(**_kwargs) -> None:
    # A warm shutdown would otherwise wait for a whole run to finish; the
    # trainer stops at the next batch and the run goes back to the queue.
    shutting_down.set()
    _reconciler_stop.set()


@signals.celeryd_init.connect
def _named(sender=None, **_kwargs) -> None:
    # The node name (-n name@host) before any task: the runs this worker claims record its host.
    if isinstance(sender, str) and sender:
        heartbeat.set_node(sender)


@signals.worker_shutdown.connect
def _gone(**_kwargs) -> None:
    heartbeat.stop()  # the workers table: stopped, not lost


@signals.after_setup_logger.connect
def _json_event_lines(**_kwargs) -> None:
    from worker import events

    events.configure()


@signals.worker_init.connect
def _load_training_core(**_kwargs) -> None:
    # Import Keras and TensorFlow (seconds) before taking work, not inside the first
    # task, where it would count against the first study's time. Safe: the solo pool
    # never forks this process.
    import worker.training.trainer  # noqa: F401
    import worker.training.recorder  # noqa: F401

    # What these imports built (TensorFlow, Keras: ~350k objects) lives as long as the
    # process. Frozen, the collector never walks it again: not in the full collections
    # during training, and not at interpreter exit, where walking it took seconds per
    # worker and made Ctrl-C of `initlab up` overrun its 10 s grace on 2 busy cores.
    gc.freeze()


@signals.worker_ready.connect
def _start_reconciler(sender=None, **_kwargs) -> None:
    from worker.reconciler import start_reconciler_thread

    # The queues this process consumes (-Q): its watchdog watches only those.
    consumed = getattr(getattr(getattr(sender, "app", None), "amqp", None), "queues", None)
    queues = list(consumed.consume_from or {}) if consumed is not None else []
    start_reconciler_thread(_reconciler_stop, queues or [get_settings().queue])
    # Announced in the workers table (GET /api/workers): the queues a study may name are these.
    heartbeat.start(getattr(sender, "hostname", None) or heartbeat.node_name(), queues or [get_settings().queue])
