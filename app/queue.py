"""Hand runs to the workers by task name; the API never imports the task code.

Runs of one study share data set, model and training settings, so they can train
together in one fused model on a worker (worker/training/fused.py). Each message
carries a group of run ids of one study; the database stays the source of truth:
the worker claims every run of its group on its own, and a run no message carries is
sent again by the next dispatch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from celery import Celery

from app.settings import get_settings
from worker.celery_app import TRAIN_GROUP_TASK, create_celery


@lru_cache
def _publisher(broker_url: str, queue: str) -> Celery:
    # Keyed by the settings that matter, so a changed environment (tests) gets its own app.
    return create_celery(get_settings())


class QueueUnavailable(RuntimeError):
    """The broker could not take the message; the runs stay queued in SQL."""


def dispatch(run_ids: list[int] | None = None) -> list[int]:
    """Send the queued runs that no message carries yet, in groups of one study.

    Call after the runs are committed. SQL records what was sent, so a run whose
    message could not be published (broker down) is sent by a later dispatch:
    the worker's reconciler calls this with no ids, for every such run.
    """
    from app.storage import studies

    settings = get_settings()
    taken = studies.take_undispatched_runs(run_ids)
    groups = plan_groups(studies.fuse_keys_of_runs(taken), settings.fuse_max, settings.worker_concurrency)
    try:
        _publish(groups)
    except QueueUnavailable:
        studies.forget_dispatch(taken)
        raise
    return taken


def plan_groups(study_of_run: dict[int, Any], fuse_max: int, workers: int = 1) -> list[list[int]]:
    """Split runs into groups of one study (and one grid cell: the key), at most ``fuse_max`` runs each.

    A study's runs (in id order) go into a multiple of ``workers`` groups (or one group
    per run, if fewer), the fewest that ``fuse_max`` allows, of sizes that differ by at
    most one: every worker gets an equal share and none waits for another's last group
    (2 workers, at most 16: 16 runs → 8 + 8, 40 runs → 10 + 10 + 10 + 10, 3 runs → 2 + 1).
    """
    fuse_max = max(1, int(fuse_max))
    workers = max(1, int(workers))
    by_study: dict[int, list[int]] = {}
    for run_id in sorted(study_of_run):
        by_study.setdefault(study_of_run[run_id], []).append(run_id)
    groups = []
    for runs in by_study.values():
        count = min(len(runs), workers * math.ceil(len(runs) / (fuse_max * workers)))
        size, extra = divmod(len(runs), count)
        start = 0
        for index in range(count):
            end = start + size + (1 if index < extra else 0)
            groups.append(runs[start:end])
            start = end
    return groups


def _publish(groups: Iterable[list[int]]) -> None:
    settings = get_settings()
    publisher = _publisher(settings.broker_url, settings.queue)
    try:
        for group in groups:
            publisher.send_task(TRAIN_GROUP_TASK, args=[group], queue=settings.queue,
                                retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2})
    except Exception as exc:  # kombu raises many types; the caller only needs to know it failed
        raise QueueUnavailable(f"broker unavailable: {exc.__class__.__name__}: {exc}") from exc
