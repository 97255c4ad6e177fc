"""Studies and the life cycle of their runs: the only SQL about who trains what.

Every function opens its own session scope and returns API schema objects,
never ORM rows, so callers cannot lazy-load behind the repository's back.
"""

from __future__ import annotations

import socket
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from app.schemas import TERMINAL_STATUSES, RunPublic, StudyCreate, StudyPublic, StudySummary
from app.storage.db import session_scope
from app.storage.models import EpochMetric, LayerDiagnostic, LayerStat, Run, Study, utcnow


def study_status(counts: dict[str, int]) -> str:
    """One word for a study from its runs' statuses."""
    total = sum(counts.values())
    if total == 0:
        return "empty"
    if counts.get("running") or (counts.get("queued") and counts.get("queued") != total):
        return "running"
    if counts.get("queued") == total:
        return "queued"
    if counts.get("failed"):
        return "failed"
    finished = counts.get("succeeded", 0) + counts.get("diverged", 0)
    if finished:
        # A diverged run trained to its end as far as it could: a finding, not a failure
        # (run_counts tells how many diverged).
        return "succeeded" if finished == total else "partial"
    return "cancelled"


def _study_public(study: Study) -> StudyPublic:
    counts = dict(Counter(run.status for run in study.runs))
    return StudyPublic(
        id=study.id,
        name=study.name,
        created_at=study.created_at,
        status=study_status(counts),
        run_counts=counts,
        spec=study.spec,
        runs=[RunPublic.model_validate(run) for run in study.runs],
    )


def create_study(spec: StudyCreate, idempotency_key: str | None = None) -> StudyPublic:
    """Store a study and one queued run per initializer x seed (initializer-major)."""
    with session_scope() as session:
        study = Study(name=spec.name, spec=spec.model_dump(mode="json"), idempotency_key=idempotency_key)
        study.runs = [
            Run(initializer=ref.id, initializer_params=dict(ref.params), seed=seed, epochs=spec.training.epochs,
                activation=activation, depth=depth)
            for activation, depth in spec.grid()
            for ref in spec.initializers
            for seed in spec.seeds
        ]
        session.add(study)
        session.flush()
        return _study_public(study)


def study_by_idempotency_key(key: str) -> StudyPublic | None:
    with session_scope() as session:
        study = session.scalar(select(Study).where(Study.idempotency_key == key))
        return None if study is None else _study_public(study)


def list_studies(name_contains: str | None = None, limit: int = 500) -> list[StudySummary]:
    with session_scope() as session:
        query = select(Study.id, Study.name, Study.created_at).order_by(Study.id.desc()).limit(limit)
        if name_contains:
            query = query.where(Study.name.ilike(f"%{name_contains}%"))
        studies = session.execute(query).all()
        ids = [row.id for row in studies]
        counts: dict[int, dict[str, int]] = {study_id: {} for study_id in ids}
        if ids:
            grouped = session.execute(
                select(Run.study_id, Run.status, func.count()).where(Run.study_id.in_(ids)).group_by(Run.study_id, Run.status)
            )
            for study_id, status, count in grouped:
                counts[study_id][status] = count
        return [
            StudySummary(id=row.id, name=row.name, created_at=row.created_at, status=study_status(counts[row.id]),
                         run_counts=counts[row.id])
            for row in studies
        ]


def get_study(study_id: int) -> StudyPublic | None:
    with session_scope() as session:
        study = session.get(Study, study_id)
        return None if study is None else _study_public(study)


def get_run(run_id: int) -> RunPublic | None:
    with session_scope() as session:
        run = session.get(Run, run_id)
        return None if run is None else RunPublic.model_validate(run)


def study_spec_for_run(run_id: int) -> dict | None:
    with session_scope() as session:
        row = session.execute(select(Study.spec).join(Run, Run.study_id == Study.id).where(Run.id == run_id)).first()
        return None if row is None else row.spec


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
        session.execute(delete(EpochMetric).where(EpochMetric.run_id == run_id))
        session.execute(delete(LayerStat).where(LayerStat.run_id == run_id))
        session.execute(delete(LayerDiagnostic).where(LayerDiagnostic.run_id == run_id))
        return RunPublic.model_validate(session.get(Run, run_id))


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


def set_device(run_id: int, device: str) -> None:
    with session_scope() as session:
        session.execute(update(Run).where(Run.id == run_id).values(device=device))


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


def release_run(run_id: int, note: str, owner: str | None = None) -> bool:
    """Give a running run back to the queue (worker shutting down); True if it was running.

    With an owner, only while that worker still holds the run: one that lost its lease
    must not requeue the run its successor is training.
    """
    where = [Run.id == run_id, Run.status == "running"] + ([Run.worker_host == owner] if owner else [])
    with session_scope() as session:
        return session.execute(
            update(Run).where(*where)
            .values(status="queued", error=note, batch=0, heartbeat_at=None, enqueued_at=None)
        ).rowcount == 1


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
    """A failed or cancelled run goes back to queued; True if it did."""
    with session_scope() as session:
        return session.execute(
            update(Run).where(Run.id == run_id, Run.status.in_(("failed", "cancelled")))
            .values(status="queued", error=None, epoch=0, batch=0, cancel_requested=False, finished_at=None,
                    enqueued_at=None)
        ).rowcount == 1


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


def fuse_keys_of_runs(run_ids: list[int]) -> dict[int, tuple]:
    """Each run's (study, activation, depth): runs that share it can train in one fused model."""
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


def run_ids_of_study(study_id: int) -> list[int]:
    with session_scope() as session:
        return list(session.scalars(select(Run.id).where(Run.study_id == study_id).order_by(Run.id)))
