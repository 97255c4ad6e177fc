"""Study routes: thin handlers that validate, call storage and the queue."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter

from app.api.deps import StudyDep, StudyId, as_json, existing_study, found
from app.dashboard.memo import MEMO
from app.queue import QueueUnavailable, dispatch
from app.schemas.common import COMMON_RESPONSES, NOT_FOUND, ErrorMessage, plain_text
from app.schemas.studies import StudyCreate, StudyMetrics, StudyPublic, StudySummary
from app.settings import get_settings
from app.storage import records, runs, studies, workers

router = APIRouter(prefix="/api/studies", tags=["studies"], responses=COMMON_RESPONSES)
STUDY_LIST = TypeAdapter(list[StudySummary])
log = logging.getLogger("initlab.api")

IDEMPOTENCY_HEADER = "Idempotency-Key"
IdempotencyKey = Annotated[plain_text(min_length=1, max_length=200) | None, Header(
    alias=IDEMPOTENCY_HEADER,
    description="repeat a POST with the same key and the same study: get the first study back (200); the same key "
                "with a different study is a 422")]
NameFilter = Annotated[plain_text(max_length=200) | None, Query(description="filter: name contains (case-insensitive)")]
Limit = Annotated[int, Query(ge=1, le=studies.MAX_PAGE, description="at most this many studies")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="skip this many (newest first)")]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StudyPublic,
             responses={200: {"model": StudyPublic, "description": "the study an earlier POST with this Idempotency-Key "
                                                                   "and the same study created"}})
def create_study(spec: StudyCreate, response: Response, idempotency_key: IdempotencyKey = None) -> StudyPublic:
    """Store a study and queue one run per initializer x seed."""
    refusal = workers.queue_refusal(spec.queue, get_settings().queue)
    if refusal:
        raise RequestValidationError([{"type": "queue_not_served", "loc": ("body", "queue"), "input": spec.queue,
                                       "msg": refusal}])
    try:
        study, created = studies.create_study(spec, idempotency_key, spec.queue)
    except studies.IdempotencyKeyReused as reused:
        # As payment APIs do: a key names one request; replaying it with another body is a client error.
        raise RequestValidationError([{
            "type": "idempotency_key_reused", "loc": ("header", IDEMPOTENCY_HEADER), "input": None,
            "msg": f"this {IDEMPOTENCY_HEADER} was already used for a different study (study {reused.study_id}); "
                   "use a new key for a new study"}]) from None
    if not created:
        response.status_code = status.HTTP_200_OK
        return study
    try:
        dispatch([run.id for run in study.runs])
    except QueueUnavailable as exc:
        # The study is stored and its runs are queued in SQL; a worker's
        # reconciler sends them once the broker is back.
        log.warning("study %s stored, runs not yet sent: %s", study.id, exc)
    return study


@router.get("", response_model=list[StudySummary], responses={200: {"description": "one page of studies", "headers": {
    "X-Total-Count": {"description": "how many studies match the filter, over all pages",
                      "schema": {"type": "integer", "minimum": 0}}}}})
def list_studies(name: NameFilter = None, limit: Limit = studies.MAX_PAGE, offset: Offset = 0) -> Response:
    """Studies, newest first, with run counts per status: one page (``limit``, ``offset``); the
    ``X-Total-Count`` header says how many match in all."""
    total = studies.count_studies(name_contains=name)
    found_studies = studies.list_studies(name_contains=name, limit=limit, offset=offset)
    # Serialized here, not validated again by FastAPI in one more worker-thread hop (see get_study).
    return Response(STUDY_LIST.dump_json(found_studies), media_type="application/json",
                    headers={"X-Total-Count": str(total)})


# The study page's reads answer with as_json and look the study up themselves: a dependency and
# a response-model validation are each one more hop to a worker thread, which under load waits
# its turn for the GIL (issue 11; see runs.py).
@router.get("/{study_id}", response_model=StudyPublic, responses=NOT_FOUND)
def get_study(study_id: StudyId) -> Response:
    """A study with every run's status and progress."""
    return as_json(found(studies.get_study(study_id), f"study {study_id}"))


@router.get("/{study_id}/metrics", response_model=StudyMetrics, responses=NOT_FOUND)
def get_study_metrics(study_id: StudyId) -> Response:
    """Every run's per-epoch loss, accuracy, val_loss, val_accuracy and seconds."""
    existing_study(study_id)
    return as_json(MEMO.answer(study_id, "metrics", (), lambda: records.study_metrics(study_id)))


@router.delete("/{study_id}", status_code=status.HTTP_204_NO_CONTENT, responses={
    **NOT_FOUND, 409: {"model": ErrorMessage, "description": "a run is still queued or running: cancel the study first"}})
def delete_study(study_id: StudyId) -> Response:
    """Delete a study with its runs and every recorded epoch, statistic and histogram (not undoable)."""
    deleted = studies.delete_study(study_id)
    found(deleted, f"study {study_id}")
    if not deleted:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"study {study_id} has queued or running runs: cancel it first, then delete it")
    log.info("study_deleted study=%s", study_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{study_id}/cancel", response_model=StudyPublic, responses=NOT_FOUND)
def cancel_study(study: StudyDep) -> StudyPublic:
    """Cancel every queued run and stop every running one at its next check."""
    runs.request_cancel([run.id for run in study.runs])
    return studies.get_study(study.id)
