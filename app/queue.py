"""The message broker: how runs (and signal probes) reach the workers, by task name.

The API never imports the task code; it publishes by the names in app/domain/tasks.py.
Runs of one study's grid cell share data set, model and training settings, so they train
together in one model on a worker (worker/training/trainer.py). Each message carries a
group of run ids of one cell; the database stays the source of truth: the worker claims
every run of its group on its own, and a run no message carries is sent again by the next
dispatch. A study may name its queue (``"queue": "gpu"``: hosts with an accelerator consume
it); its runs go there, INITLAB_QUEUE otherwise. The worker's Celery app is built from the
same configuration (``create_celery``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from celery import Celery

from app.broker_files import TRANSPORT
from app.domain.tasks import SIGNAL_PROBE_TASK, TRAIN_GROUP_TASK, probe_queue
from app.settings import Settings, get_settings


class QueueUnavailable(RuntimeError):
    """The broker could not take the message; the runs stay queued in SQL."""


def broker_transport(settings: Settings) -> str | None:
    """The embedded broker's transport (kombu's filesystem one, publishing each message whole);
    None lets kombu pick by the URL's scheme."""
    return TRANSPORT if settings.uses_filesystem_broker else None


def broker_options(settings: Settings) -> dict:
    if settings.uses_filesystem_broker:
        folder = settings.broker_folder
        for sub in ("in", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        # Both directions use one folder: API and worker are peers on one machine.
        return {
            "data_folder_in": str(folder / "in"),
            "data_folder_out": str(folder / "in"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "polling_interval": settings.broker_polling_interval_s,
        }
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": settings.visibility_timeout_s}
    # Other transports (e.g. kombu's SQLAlchemy one) pass every option to their
    # own engine, so nothing is added for them.
    return {}


def create_celery(settings: Settings | None = None, include: list[str] | None = None) -> Celery:
    """The Celery app of the API (a publisher) and of the worker (with its task modules)."""
    settings = settings or get_settings()
    app = Celery("initlab", broker=settings.broker_url, include=include or [])
    app.conf.update(
        broker_transport=broker_transport(settings),
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.queue,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # No remote control: initlab steers runs through SQL, and the control
        # queue costs every worker a poll loop (and seconds at shutdown).
        worker_enable_remote_control=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


@lru_cache
def _publisher(broker_url: str, queue: str, broker_folder: str) -> Celery:
    # Keyed by the settings that matter (the filesystem broker's folder too), so a changed
    # environment gets its own app rather than one that writes to the old folder.
    return create_celery(get_settings())


def dispatch(run_ids: list[int] | None = None) -> list[int]:
    """Send the queued runs that no message carries yet, in groups of one study's cell.

    Call after the runs are committed. SQL records what was sent, so a run whose
    message could not be published (broker down) is sent by a later dispatch:
    the worker's reconciler calls this with no ids, for every such run.
    """
    from app.storage import runs, studies

    settings = get_settings()
    taken = runs.take_undispatched_runs(run_ids)
    keys = runs.group_keys_of_runs(taken)
    # "auto": the workers know their device and split their share further (worker/execution.py);
    # here a cell is split only over the workers and by host memory.
    fuse_max = settings.max_runs_per_study if settings.fuse_max == "auto" else settings.fuse_max
    groups = plan_groups(keys, fuse_max, settings.worker_concurrency,
                         runs_that_fit_of(set(keys.values()), settings.worker_memory))
    queue_of = studies.queues_of_runs(taken)
    try:
        # A group is one study's cell, so all its runs share the study's queue.
        for queue, messages in _by_queue(groups, queue_of, settings.queue).items():
            _publish(TRAIN_GROUP_TASK, ([group] for group in messages), queue)
    except QueueUnavailable:
        runs.forget_dispatch(taken)
        raise
    return taken


def _by_queue(groups: list[list[int]], queue_of: dict[int, str | None], default: str) -> dict[str, list[list[int]]]:
    """Groups by the queue their study named (``default`` where it named none)."""
    routed: dict[str, list[list[int]]] = {}
    for group in groups:
        routed.setdefault(queue_of.get(group[0]) or default, []).append(group)
    return routed


def send_probe(probe_id: int) -> None:
    """Ask a worker to run a stored signal-propagation probe (on the probe queue)."""
    settings = get_settings()
    _publish(SIGNAL_PROBE_TASK, [[probe_id]], probe_queue(settings.queue))


def plan_groups(key_of_run: dict[int, Any], fuse_max: int, workers: int = 1,
                max_runs: dict[Any, int] | None = None) -> list[list[int]]:
    """Split runs into groups of one key (a study's grid cell), at most ``fuse_max`` runs each.

    A cell's runs (in id order) go into a multiple of ``workers`` groups (or one group
    per run, if fewer), the fewest that ``fuse_max`` allows, of sizes that differ by at
    most one: every worker gets an equal share and none waits for another's last group
    (2 workers, at most 16: 16 runs → 8 + 8, 40 runs → 10 + 10 + 10 + 10, 3 runs → 2 + 1).
    ``max_runs`` caps a key's groups further: the most runs of that cell one worker's
    memory holds (``runs_that_fit_of``; a key left out, or capped below 1, is capped by
    ``fuse_max`` alone, or trains its runs one by one).
    """
    fuse_max = max(1, int(fuse_max))
    workers = max(1, int(workers))
    by_key: dict[Any, list[int]] = {}
    for run_id in sorted(key_of_run):
        by_key.setdefault(key_of_run[run_id], []).append(run_id)
    groups = []
    for key, members in by_key.items():
        largest = max(1, min(fuse_max, (max_runs or {}).get(key, fuse_max)))
        count = min(len(members), workers * math.ceil(len(members) / (largest * workers)))
        size, extra = divmod(len(members), count)
        start = 0
        for index in range(count):
            end = start + size + (1 if index < extra else 0)
            groups.append(members[start:end])
            start = end
    return groups


def runs_that_fit_of(keys: set[tuple], memory: int) -> dict[tuple, int]:
    """For each cell key (study, activation, depth), the most of its runs one worker's ``memory`` holds
    (app/domain/memory.py); at least 1: a study is accepted only if one run fits."""
    from app.domain.memory import runs_that_fit
    from app.storage import studies

    specs: dict[int, Any] = {}
    caps = {}
    for key in keys:
        study_id, _activation, depth = key
        if study_id not in specs:
            specs[study_id] = studies.study_spec(study_id)
        if specs[study_id] is not None:
            caps[key] = max(1, runs_that_fit(specs[study_id], memory, depth or None))
    return caps


def ping() -> str:
    """"ok", or why the broker cannot be reached (for /readyz)."""
    from kombu import Connection

    settings = get_settings()
    try:
        with Connection(settings.broker_url, transport_options=broker_options(settings),
                        transport=broker_transport(settings),
                        connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises transport-specific errors
        return f"unreachable ({exc.__class__.__name__})"
    return "ok"


def _publish(task: str, messages: Iterable[list], queue: str) -> None:
    settings = get_settings()
    publisher = _publisher(settings.broker_url, settings.queue, str(settings.broker_folder))
    try:
        for args in messages:
            publisher.send_task(task, args=args, queue=queue,
                                retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2})
    except Exception as exc:  # kombu raises many types; the caller only needs to know it failed
        raise QueueUnavailable(f"broker unavailable: {exc.__class__.__name__}: {exc}") from exc
