"""Train stored runs by id: claim them, train them, record how each ended.

Plain functions, no Celery: the Celery tasks are one-line calls to
``execute_group`` (or ``execute_run``, a group of one), and tests or scripts can
call them directly. A group's runs that could be claimed train together in one
fused model (worker/training/fused.py); a lone run trains on its own.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from app.schemas import RunPublic, StudyCreate
from app.settings import get_settings
from app.storage import studies
from worker.events import event
from worker.retry import with_storage_retry

log = logging.getLogger("initlab.worker")


def run_config(run: RunPublic, spec: StudyCreate):
    """The training core's RunConfig for one stored run of a study."""
    from worker.training.trainer import RunConfig

    output = spec.model.output_initializer
    return RunConfig(
        run_id=run.id, seed=run.seed,
        dataset=spec.dataset.name, train_samples=spec.dataset.train_samples,
        validation_samples=spec.dataset.validation_samples, subset_seed=spec.dataset.subset_seed,
        hidden_units=spec.hidden_units_for(run.depth), activation=run.activation or spec.model.activation,
        dropout=spec.model.dropout,
        optimizer=spec.training.optimizer, learning_rate=spec.training.learning_rate,
        batch_size=spec.training.batch_size, epochs=spec.training.epochs,
        stop_on_divergence=spec.training.stop_on_divergence,
        initializer=run.initializer, initializer_params=dict(run.initializer_params),
        bias_initializer=spec.bias_initializer.id, bias_initializer_params=dict(spec.bias_initializer.params),
        output_initializer=output.id if output else None,
        output_initializer_params=dict(output.params) if output else {},
    )


def _failure_text(exc: BaseException) -> str:
    from worker.training.datasets import DatasetUnavailable

    if isinstance(exc, (DatasetUnavailable, ValueError)):
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
    different studies (a hand-made message) train one study after the other.
    """
    outcomes: dict[int, str] = {}
    by_study: dict[tuple, list[int]] = {}  # one fused model per study and grid cell
    for run_id, key in sorted(studies.fuse_keys_of_runs(list(run_ids)).items()):
        by_study.setdefault(key, []).append(run_id)
    for ids in by_study.values():
        outcomes.update(_claim_and_train(ids, stop_event))
    return outcomes


def _claim_and_train(run_ids: list[int], stop_event: Callable[[], bool] | None) -> dict[int, str]:
    from worker.storage_sink import StorageSink, worker_identity

    owner = worker_identity()
    runs = []
    for run_id in run_ids:
        run = studies.claim_run(run_id, worker_host=owner)
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
        # A run cancelled inside a fused group ends now; the others train on.
        results[run_id] = _finish(run_id, outcome, owner)

    try:
        spec = StudyCreate.model_validate(studies.study_spec_for_run(ids[0]))
        configs = [run_config(run, spec) for run in runs]
        outcomes = _train(configs, sink, stop_event, finished)
    except Exception as exc:
        log.debug("runs %s failed", ids, exc_info=True)
        reason = _failure_text(exc)
        for run_id in ids:
            if run_id not in results:
                event("run_failed", run_id, logging.ERROR, error=reason.split("\n", 1)[0],
                      exception=exc.__class__.__name__)
                with_storage_retry(studies.finish_run, run_id, "failed", error=reason, owner=owner)
                results[run_id] = "failed"
        return results
    for run_id, outcome in outcomes.items():
        if run_id not in results:
            results[run_id] = _finish(run_id, outcome, owner)
    return results


def _train(configs, sink, stop_event, finished) -> dict:
    """One run alone with ``train_run``; several fused with ``train_group``."""
    from worker.training.trainer import describe_device, train_run

    device = describe_device()
    ids = [config.run_id for config in configs]
    for run_id in ids:
        studies.set_device(run_id, device)
    data_dir = get_settings().data_dir
    with sink.keepalive(ids):
        if len(configs) == 1:
            return {ids[0]: train_run(configs[0], sink, data_dir=data_dir, stop_event=stop_event)}
        from worker.training.fused import train_group

        return train_group(configs, sink, data_dir=data_dir, stop_event=stop_event, on_finished=finished)


def _finish(run_id: int, outcome, owner: str) -> str:
    if outcome.status == "interrupted":
        # Only SQL is updated: publishing now would hand the run straight back to
        # this worker while it shuts down. The next worker's reconciler sends it.
        studies.release_run(run_id, note="interrupted by a worker shutdown; requeued", owner=owner)
        event("run_requeued", run_id, reason="worker shutting down", epochs_completed=outcome.epochs_completed)
        return "requeued"
    error = None
    if outcome.status == "diverged":
        error = (f"diverged: the loss became NaN or infinite in epoch {outcome.diverged_epoch}"
                 f" (loss {outcome.final.get('loss')}, val_loss {outcome.final.get('val_loss')})")
    if not with_storage_retry(studies.finish_run, run_id, outcome.status, error=error, owner=owner,
                              diverged_epoch=outcome.diverged_epoch):
        event("run_superseded", run_id, logging.WARNING, reason="taken over by another worker; result dropped")
        return "superseded"
    event("run_finished", run_id, status=outcome.status, epochs_completed=outcome.epochs_completed,
          diverged_epoch=outcome.diverged_epoch, val_accuracy=outcome.final.get("val_accuracy"))
    return outcome.status
