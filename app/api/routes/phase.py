"""Phase diagrams of weight-variance sweeps, and mean-field theory for any activation."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from app.analysis.phase import DEFAULT_METRIC, METRICS
from app.api.deps import StudyId, found
from app.api.routes.pages import page_context, templates
from app.dashboard.phase import phase_view
from app.domain import meanfield
from app.domain.numbers import json_safe
from app.schemas.common import NOT_FOUND
from app.schemas.phase import MeanFieldTable, PhaseView
from app.storage import studies

router = APIRouter()
Metric = Annotated[Literal[METRICS], Query(description="the metric of each cell: final training accuracy by default")]
TrainableDepth = Annotated[float, Query(gt=0, le=100, allow_inf_nan=False,
                                        description="c of the trainable-depth curve c·ξ_c (Schoenholz et al.: 6)")]
Variance = Annotated[float, Query(ge=0, le=100, allow_inf_nan=False)]


def _study_phase(study_id: int, metric: str, c: float) -> dict:
    spec = found(studies.study_spec(study_id), f"study {study_id}")
    return found(phase_view(study_id, spec, metric, c), f"a phase diagram of study {study_id} (not a weight-variance sweep)")


@router.get("/api/studies/{study_id}/phase", response_model=PhaseView, tags=["analysis"], responses=NOT_FOUND)
def study_phase(study_id: StudyId, metric: Metric = DEFAULT_METRIC, c: TrainableDepth = 6.0) -> JSONResponse:
    """A weight-variance sweep's cells (σ_w², σ_b², depth: the metric over seeds) and its mean-field theory."""
    return JSONResponse(_study_phase(study_id, metric, c))


@router.get("/api/theory/mean-field", response_model=MeanFieldTable, tags=["analysis"])
def mean_field(activation: Annotated[Literal[meanfield.SUPPORTED_ACTIVATIONS], Query()] = "tanh",
               bias_variance: Variance = 0.05,
               weight_variance_max: Annotated[float, Query(gt=0, le=100, allow_inf_nan=False)] = 4.0,
               points: Annotated[int, Query(ge=2, le=200)] = 40) -> JSONResponse:
    """Mean-field theory alone: the critical σ_w² and q*, c*, χ₁, ξ_q, ξ_c on a σ_w² grid."""
    grid = [weight_variance_max * (index + 1) / points for index in range(points)]
    return JSONResponse(json_safe(meanfield.mean_field_table(activation, bias_variance, grid)))


@router.get("/studies/{study_id}/phase", response_class=HTMLResponse, include_in_schema=False)
def phase_page(request: Request, study_id: StudyId) -> HTMLResponse:
    """The phase diagram: the measured metric over σ_w² × depth with the edge of chaos drawn on it."""
    study = studies.get_study(study_id)
    if study is None or "weight_variances" not in study.spec or not study.spec.get("weight_variances"):
        return templates.TemplateResponse(request, "404.html", page_context(
            page="404", message=f"Study {study_id} is not a weight-variance sweep, so it has no phase diagram."),
            status_code=404)
    return templates.TemplateResponse(request, "phase.html", page_context(page="phase", study=study))
