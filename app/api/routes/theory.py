"""GET /api/studies/{id}/theory: epoch-0 tensors against their initializers' closed-form distributions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.api.deps import StudyId, as_json, found
from app.dashboard.theory import theory_view
from app.schemas.common import NOT_FOUND
from app.schemas.theory import TheoryView

router = APIRouter(prefix="/api", tags=["analysis"])


@router.get("/studies/{study_id}/theory", response_model=TheoryView, responses=NOT_FOUND)
def study_theory(study_id: StudyId,
                 kind: Annotated[Literal["kernel", "bias"], Query(description="weights or biases")] = "kernel",
                 ) -> Response:
    """Each run's epoch-0 weights against the distribution its initializer promises (KS per layer)."""
    # kept while no run's epoch 0 changes, and validated once (issue 11's load)
    return as_json(found(theory_view(study_id, kind), f"study {study_id}"))
