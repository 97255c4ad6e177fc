"""GET /api/studies/{id}/theory: epoch-0 tensors against their initializers' distributions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from app.analysis.theory_report import theory_report
from app.schemas import NOT_FOUND, EntityId
from app.storage import views

router = APIRouter(prefix="/api", tags=["analysis"])


class RunCheck(BaseModel):
    run_id: int
    initializer: str
    theory: str | None = Field(description="the promised distribution, e.g. 'U[±0.0875]'; null: none known (lsuv)")
    approximate: bool
    ks: float | None = Field(description="Kolmogorov-Smirnov statistic from the stored quantiles (within 1/Q)")
    threshold: float | None = Field(description="1/Q + 1.95/sqrt(n): above it the tensor does not follow the theory")
    mismatch: bool | None


class Curve(BaseModel):
    initializer: str
    params: dict[str, Any]
    run_ids: list[int]
    label: str | None
    point: float | None = Field(description="a constant initializer's value (no density)")
    x: list[float]
    y: list[float]


class LayerTheory(BaseModel):
    layer: str
    fan_in: int
    fan_out: int
    size: int
    runs: list[RunCheck]
    curves: list[Curve]


class TheoryView(BaseModel):
    kind: Literal["kernel", "bias"]
    epoch: int
    layers: list[LayerTheory]
    mismatches: int


@router.get("/studies/{study_id}/theory", response_model=TheoryView, responses=NOT_FOUND)
def study_theory(study_id: EntityId,
                 kind: Annotated[Literal["kernel", "bias"], Query(description="weights or biases")] = "kernel",
                 ) -> dict[str, Any]:
    """Each run's epoch-0 weights against the distribution its initializer promises (KS per layer)."""
    header = views.study_header(study_id)
    if header is None:
        raise HTTPException(404, f"study {study_id} not found")
    return theory_report(header["spec"], views.study_runs(study_id), views.tensors_at_epoch(study_id, kind, 0), kind)
