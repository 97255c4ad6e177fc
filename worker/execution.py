"""Train stored runs by id: claim them, train them, record how each ended.

Plain functions, no Celery: the Celery tasks are one-line calls to ``execute_group``
(or ``execute_run``, a group of one), and tests or scripts can call them directly. The
runs of a group that could be claimed train together in one model
(worker/training/trainer.py), with the settings of the spec their study was accepted
with (``StudySpec.setup``): nothing is validated again here, and today's limits do not
apply to a study accepted under yesterday's.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from app.domain.spec import InitializerRef, RunSetup, StudySpec
from app.schemas.studies import RunPublic
from app.settings import get_settings
from app.storage import runs as run_store
from app.storage import studies
from app.storage.db import DatabaseFileGone, check_database_file
from worker import heartbeat
from worker.events import event
from worker.retry import with_storage_retry

log = logging.getLogger("initlab.worker")


def run_setup(run: RunPublic, spec: StudySpec) -> RunSetup:
    """The training core's setup of one stored run of a study."""
    ref = InitializerRef(id=run.initializer, params=run.initializer_params)
    return spec.setup(run.id, ref, run.seed, run.activation, run.depth, run.bias_variance)


def _failure_text(exc: BaseException) -> str:
    from worker.training.datasets import DatasetUnavailable

    if isinstance(exc, DatasetUnavailable):
        return str(exc)
    frames = traceback.format_exception(exc, limit=-3)
    return f"{exc.__class__.__name__}: {exc}\n\n{''.join(frames)[-2000:]}"


def execute_run(run_id: int, stop_event: Callable[[], bool] | None = None) -> str:
    """Train one queued run to a terminal state; returns what happened, in one word."""
    return execute_group([run_id], stop_event).get(run_id, "skipped")


def execute_group(run_ids: list[int], stop_event: Callable[[], bool] | None = None) -> dict[int, str]:
    """Train queued runs of one study together; returns what happened to each claimed run.

    Each run is claimed on its own (atomically, so a run sent twice trains once); the
    ones another worker has, or that are finished or cancelled, are left out. Runs of
    different studies (a hand-made message) train one study after the other. Nothing is
    claimed when the SQLite file this worker opened is gone or replaced (an error event says so).
    """
    try:
        # The database file this worker opened may have been removed or replaced (rm -rf of
        # INITLAB_STATE_DIR): training into a deleted file would lose every result at the next start.
        check_database_file()
    except DatabaseFileGone as exc:
        event("work_refused", None, logging.ERROR, run_ids=list(run_ids), error=str(exc))
        return {}
    outcomes: dict[int, str] = {}
    by_study: dict[tuple, list[int]] = {}  # one model per study and grid cell
    for run_id, key in sorted(run_store.group_keys_of_runs(list(run_ids)).items()):
        by_study.setdefault(key, []).append(run_id)
    for key, cell in by_study.items():
        for ids in _device_groups(cell, key):
            try:
                outcomes.update(_claim_and_train(ids, stop_event))
            except DatabaseFileGone as exc:
                event("work_refused", None, logging.ERROR, run_ids=ids, error=str(exc))
                return outcomes
    return outcomes


def _device_groups(run_ids: list[int], key: tuple) -> list[list[int]]:
    """The runs of one cell in the groups this worker trains them in, one after the other.

    With INITLAB_FUSE_MAX=auto the API splits a cell only over the workers, and each worker
    cuts its share to what its device holds (app/domain/memory.py ``auto_group_size``: 16 on
    a CPU, as many as fit on a GPU), in groups whose sizes differ by at most one. Otherwise
    the API already sized the group: it trains as sent.
    """
    if get_settings().fuse_max != "auto" or len(run_ids) <= 1:
        return [run_ids]
    from app.domain.memory import auto_group_size
    from worker.training.device import device_memory

    try:
        spec = studies.spec_of_run(run_ids[0])
    except Exception:  # the database blinked: train the share as sent, where claiming will retry
        log.debug("no spec for runs %s; training them as one group", run_ids, exc_info=True)
        return [run_ids]
    if spec is None:
        return [run_ids]
    depth = key[2] if len(key) > 2 else None
    size = auto_group_size(spec, len(run_ids), device_memory(), depth or None)
    count = -(-len(run_ids) // size)
    return [list(part) for part in _even_parts(run_ids, count)]


def _even_parts(items: list[int], count: int):
    size, extra = divmod(len(items), count)
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        yield items[start:end]
        start = end


def _database_gone() -> str | None:
    """Why nothing can be stored any more (the SQLite file was removed or replaced), or None."""
    try:
        check_database_file()
    except DatabaseFileGone as exc:
        return str(exc)
    return None


def _claim_and_train(run_ids: list[int], stop_event: Callable[[], bool] | None) -> dict[int, str]:
    from worker.storage_sink import StorageSink

    owner = heartbeat.identity()  # host:pid, the host as the Celery node name says (the workers table's)
    runs = []
    for run_id in run_ids:
        run = run_store.claim_run(run_id, worker_host=owner)
        if run is None:
            event("run_not_claimable", run_id, reason="already taken, finished or cancelled")
        else:
            runs.append(run)
    if not runs:
        return {}
    ids = [run.id for run in runs]
    for run in runs:
        event("run_claimed", run.id, initializer=run.initializer, seed=run.seed, attempt=run.attempts,
              group=ids if len(ids) > 1 else None)
    sink = StorageSink(owner)
    results: dict[int, str] = {}

    def finished(run_id: int, outcome) -> None:
        # A run cancelled (or diverged) inside a group ends now; the others train on.
        results[run_id] = _finish(run_id, outcome, owner)

    try:
        spec = studies.spec_of_run(ids[0])
        setups = [run_setup(run, spec) for run in runs]
        outcomes = _train(setups, sink, stop_event, finished)
    except Exception as exc:
        log.debug("runs %s failed", ids, exc_info=True)
        gone = _database_gone()
        if gone is not None:  # no failure of the runs: their database is no longer there to say so
            for run_id in ids:
                if run_id not in results:
                    event("work_refused", run_id, logging.ERROR, error=gone)
                    results[run_id] = "refused"
            return results
        reason = _failure_text(exc)
        for run_id in ids:
            if run_id not in results:
                event("run_failed", run_id, logging.ERROR, error=reason.split("\n", 1)[0],
                      exception=exc.__class__.__name__)
                with_storage_retry(run_store.finish_run, run_id, "failed", error=reason, owner=owner)
                results[run_id] = "failed"
        return results
    for run_id, outcome in outcomes.items():
        if run_id not in results:
            results[run_id] = _finish(run_id, outcome, owner)
    return results


def _train(setups: list[RunSetup], sink, stop_event, finished) -> dict:
    from worker.training.datasets import fingerprint
    from worker.training.device import describe_device, environment
    from worker.training.trainer import train_group

    device = describe_device()
    trained_with = environment(fingerprint(setups[0].dataset.name, get_settings().data_dir))
    ids = [setup.run_id for setup in setups]
    for run_id in ids:
        run_store.set_device(run_id, device, trained_with)
    heartbeat.now_training(ids)  # the workers panel: what this worker trains now
    try:
        with sink.keepalive(ids):
            return train_group(setups, sink, data_dir=get_settings().data_dir, stop_event=stop_event,
                               on_finished=finished)
    finally:
        heartbeat.now_training([])


def _finish(run_id: int, outcome, owner: str) -> str:
    gone = _database_gone()
    if gone is not None:
        event("work_refused", run_id, logging.ERROR, error=gone, status=outcome.status)
        return "refused"
    if outcome.status == "interrupted":
        # Only SQL is updated: publishing now would hand the run straight back to
        # this worker while it shuts down. The next worker's reconciler sends it.
        # A run whose cancel was asked meanwhile ends cancelled here, in the same UPDATE.
        released = run_store.release_run(run_id, note="interrupted by a worker shutdown; requeued", owner=owner)
        if released == "cancelled":
            event("run_finished", run_id, status="cancelled", epochs_completed=outcome.epochs_completed)
            return "cancelled"
        event("run_requeued", run_id, reason="worker shutting down", epochs_completed=outcome.epochs_completed)
        return "requeued"
    error = None
    if outcome.status == "diverged":
        error = (f"diverged: the loss became NaN or infinite in epoch {outcome.diverged_epoch}"
                 f" (loss {outcome.final.get('loss')}, val_loss {outcome.final.get('val_loss')})")
    if not with_storage_retry(run_store.finish_run, run_id, outcome.status, error=error, owner=owner,
                              diverged_epoch=outcome.diverged_epoch):
        event("run_superseded", run_id, logging.WARNING, reason="taken over by another worker; result dropped")
        return "superseded"
    event("run_finished", run_id, status=outcome.status, epochs_completed=outcome.epochs_completed,
          diverged_epoch=outcome.diverged_epoch, val_accuracy=outcome.final.get("val_accuracy"))
    return outcome.status
