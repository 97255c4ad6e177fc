"""Read endpoints of the study page: summary and curves, gradients, shared-edge histograms,
percentile bands, study comparison, and what the new-study form needs (limits, presets).

Answers are built by dashboard_data.py and serialized by pydantic straight to JSON bytes
(``_json``): the views are large lists of floats, and skipping FastAPI's second validation
pass keeps them inside the page's 50 ms budget. The live event stream is in dashboard_events.py.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import AfterValidator, BaseModel

from app.api import dashboard_data as data
from app.api import dashboard_events
from app.schemas import COMMON_RESPONSES, NOT_FOUND, EntityId, StudyCreate
from app.schemas_dashboard import (
    CompareView, GradientView, HistogramView, Limits, Preset, RunHistograms, RunPercentiles, StudySummaryView,
)
from app.settings import get_settings
from app.storage import views
from worker.training.initializers import REGISTRY

router = APIRouter(prefix="/api", tags=["dashboard"], responses=COMMON_RESPONSES)
router.include_router(dashboard_events.router)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Kind = Literal["kernel", "bias", "gradient"]
Epoch = Annotated[int, Query(ge=0, le=2**31 - 1, description="0 = at initialization")]
MaxPoints = Annotated[int, Query(ge=2, le=2000, description="at most this many epochs per series")]
Bins = Annotated[int, Query(ge=4, le=256, description="bins of the shared edges")]
Range = Annotated[Literal["full", "robust"], Query(
    description="full: min..max over the study; robust: mean +- 4 std per tensor, values outside counted apart")]


def _known_baseline(key: str | None) -> str | None:
    # A group key is an initializer id, plus "(name=value,...)" when it has parameters.
    if key is not None and key.split("(", 1)[0] not in REGISTRY:
        raise ValueError(f"unknown initializer {key.split('(', 1)[0]!r}; known: {', '.join(REGISTRY)}")
    return key


Baseline = Annotated[str | None, Query(
    max_length=200, pattern=r"^[A-Za-z0-9_]+(\(.*\))?$",
    description="group key the differences are against, e.g. he_normal or random_normal(stddev=0.01); when the "
                "study lacks it: he_normal for the ReLU family, glorot_uniform otherwise, else the best ranked"),
    AfterValidator(_known_baseline)]
Threshold = Annotated[float, Query(gt=0, le=100, allow_inf_nan=False,
                                   description="validation accuracy in percent for epochs_to_threshold")]
STUDY_LIMITS = ("max_hidden_layers", "max_hidden_units", "max_epochs", "max_runs_per_study", "max_seeds",
                "max_train_samples", "max_parameters")


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


def _found(value: Any, what: str) -> Any:
    if value is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found")
    return value


def _study_of_run(run_id: int) -> int:
    return _found(views.run_study_id(run_id), f"run {run_id}")


@router.get("/studies/{study_id}/summary", response_model=StudySummaryView, responses=NOT_FOUND)
def study_summary(study_id: EntityId, max_points: MaxPoints = 200, runs: bool = True, baseline: Baseline = None,
                  threshold: Threshold = 90.0,
                  stats: Annotated[bool, Query(description="include the seed-paired statistics (bootstrap: "
                                                           "the slow part; the charts ask without)")] = True,
                  ) -> Response:
    """Per initializer: verdict, mean/band curves, and seed-paired statistics (bootstrap CIs, paired difference
    against a baseline, epochs to a validation-accuracy threshold, ranking); ``statistics`` says how."""
    summary = data.study_summary(study_id, max_points, with_runs=runs, with_stats=stats, baseline=baseline,
                                 threshold=threshold)
    return _json(_found(summary, f"study {study_id}"))


@router.get("/studies/{study_id}/gradients", response_model=GradientView, responses=NOT_FOUND)
def study_gradients(study_id: EntityId, max_points: MaxPoints = 200) -> Response:
    """Per layer and initializer: the probe gradient's L2 norm over epochs (mean and band over seeds)."""
    return _json(_found(data.gradient_view(study_id, max_points), f"study {study_id}"))


@router.get("/studies/{study_id}/histograms", response_model=HistogramView, responses=NOT_FOUND)
def study_histograms(study_id: EntityId, epoch: Epoch, kind: Kind = "kernel", bins: Bins = 64,
                     range: Range = "full") -> Response:
    """Every run's histogram at one epoch, per layer, on edges shared by all runs and epochs of the study."""
    _found(views.study_header(study_id), f"study {study_id}")
    return _json(data.histogram_view(study_id, kind, epoch, bins, range == "robust"))


@router.get("/runs/{run_id}/histograms", response_model=RunHistograms, responses=NOT_FOUND)
def run_histograms(run_id: EntityId, layer: str, kind: Kind = "kernel", bins: Bins = 64, range: Range = "full") -> Response:
    """One run and layer at every epoch on the study's shared edges (the heatmap over epochs)."""
    study_id = _study_of_run(run_id)
    return _json(_found(data.run_histograms(run_id, study_id, layer, kind, bins, range == "robust"), f"layer {layer!r}"))


@router.get("/runs/{run_id}/percentiles", response_model=RunPercentiles, responses=NOT_FOUND)
def run_percentiles(run_id: EntityId, layer: str, kind: Kind = "kernel") -> Response:
    """TensorBoard's distribution bands: min, 7, 16, 31, 50, 69, 84, 93 %, max at every epoch."""
    _study_of_run(run_id)
    return _json(data.run_percentiles(run_id, layer, kind))


@router.get("/compare", response_model=CompareView, responses=NOT_FOUND)
def compare(ids: Annotated[str, Query(pattern=r"^\d{1,10}(,\d{1,10}){0,11}$", description="study ids, e.g. 1,2")],
            max_points: MaxPoints = 200) -> Response:
    """Two or more studies' verdicts and mean curves, side by side (up to 12)."""
    found = []
    for study_id in dict.fromkeys(int(part) for part in ids.split(",")):
        summary = (data.study_summary(study_id, max_points, with_runs=False, with_stats=False)
                   if 0 < study_id < 2**31 else None)
        found.append(_found(summary, f"study {study_id}"))
    return _json(CompareView(studies=found))


def _constraints(schema: dict[str, Any], defs: dict[str, Any], prefix: str, out: dict[str, dict[str, Any]]) -> None:
    """Flatten a JSON schema into dotted field -> constraints (nullable fields say so)."""
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        if "$ref" in prop:
            _constraints(defs[prop["$ref"].rsplit("/", 1)[1]], defs, f"{path}.", out)
            continue
        options = prop.get("anyOf", [prop])
        concrete = [option for option in options if option.get("type") != "null"]
        if len(concrete) != 1:
            continue
        keep = {key: value for key, value in concrete[0].items() if key not in ("title", "description", "default")}
        if "anyOf" in keep.get("items", {}):
            del keep["items"]  # initializer refs: checked against the registry, not by bounds
        if len(options) > len(concrete):
            keep["nullable"] = True
        out[path] = keep


@router.get("/limits", response_model=Limits)
def limits() -> Limits:
    """What POST /api/studies accepts: the INITLAB_MAX_* settings and every field's bounds."""
    settings = get_settings()
    in_force = {name: int(getattr(settings, name)) for name in STUDY_LIMITS if hasattr(settings, name)}
    schema = StudyCreate.model_json_schema()
    fields: dict[str, dict[str, Any]] = {}
    _constraints(schema, schema.get("$defs", {}), "", fields)
    fields["training.epochs"]["maximum"] = in_force["max_epochs"]
    fields["model.hidden_units"]["maxItems"] = in_force["max_hidden_layers"]
    fields["model.hidden_units"]["items"] = {**fields["model.hidden_units"].get("items", {}),
                                             "maximum": in_force["max_hidden_units"]}
    fields["seeds"]["maxItems"] = in_force["max_seeds"]
    if "max_train_samples" in in_force:
        fields["dataset.train_samples"]["maximum"] = in_force["max_train_samples"]
    return Limits(settings=in_force, fields=fields)


@lru_cache
def _presets() -> tuple[Preset, ...]:
    found = []
    for preset_id, file, description in (
        ("seed-001", "seed-mnist.json", "TensorFlow's tutorial: MNIST, Dense 128-64 ReLU, four initializers, 3 seeds."),
        ("seed-000", "seed-fashion.json", "The W&B report: Fashion-MNIST, dropout + dense, six initializers, 3 seeds."),
    ):
        path = EXAMPLES / file
        if path.is_file():
            study = json.loads(path.read_text())
            found.append(Preset(id=preset_id, name=study.get("name", file), description=description, study=study))
    found.append(Preset(
        id="activation-grid", name="activation × initializer (seed 001's table)",
        description="Seed 001's recommendation table, measured: Glorot vs He under relu, leaky_relu, tanh, sigmoid "
                    "and linear, 3 seeds each, shown as a heatmap of final validation accuracy.",
        study={"name": "activation x initializer",
               "dataset": {"name": "mnist", "train_samples": 10000, "validation_samples": 5000},
               "model": {"hidden_units": [128, 64], "activation": "relu", "dropout": 0.0, "output_initializer": None},
               "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 5},
               "initializers": ["glorot_uniform", "he_normal"], "bias_initializer": "zeros", "seeds": [0, 1, 2],
               "activations": ["relu", "leaky_relu", "tanh", "sigmoid", "linear"]}))
    found.append(Preset(
        id="deep-10", name="deep network: 10 hidden layers",
        description="Seed 001's exercise: ten ReLU layers of 64, where a too-small normal makes gradients vanish "
                    "and He keeps them alive. 20000 training images to keep it quick.",
        study={"name": "deep network: 10 hidden layers",
               "dataset": {"name": "mnist", "train_samples": 20000, "validation_samples": 5000},
               "model": {"hidden_units": [64] * 10, "activation": "relu", "dropout": 0.0, "output_initializer": None},
               "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 10},
               "initializers": [{"id": "random_normal", "params": {"stddev": 0.01}}, "glorot_uniform", "he_normal"],
               "bias_initializer": "zeros", "seeds": [0, 1, 2]}))
    return tuple(found)


@router.get("/presets", response_model=list[Preset])
def presets() -> list[Preset]:
    """Ready-made studies for the form: seed 001's and seed 000's comparisons, and a deep network."""
    return list(_presets())
