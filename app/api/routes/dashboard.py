"""Read endpoints of the study page: summary and curves, gradients, shared-edge histograms,
percentile bands, study comparison, and what the new-study form needs (limits, presets).

Answers are built by app/dashboard/ and serialized by pydantic straight to JSON bytes
(``deps.as_json``): the views are large lists of floats, and skipping FastAPI's second validation
pass keeps them inside the page's 50 ms budget. The live event stream is in events.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator

from app.api.deps import RunId, StudyId, as_json, existing_study, found, study_of_run
from app.dashboard import form, histograms
from app.dashboard import summary as data
from app.domain.layers import TENSOR_KINDS
from app.domain.registry import REGISTRY
from app.schemas.common import COMMON_RESPONSES, NOT_FOUND, plain_text
from app.schemas.dashboard import (
    CompareView, GradientView, HistogramView, Limits, Preset, RunHistograms, RunPercentiles, StudySummaryView,
)

router = APIRouter(prefix="/api", tags=["dashboard"], responses=COMMON_RESPONSES)

Kind = Literal[TENSOR_KINDS]
Epoch = Annotated[int, Query(ge=0, le=2**31 - 1, description="0 = at initialization")]
MaxPoints = Annotated[int, Query(ge=2, le=2000, description="at most this many epochs per series")]
Bins = Annotated[int, Query(ge=4, le=256, description="bins of the shared edges")]
Range = Annotated[Literal["full", "robust"], Query(
    description="full: min..max over the study; robust: mean +- 4 std per tensor, values outside counted apart")]


# A group key is a registry id, plus "(name=value,...)" when it has parameters. The schema's pattern
# names the ids, so it refuses what the API refuses; the API says which rule a key broke.
BASELINE_PATTERN = rf"^(?:{'|'.join(re.escape(init_id) for init_id in REGISTRY)})(?:\([^\x00-\x1f\x7f-\x9f]*\))?$"
KEY_FORM = r"^[A-Za-z0-9_]+(\([^\x00-\x1f\x7f-\x9f]*\))?$"


def _known_baseline(key: str | None) -> str | None:
    if key is None or re.fullmatch(BASELINE_PATTERN, key):
        return key
    if re.fullmatch(KEY_FORM, key):
        raise ValueError(f"unknown initializer {key.split('(', 1)[0]!r}; known: {', '.join(REGISTRY)}")
    raise ValueError(f"String should match pattern '{KEY_FORM}' (an initializer id, then its parameters in parentheses)")


Baseline = Annotated[str | None, Query(
    max_length=200, json_schema_extra={"pattern": BASELINE_PATTERN},
    description="group key the differences are against: an initializer id, e.g. he_normal, or with its parameters, "
                "e.g. random_normal(stddev=0.01); when the study lacks it: he_normal for the ReLU family, "
                "glorot_uniform otherwise, else the first in the study's order"), AfterValidator(_known_baseline)]
# dense_0 ... dense_{depth-1} or output (app/domain/layers.py); a layer the run lacks is a 404.
Layer = Annotated[plain_text(max_length=64), Query(description="dense_0, dense_1, ... or output")]
Threshold = Annotated[float, Query(gt=0, le=100, allow_inf_nan=False,
                                   description="validation accuracy in percent for epochs_to_threshold")]

@router.get("/studies/{study_id}/summary", response_model=StudySummaryView, responses=NOT_FOUND)
def study_summary(study_id: StudyId, max_points: MaxPoints = 200, runs: bool = True, baseline: Baseline = None,
                  threshold: Threshold = 90.0,
                  stats: Annotated[bool, Query(description="include the seed-paired statistics (paired t-tests "
                                                           "and tiers; the charts ask without)")] = True,
                  ) -> Response:
    """Per initializer: verdict, mean/band curves, and seed-paired statistics (t intervals, paired t-test
    against a baseline with the seeds a verdict would need, epochs to a validation-accuracy threshold, tiers); ``statistics`` says how."""
    summary = data.study_summary(study_id, max_points, with_runs=runs, with_stats=stats, baseline=baseline,
                                 threshold=threshold)
    return as_json(found(summary, f"study {study_id}"))


@router.get("/studies/{study_id}/gradients", response_model=GradientView, responses=NOT_FOUND)
def study_gradients(study_id: StudyId, max_points: MaxPoints = 200) -> Response:
    """Per layer and initializer: the probe gradient's L2 norm over epochs (mean and band over seeds)."""
    return as_json(found(data.gradient_view(study_id, max_points), f"study {study_id}"))


@router.get("/studies/{study_id}/histograms", response_model=HistogramView, responses=NOT_FOUND)
def study_histograms(study_id: StudyId, epoch: Epoch, kind: Kind = "kernel", bins: Bins = 64,
                     range: Range = "full") -> Response:
    """Every run's histogram at one epoch, per layer, on edges shared by all runs and epochs of the study."""
    existing_study(study_id)
    return as_json(histograms.histogram_view(study_id, kind, epoch, bins, range == "robust"))


@router.get("/runs/{run_id}/histograms", response_model=RunHistograms, responses=NOT_FOUND)
def run_histograms(run_id: RunId, layer: Layer, kind: Kind = "kernel", bins: Bins = 64,
                   range: Range = "full") -> Response:
    """One run and layer at every epoch on the study's shared edges (the heatmap over epochs)."""
    study_id = study_of_run(run_id)
    return as_json(found(histograms.run_histograms(run_id, study_id, layer, kind, bins, range == "robust"), f"layer {layer!r}"))


@router.get("/runs/{run_id}/percentiles", response_model=RunPercentiles, responses=NOT_FOUND)
def run_percentiles(run_id: RunId, layer: Layer, kind: Kind = "kernel") -> Response:
    """TensorBoard's distribution bands: min, 7, 16, 31, 50, 69, 84, 93 %, max at every epoch."""
    study_id = study_of_run(run_id)
    return as_json(found(histograms.run_percentiles(run_id, study_id, layer, kind), f"layer {layer!r}"))


@router.get("/compare", response_model=CompareView, responses=NOT_FOUND)
def compare(ids: Annotated[str, Query(pattern=r"^\d{1,10}(,\d{1,10}){0,11}$", description="study ids, e.g. 1,2")],
            max_points: MaxPoints = 200) -> Response:
    """Two or more studies' verdicts and mean curves, side by side (up to 12)."""
    studies = []
    for study_id in dict.fromkeys(int(part) for part in ids.split(",")):
        summary = (data.study_summary(study_id, max_points, with_runs=False, with_stats=False)
                   if 0 < study_id < 2**31 else None)
        studies.append(found(summary, f"study {study_id}"))
    return as_json(CompareView(studies=studies))


@router.get("/limits", response_model=Limits)
def limits() -> Limits:
    """What POST /api/studies accepts: the INITLAB_MAX_* settings and every field's bounds."""
    return form.limits()


@router.get("/presets", response_model=list[Preset])
def presets() -> list[Preset]:
    """Ready-made studies for the form: seed 001's and seed 000's comparisons, a grid, a deep network."""
    return list(form.presets())
