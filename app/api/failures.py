"""GET /api/studies/{id}/failures: each run's failure tags with evidence, and the
initializer × activation matrix of how often each tag occurs (app/analysis/failures.py).

The response models live here rather than in app/schemas.py: they describe this one read
view. Values may be NaN or ±Infinity (a diverged loss, an infinite gradient ratio) and
travel as "NaN"/"Infinity" like everywhere else.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import Field

from app.analysis.failures import failure_view
from app.schemas import COMMON_RESPONSES, NOT_FOUND, EntityId, Numbers
from app.storage.diagnostics import failure_inputs

router = APIRouter(prefix="/api", tags=["failures"], responses=COMMON_RESPONSES)


class Evidence(Numbers):
    epoch: int | None = Field(description="0 = at initialization; otherwise the epoch the value was measured after")
    layer: str | None = Field(description="the layer, or 'first/last' for a gradient ratio; null for the loss")
    value: float | None = Field(description="the measured share, ratio, spread or loss")
    detail: str


class RunTag(Numbers):
    tag: str
    label: str
    evidence: list[Evidence]


class RunFailures(Numbers):
    run_id: int
    initializer: str
    params: dict[str, Any]
    key: str
    label: str
    seed: int
    status: str
    activation: str
    measured: bool = Field(description="false until the run records its first epoch (or while it is queued)")
    epochs_checked: list[int] = Field(description="the epochs the tags were decided from: 0 and the latest")
    tags: list[RunTag]


class TagRule(Numbers):
    tag: str
    label: str
    rule: str


class MatrixCell(Numbers):
    key: str
    label: str
    activation: str
    runs: int = Field(description="measured runs of this initializer and activation")
    pending: int = Field(description="runs not measured yet")
    counts: dict[str, int]
    shares: dict[str, float | None] = Field(description="per tag, counts / runs (null without measured runs)")


class FailureMatrix(Numbers):
    initializers: list[str]
    activations: list[str]
    cells: list[MatrixCell]


class FailureView(Numbers):
    study_id: int
    active: bool = Field(description="some run is queued or running: the view will change")
    tags: list[TagRule]
    runs: list[RunFailures]
    matrix: FailureMatrix


@router.get("/studies/{study_id}/failures", response_model=FailureView, responses=NOT_FOUND)
def study_failures(study_id: EntityId) -> Response:
    """Failure tags per run (diverged, dead ReLUs, saturation, vanishing or exploding gradients,
    symmetry never broken), with the epoch, layer and value behind each, and the share of runs
    per tag for every initializer × activation."""
    inputs = failure_inputs(study_id)
    if inputs is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"study {study_id} not found")
    view = FailureView.model_validate(failure_view(study_id, inputs))
    return Response(view.model_dump_json(), media_type="application/json")
