"""Studies: store one with its runs, find them again, list them.

A study's spec is stored once, as the JSON of the ``StudySpec`` accepted by the API, and
handed back parsed (``study_spec``); its runs are created from it here, one per
initializer × seed (× grid cell), in the spec's own order.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError

from app.domain.lifecycle import ACTIVE_STATUSES, study_status
from app.domain.spec import StudySpec
from app.schemas.studies import RunPublic, StudyPublic, StudySummary
from app.settings import get_settings
from app.storage.db import session_scope
from app.storage.models import Run, Study

# GET /api/studies answers at most this many studies per page (and that many by default).
MAX_PAGE = 500


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key already names a study created from a different request body."""

    def __init__(self, study_id: int) -> None:
        super().__init__(f"the Idempotency-Key was used for study {study_id}, with a different body")
        self.study_id = study_id


def request_hash(spec: dict[str, Any]) -> str:
    """SHA-256 of a spec's canonical JSON (what is stored): one value per study, however it was written
    ("he_normal" or {"id": "he_normal"}, 1 or 1.0, a default given or left out)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _study_public(study: Study) -> StudyPublic:
    counts = dict(Counter(run.status for run in study.runs))
    return StudyPublic(
        id=study.id,
        name=study.name,
        created_at=study.created_at,
        status=study_status(counts),
        run_counts=counts,
        spec=study.spec,
        queue=study.queue,
        runs=[RunPublic.model_validate(run) for run in study.runs],
    )


def create_study(spec: StudySpec, idempotency_key: str | None = None,
                 queue: str | None = None) -> tuple[StudyPublic, bool]:
    """Store a study and one queued run per planned run; (the study, created).

    ``queue``: the broker queue its runs go to (None: this deployment's INITLAB_QUEUE, stored as
    such, so that a reconciler on a host whose INITLAB_QUEUE differs re-sends its runs to the same
    queue); stored beside the spec, not in it (where a study trains is no part of what it
    measures), but part of an idempotent POST when given.

    With an ``idempotency_key`` already used for the same spec, nothing is stored and the earlier
    study comes back with created False, also when the same key races in from a concurrent request;
    used for a different spec, IdempotencyKeyReused.
    """
    stored = spec.model_dump(mode="json", exclude={"queue"})
    digest = request_hash(stored if queue is None else {**stored, "queue": queue})
    if idempotency_key and (earlier := _replayed(idempotency_key, digest)):
        return earlier, False
    try:
        with session_scope() as session:
            study = Study(name=spec.name, spec=stored, idempotency_key=idempotency_key, request_hash=digest,
                          queue=queue or get_settings().queue)
            study.runs = [
                Run(initializer=run.initializer.id, initializer_params=dict(run.initializer.params), seed=run.seed,
                    epochs=spec.planned_epochs, activation=run.activation, depth=run.depth,
                    weight_variance=run.weight_variance, bias_variance=run.bias_variance)
                for run in spec.runs()
            ]
            session.add(study)
            session.flush()
            return _study_public(study), True
    except IntegrityError:  # the unique idempotency key: a concurrent request stored it first
        earlier = _replayed(idempotency_key, digest) if idempotency_key else None
        if earlier is None:
            raise
        return earlier, False


def _replayed(key: str, digest: str) -> StudyPublic | None:
    """The study created with this key from the same spec; IdempotencyKeyReused if from another."""
    with session_scope() as session:
        study = session.scalar(select(Study).where(Study.idempotency_key == key))
        if study is None:
            return None
        # Studies stored before the hash column (migration 0007) are hashed from their stored spec.
        if (study.request_hash or request_hash(study.spec)) != digest:
            raise IdempotencyKeyReused(study.id)
        return _study_public(study)


def _name_contains(text: str):
    # A literal substring: the filter's own % and _ are not wildcards.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return Study.name.ilike(f"%{escaped}%", escape="\\")


def count_studies(name_contains: str | None = None) -> int:
    """How many studies list_studies would find over all pages."""
    with session_scope() as session:
        query = select(func.count()).select_from(Study)
        if name_contains:
            query = query.where(_name_contains(name_contains))
        return int(session.scalar(query) or 0)


def list_studies(name_contains: str | None = None, limit: int = MAX_PAGE, offset: int = 0) -> list[StudySummary]:
    """One page of studies, newest first, whose name contains ``name_contains`` (case-insensitive)."""
    with session_scope() as session:
        query = select(Study.id, Study.name, Study.created_at).order_by(Study.id.desc()).limit(limit).offset(offset)
        if name_contains:
            query = query.where(_name_contains(name_contains))
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


def study_spec(study_id: int) -> StudySpec | None:
    """The spec a study was accepted with, parsed (not checked against today's limits)."""
    with session_scope() as session:
        stored = session.scalar(select(Study.spec).where(Study.id == study_id))
    return None if stored is None else StudySpec.model_validate(stored)


def spec_of_run(run_id: int) -> StudySpec | None:
    with session_scope() as session:
        stored = session.scalar(select(Study.spec).join(Run, Run.study_id == Study.id).where(Run.id == run_id))
    return None if stored is None else StudySpec.model_validate(stored)


def run_ids_of_study(study_id: int) -> list[int]:
    with session_scope() as session:
        return list(session.scalars(select(Run.id).where(Run.study_id == study_id).order_by(Run.id)))


def study_exists(study_id: int) -> bool:
    with session_scope() as session:
        return session.scalar(select(Study.id).where(Study.id == study_id)) is not None


def queues_of_runs(run_ids: list[int]) -> dict[int, str | None]:
    """Each run's study's queue (None for a study stored before queues: INITLAB_QUEUE), for sending it
    where its study asked."""
    if not run_ids:
        return {}
    with session_scope() as session:
        rows = session.execute(select(Run.id, Study.queue).join(Study, Run.study_id == Study.id)
                               .where(Run.id.in_(run_ids)))
        return {row.id: row.queue for row in rows}


def delete_study(study_id: int) -> bool | None:
    """Delete a study, its runs and everything recorded for them; True if it did.

    None when no such study, False while one of its runs is queued or running (its worker would
    go on writing rows for it): the check and the delete are one statement, so a retry queued
    in between cannot slip through. The runs' epochs, layer statistics and diagnostics go with
    them (ON DELETE CASCADE).
    """
    active = exists().where(Run.study_id == study_id, Run.status.in_(ACTIVE_STATUSES))
    with session_scope() as session:
        if session.execute(delete(Study).where(Study.id == study_id, ~active)).rowcount == 1:
            return True
        return False if session.scalar(select(Study.id).where(Study.id == study_id)) is not None else None
