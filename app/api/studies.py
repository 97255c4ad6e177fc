"""Study routes: thin handlers that validate, call storage and the queue."""

from __future__ import annotations

import logging

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Response, status
from sqlalchemy.exc import IntegrityError

from app.queue import QueueUnavailable, dispatch
from app.schemas import COMMON_RESPONSES, NOT_FOUND, EntityId, StudyCreate, StudyMetrics, StudyPublic, StudySummary
from app.storage import records, studies

router = APIRouter(prefix="/api/studies", tags=["studies"], responses=COMMON_RESPONSES)
StudyId = Annotated[EntityId, Path(description="study id")]


def _study_or_404(study_id: int) -> StudyPublic:
    study = studies.get_study(study_id)
    if study is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"study {study_id} not found")
    return study


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                              description="repeat a POST with the same key: get the first study back")]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StudyPublic,
             responses={200: {"model": StudyPublic, "description": "the study an earlier POST with this Idempotency-Key created"}})
def create_study(spec: StudyCreate, response: Response, idempotency_key: IdempotencyKey = None) -> StudyPublic:
    """Store a study and queue one run per initializer x seed."""
    if idempotency_key and (earlier := studies.study_by_idempotency_key(idempotency_key)):
        response.status_code = status.HTTP_200_OK
        return earlier
    try:
        study = studies.create_study(spec, idempotency_key)
    except IntegrityError:  # the same key raced in from a concurrent request
        response.status_code = status.HTTP_200_OK
        return studies.study_by_idempotency_key(idempotency_key)
    try:
        dispatch([run.id for run in study.runs])
    except QueueUnavailable as exc:
        # The study is stored and its runs are queued in SQL; a worker's
        # reconciler sends them once the broker is back.
        logging.getLogger("initlab.api").warning("study %s stored, runs not yet sent: %s", study.id, exc)
    return study


@router.get("", response_model=list[StudySummary])
def list_studies(name: str | None = Query(default=None, max_length=200, description="filter: name contains")) -> list[StudySummary]:
    """Studies, newest first, with run counts per status."""
    return studies.list_studies(name_contains=name)


@router.get("/{study_id}", response_model=StudyPublic, responses=NOT_FOUND)
def get_study(study_id: StudyId) -> StudyPublic:
    """A study with every run's status and progress."""
    return _study_or_404(study_id)


@router.get("/{study_id}/metrics", response_model=StudyMetrics, responses=NOT_FOUND)
def get_study_metrics(study_id: StudyId) -> StudyMetrics:
    """Every run's per-epoch loss, accuracy, val_loss, val_accuracy and seconds."""
    _study_or_404(study_id)
    return records.study_metrics(study_id)


@router.post("/{study_id}/cancel", response_model=StudyPublic, responses=NOT_FOUND)
def cancel_study(study_id: StudyId) -> StudyPublic:
    """Cancel every queued run and stop every running one at its next check."""
    _study_or_404(study_id)
    studies.request_cancel(studies.run_ids_of_study(study_id))
    return _study_or_404(study_id)
