"""The life cycle of runs: who trains what, and what the queue has been told.

A worker claims a queued run atomically, renews its lease with heartbeats and fences every
write by its identity; the reconciler requeues runs whose lease ran out. Cancel and retry
come from the API. Every function returns API schemas or plain ids, never ORM rows.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select, update

from app.domain.lifecycle import RETRYABLE_STATUSES, TERMINAL_STATUSES
from app.schemas.studies import RunPublic
from app.storage.db import session_scope
from app.storage.models import EpochMetric, LayerDiagnostic, LayerStat, Run, utcnow


def get_run(run_id: int) -> RunPublic | None:
    with session_scope() as session:
        run = session.get(Run, run_id)
        return None if run is None else RunPublic.model_validate(run)


def claim_run(run_id: int, worker_host: str | None = None) -> RunPublic | None:
    """Move a queued run to running, atomically; None if someone else has it or it is done.

    Rows left by an earlier, interrupted attempt are removed here, so a
    redelivered task replaces its epochs instead of duplicating them.
    """
    now = utcnow()
    with session_scope() as session:
        claimed = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == "queued", Run.cancel_requested.is_(False))
            .values(status="running", attempts=Run.attempts + 1, started_at=now, heartbeat_at=now, finished_at=None,
                    worker_host=worker_host or socket.gethostname(), epoch=0, batch=0, batches=0, error=None)
        ).rowcount
        if claimed != 1:
            return None
        _delete_recorded_rows(session, run_id)
        return RunPublic.model_validate(session.get(Run, run_id))


def _delete_recorded_rows(session, run_id: int) -> None:
    """Remove what an attempt of the run recorded: the next attempt writes its epochs from scratch."""
    session.execute(delete(EpochMetric).where(EpochMetric.run_id == run_id))
    session.execute(delete(LayerStat).where(LayerStat.run_id == run_id))
    session.execute(delete(LayerDiagnostic).where(LayerDiagnostic.run_id == run_id))


def heartbeat(run_id: int, epoch: int | None = None, batch: int | None = None, batches: int | None = None,
              owner: str | None = None) -> bool:
    """Record progress and liveness; returns True when the run must stop.

    It must stop when it was asked to (cancel), and when it is no longer this
    owner's: after a lost lease another worker may have claimed it, and two
    workers must never train one run at the same time.
    """
    values: dict = {"heartbeat_at": utcnow()}
    if epoch is not None:
        values["epoch"] = epoch
    if batch is not None:
        values["batch"] = batch
    if batches is not None:
        values["batches"] = batches
    mine = [Run.id == run_id, Run.status == "running"] + ([Run.worker_host == owner] if owner else [])
    with session_scope() as session:
        if session.execute(update(Run).where(*mine).values(**values)).rowcount != 1:
            return True
        return bool(session.execute(select(Run.cancel_requested).where(Run.id == run_id)).scalar_one())


def set_device(run_id: int, device: str, environment: dict | None = None) -> None:
    """What the run trains on and with (its page and export show both; numbers repeat within one)."""
    with session_scope() as session:
        session.execute(update(Run).where(Run.id == run_id).values(device=device, environment=environment))


def finish_run(run_id: int, status: str, error: str | None = None, owner: str | None = None,
               diverged_epoch: int | None = None) -> bool:
    """Put a run into a terminal state (succeeded, diverged, failed, cancelled); True if it did.

    With an owner, only while the run is still running under that owner, so a
    worker that lost its lease cannot overwrite the new owner's run.
    """
    assert status in TERMINAL_STATUSES
    where = [Run.id == run_id]
    where += [Run.status == "running", Run.worker_host == owner] if owner else [Run.status.in_(("running", "queued"))]
    with session_scope() as session:
        return session.execute(
            update(Run).where(*where).values(status=status, error=error, diverged_epoch=diverged_epoch,
                                          finished_at=utcnow(), cancel_requested=False)
        ).rowcount == 1


def release_run(run_id: int, note: str, owner: str | None = None, fail_with: str | None = None) -> str | None:
    """A running run whose worker stops (shutdown) or was lost; returns its new status, None if it was not running.

    It goes back to the queue, or, with ``fail_with``, fails with that error (the reconciler,
    once the run has used its attempts). Either way a run whose cancel was asked ends
    ``cancelled`` instead: the flag is read and cleared in the same UPDATE, so a cancel always
    ends in ``cancelled`` whatever happened to the worker (``claim_run`` refuses a flagged run,
    so a flagged run put back in the queue would have stayed there for ever).

    With an owner, only while that worker still holds the run: one that lost its lease
    must not requeue the run its successor is training. A release by its owner is the worker
    giving the run back on purpose (a warm shutdown), not a loss: see ``_forget_attempt``.
    """
    where = [Run.id == run_id, Run.status == "running"] + ([Run.worker_host == owner] if owner else [])
    now = utcnow()
    otherwise, otherwise_error = ("failed", fail_with) if fail_with is not None else ("queued", note)
    # Every right-hand side reads the row as it was before this UPDATE (SQL's rule, in SQLite too).
    cancelled = Run.cancel_requested.is_(True)
    with session_scope() as session:
        status = session.execute(
            update(Run).where(*where)
            .values(status=case((cancelled, "cancelled"), else_=otherwise),
                    error=case((cancelled, "cancelled; its worker stopped before it could finish"), else_=otherwise_error),
                    finished_at=case((cancelled, now), else_=now if fail_with is not None else None),
                    cancel_requested=False, batch=0, heartbeat_at=None, enqueued_at=None)
            .returning(Run.status)
        ).scalar_one_or_none()
        if status == "queued":
            _forget_attempt(session, run_id, given_back=owner is not None)
        return status


def _forget_attempt(session, run_id: int, given_back: bool) -> None:
    """A run back in the queue claims no progress: the attempt that stopped is redone from epoch 0.

    Its epoch, worker, device and start go, and so do its recorded rows (the next claim would
    delete them anyway; until then /metrics and the charts listed epochs a queued run will train
    again). started_at = NULL also gives the queued run a new identity for the page's caches
    (app/dashboard/cache.py keys a run by attempts and started_at), so what they kept of the
    stopped attempt is not shown for it. A run its worker gave back on purpose (``given_back``:
    a warm shutdown, also of runs it had just claimed from prefetched messages) gets its
    attempt back: INITLAB_MAX_ATTEMPTS counts lost workers only, and the reconciler's "lost N
    times" is then true. Same transaction as the release, so no one sees the run half reset.
    """
    values: dict = {"epoch": 0, "batches": 0, "worker_host": None, "device": None, "environment": None,
                    "started_at": None}
    if given_back:
        values["attempts"] = case((Run.attempts > 0, Run.attempts - 1), else_=0)
    session.execute(update(Run).where(Run.id == run_id).values(**values))
    _delete_recorded_rows(session, run_id)


def cancel_flagged_queued_runs() -> list[int]:
    """Queued runs that still carry a cancel request end ``cancelled``; returns their ids.

    No run is left so today (``release_run`` settles the flag), but one requeued by an older
    version with its flag set would never be claimed, and its study would never end.
    """
    with session_scope() as session:
        return sorted(session.scalars(
            update(Run).where(Run.status == "queued", Run.cancel_requested.is_(True))
            .values(status="cancelled", cancel_requested=False, finished_at=utcnow(),
                    error="cancelled; its worker stopped before it could finish")
            .returning(Run.id)))


def request_cancel(run_ids: list[int]) -> list[int]:
    """Cancel queued runs at once; ask running ones to stop at their next check."""
    with session_scope() as session:
        session.execute(
            update(Run).where(Run.id.in_(run_ids), Run.status == "queued")
            .values(status="cancelled", finished_at=utcnow(), error="cancelled before it started")
        )
        session.execute(update(Run).where(Run.id.in_(run_ids), Run.status == "running").values(cancel_requested=True))
        return list(session.scalars(select(Run.id).where(Run.id.in_(run_ids))))


def reset_for_retry(run_id: int) -> bool:
    """A failed or cancelled run goes back to queued with a fresh attempt budget; True if it did.

    A user's retry is a new start: the attempts of earlier tries (each cancel/retry cycle
    claimed the run once) must not count against INITLAB_MAX_ATTEMPTS, or one worker crash
    after a few retries would fail the run for good.
    """
    with session_scope() as session:
        retried = session.execute(
            update(Run).where(Run.id == run_id, Run.status.in_(RETRYABLE_STATUSES))
            .values(status="queued", error=None, batch=0, cancel_requested=False, finished_at=None,
                    enqueued_at=None, attempts=0)
        ).rowcount == 1
        if retried:  # queued again, like a released run: epoch 0, and what the earlier try recorded is redone
            _forget_attempt(session, run_id, given_back=False)
        return retried


def take_undispatched_runs(run_ids: list[int] | None = None) -> list[int]:
    """Mark queued runs that no message carries yet as handed to the broker; returns their ids.

    One UPDATE ... RETURNING, so two dispatchers never both take the same run.
    """
    query = update(Run).where(Run.status == "queued", Run.enqueued_at.is_(None))
    if run_ids is not None:
        query = query.where(Run.id.in_(run_ids))
    with session_scope() as session:
        return sorted(session.scalars(query.values(enqueued_at=utcnow()).returning(Run.id)))


def dispatched_queued_runs(older_than: timedelta) -> list[int]:
    """Queued runs handed to the broker a while ago (their message should be there)."""
    cutoff = utcnow() - older_than
    with session_scope() as session:
        return list(session.scalars(
            select(Run.id).where(Run.status == "queued", Run.enqueued_at.is_not(None), Run.enqueued_at < cutoff)
        ))


def group_keys_of_runs(run_ids: list[int]) -> dict[int, tuple]:
    """Each run's (study, activation, depth): its study's grid cell, whose runs train in one model."""
    if not run_ids:
        return {}
    with session_scope() as session:
        rows = session.execute(select(Run.id, Run.study_id, Run.activation, Run.depth).where(Run.id.in_(run_ids)))
        return {row.id: (row.study_id, row.activation or "", row.depth or 0) for row in rows}


def forget_dispatch(run_ids: list[int]) -> None:
    """The broker did not take these messages: leave the runs for the next dispatch."""
    with session_scope() as session:
        session.execute(update(Run).where(Run.id.in_(run_ids), Run.status == "queued").values(enqueued_at=None))


def stale_running_runs(older_than: timedelta) -> list[int]:
    """Runs that claim to be running but have not sent a heartbeat for a while."""
    cutoff: datetime = utcnow() - older_than
    with session_scope() as session:
        return list(session.scalars(
            select(Run.id).where(Run.status == "running", (Run.heartbeat_at.is_(None)) | (Run.heartbeat_at < cutoff))
        ))


def study_of_run(run_id: int) -> int | None:
    with session_scope() as session:
        return session.scalar(select(Run.study_id).where(Run.id == run_id))
