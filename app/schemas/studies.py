"""Studies and runs: the body of POST /api/studies and what the study and run routes answer.

The body is the domain's ``StudySpec`` (app/domain/spec.py: strict types, the registry's
rules) within this deployment's limits (``INITLAB_MAX_*``), which are checked here, at
acceptance, and never again. Before the spec sees the body, ``plain_json`` refuses a control
character in any string of it and reads an integral ``3.0`` as the integer JSON Schema says it is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.domain.lifecycle import RunStatus
from app.domain.limits import StudyLimits, limit_problems
from app.domain.registry import ParamValue
from app.domain.spec import StudySpec
from app.schemas.common import Numbers, UtcDatetime, plain_json, plain_text
from app.schemas.workers import QueueName
from app.settings import Settings, get_settings


def study_limits(settings: Settings) -> StudyLimits:
    return StudyLimits(**{name: int(getattr(settings, name)) for name in StudyLimits.__dataclass_fields__})


def limits_error(title: str, problems: list[tuple[str, str]]) -> ValidationError:
    """``limit_problems``' answer as one validation error per problem, each at its field (a 422 naming it)."""
    return ValidationError.from_exception_data(title, [InitErrorDetails(
        type=PydanticCustomError("limit", "Value error, {message}", {"message": message}),
        loc=tuple(field.split(".")), input=None) for field, message in problems])


# A study's name: one line of at most 200 characters, not only spaces (a blank link cannot be clicked).
StudyName = plain_text(min_length=1, max_length=200, visible=True)


class StudyCreate(StudySpec):
    """A study to train: a StudySpec within this deployment's limits."""

    name: StudyName = Field(default="untitled study")
    # Where its runs train: a broker queue, not part of the science (kept out of the stored StudySpec).
    queue: QueueName | None = Field(default=None, description=(
        "the broker queue its runs are sent to (e.g. \"gpu\" for the GPU hosts); null: INITLAB_QUEUE. Checked by "
        "the API (422): a live worker must serve it (GET /api/workers lists the served queues); INITLAB_QUEUE is "
        "always accepted"))

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        return plain_json(data, cls.__name__)

    @model_validator(mode="after")
    def _within_limits(self) -> "StudyCreate":
        problems = limit_problems(self, study_limits(get_settings()))
        if problems:
            raise limits_error("StudyCreate", problems)
        return self


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    study_id: int
    initializer: str
    initializer_params: dict[str, ParamValue]
    seed: int
    activation: str | None = Field(default=None, description="this run's activation in a grid study (null: model.activation)")
    depth: int | None = Field(default=None, description="this run's hidden layers in a grid study (null: model.hidden_units)")
    weight_variance: float | None = Field(default=None, description="σ_w² of a weight-variance sweep's run")
    bias_variance: float | None = Field(default=None, description="σ_b² of a weight-variance sweep's run")
    status: RunStatus
    epoch: int
    epochs: int
    batch: int
    batches: int
    error: str | None
    diverged_epoch: int | None = None
    cancel_requested: bool = Field(default=False, description="a cancel was asked and the run's worker has not yet stopped it")
    worker_host: str | None
    device: str | None
    environment: dict[str, Any] | None = Field(
        default=None, description="what trained it besides its spec and seed: backend, library versions, oneDNN, "
                                  "threads, the data's fingerprint (null until it trains); numbers repeat within one")
    attempts: int
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class StudySummary(BaseModel):
    id: int
    name: str
    created_at: UtcDatetime
    status: str
    run_counts: dict[str, int]


class StudyPublic(StudySummary):
    spec: dict[str, Any]
    queue: str | None = Field(default=None, description="the broker queue its runs are sent to (null: a study "
                                                           "stored before queues, sent to INITLAB_QUEUE)")
    runs: list[RunPublic]


class EpochMetrics(Numbers):
    epoch: int
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    seconds: float | None


class RunMetrics(BaseModel):
    run_id: int
    initializer: str
    seed: int
    status: RunStatus
    epochs: list[EpochMetrics]


class StudyMetrics(BaseModel):
    study_id: int
    runs: list[RunMetrics]


class TensorStats(Numbers):
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    l2: float | None
    nonfinite: int
    edges: list[float]
    counts: list[int]


class GradientStats(TensorStats):
    norm: float | None = None


class LayerStats(BaseModel):
    layer: str
    index: int
    kernel: TensorStats | None
    bias: TensorStats | None
    gradient: GradientStats | None
    # A normalization layer (bn_j, ln_j): its scale and offset; BatchNorm's moving statistics.
    gamma: TensorStats | None = None
    beta: TensorStats | None = None
    moving_mean: TensorStats | None = None
    moving_variance: TensorStats | None = None


class RunLayers(BaseModel):
    run_id: int
    epoch: int
    available_epochs: list[int]
    layers: list[LayerStats]
