"""What routes take as arguments: path ids, and the study or run they name (404 otherwise).

``Annotated`` aliases in the manner of full-stack-fastapi-template's deps.py, so a route's
signature says what it needs and the not-found answer is written once.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Path, status

from app.schemas.common import EntityId
from app.schemas.studies import RunPublic, StudyPublic
from app.storage import runs, studies

T = TypeVar("T")

StudyId = Annotated[EntityId, Path(description="study id")]
RunId = Annotated[EntityId, Path(description="run id")]


def found(value: T | None, what: str) -> T:
    """``value``, or a 404 that names what was not found."""
    if value is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found")
    return value


def _study(study_id: StudyId) -> StudyPublic:
    return found(studies.get_study(study_id), f"study {study_id}")


def _run(run_id: RunId) -> RunPublic:
    return found(runs.get_run(run_id), f"run {run_id}")


def _study_exists(study_id: StudyId) -> int:
    found(studies.study_exists(study_id) or None, f"study {study_id}")
    return study_id


def _study_of_run(run_id: RunId) -> int:
    return found(runs.study_of_run(run_id), f"run {run_id}")


# For routes without query parameters: FastAPI resolves dependencies before it validates a
# route's own query, so a route that takes one looks its study or run up itself
# (``existing_study``, ``study_of_run``): a malformed request is a 422 whether or not the id exists.
StudyDep = Annotated[StudyPublic, Depends(_study)]
RunDep = Annotated[RunPublic, Depends(_run)]
ExistingStudy = Annotated[int, Depends(_study_exists)]


def existing_study(study_id: int) -> int:
    """The id of a study that exists (without loading its runs); 404 otherwise."""
    return _study_exists(study_id)


def study_of_run(run_id: int) -> int:
    """The study a run belongs to; 404 when there is no such run."""
    return _study_of_run(run_id)


def as_json(model: Any):
    """A response model serialized by pydantic straight to JSON bytes: the page's views are
    large lists of floats, and skipping FastAPI's second validation keeps them fast."""
    from fastapi import Response

    return Response(model.model_dump_json(), media_type="application/json")
