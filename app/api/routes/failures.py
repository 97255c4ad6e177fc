"""GET /api/studies/{id}/failures: each run's failure tags with evidence, and the
initializer × activation matrix of how often each tag occurs (app/analysis/failures.py,
through app/dashboard/failures.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import as_json, found
from app.dashboard import failures
from app.schemas.common import COMMON_RESPONSES, NOT_FOUND, EntityId
from app.schemas.failures import FailureView

router = APIRouter(prefix="/api", tags=["failures"], responses=COMMON_RESPONSES)


@router.get("/studies/{study_id}/failures", response_model=FailureView, responses=NOT_FOUND)
def study_failures(study_id: EntityId) -> Response:
    """Failure tags per run (diverged, dead ReLUs, saturation, vanishing or exploding gradients,
    symmetry never broken), with the epoch, layer and value behind each, and the share of runs
    per tag for every initializer × activation."""
    return as_json(found(failures.failure_view(study_id), f"study {study_id}"))
