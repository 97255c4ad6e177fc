"""Request and response models of the REST API.

Allowed initializers and data sets come from the worker's registries (which
import no TensorFlow), so the API, the form and the docs can never disagree
with what the worker can build. Limits come from Settings at validation time.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator,
                      model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.settings import get_settings
from worker.training.datasets import DATASETS
from worker.training.initializers import REGISTRY, ParamError, ParamValue, normalize_params

# SQLite hands datetimes back without a zone; every stored time is UTC.
UtcDatetime = Annotated[datetime, AfterValidator(lambda d: d if d.tzinfo else d.replace(tzinfo=timezone.utc))]

Activation = Literal["relu", "tanh", "sigmoid", "leaky_relu", "elu", "selu", "linear"]
# "diverged" is terminal: the loss became NaN or infinite (a result, not a failure).
RunStatus = Literal["queued", "running", "succeeded", "diverged", "failed", "cancelled"]
TERMINAL_STATUSES = ("succeeded", "diverged", "failed", "cancelled")


def _known_initializer(value: str) -> str:
    if value not in REGISTRY:
        raise ValueError(f"unknown initializer {value!r}; known: {', '.join(REGISTRY)}")
    return value


def _known_dataset(value: str) -> str:
    if value not in DATASETS:
        raise ValueError(f"unknown data set {value!r}; known: {', '.join(DATASETS)}")
    return value


InitializerId = Annotated[
    str, AfterValidator(_known_initializer), WithJsonSchema({"type": "string", "enum": list(REGISTRY)})
]
DatasetName = Annotated[
    str, AfterValidator(_known_dataset), WithJsonSchema({"type": "string", "enum": list(DATASETS)})
]


# Database ids: 32-bit on PostgreSQL, so anything larger is a 422, not a 500.
EntityId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class ErrorMessage(BaseModel):
    detail: str


# Responses every write or lookup may give besides its success, for the OpenAPI schema.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "missing or invalid bearer token (when INITLAB_API_TOKEN is set)"},
    503: {"model": ErrorMessage, "description": "database or broker temporarily unavailable; retry"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorMessage, "description": "no such study or run"}}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitializerChoice(Strict):
    id: InitializerId
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="numbers for most; the custom initializer's distribution and mode are "
        "strings and its clip_sigma may be null (GET /api/initializers lists each one's rules)")

    @model_validator(mode="after")
    def _params_are_valid(self) -> "InitializerChoice":
        # The registry's own check (no TensorFlow): unknown names, non-finite values,
        # minval >= maxval, stddev <= 0, an unknown distribution ... all refused here, not
        # on a worker. A rule of one parameter is reported at params.<name>.
        try:
            self.params = normalize_params(self.id, self.params)
        except ParamError as error:
            if error.param is None:
                raise ValueError(str(error)) from None
            raise ValidationError.from_exception_data("InitializerChoice", [InitErrorDetails(
                type=PydanticCustomError("initializer_param", "{message}", {"message": str(error)}),
                loc=("params", error.param), input=self.params.get(error.param))]) from None
        return self

    @property
    def key(self) -> tuple[str, tuple[tuple[str, ParamValue], ...]]:
        return self.id, tuple(sorted(self.params.items()))


def _as_choice(value: Any) -> Any:
    return {"id": value} if isinstance(value, str) else value


InitializerRef = Annotated[InitializerChoice, WithJsonSchema({
    "anyOf": [{"type": "string", "enum": list(REGISTRY)}, InitializerChoice.model_json_schema()],
})]


class DatasetSpec(Strict):
    name: DatasetName = "fashion_mnist"
    train_samples: int | None = Field(default=None, ge=10, description="seeded stratified subset; null = all")
    validation_samples: int | None = Field(default=None, ge=10, description="subset of the test split; null = all")
    subset_seed: int = Field(default=0, ge=0, description="seed of the subset, shared by every run of the study")

    @field_validator("train_samples")
    @classmethod
    def _train_samples_within_limit(cls, value: int | None) -> int | None:
        limit = get_settings().max_train_samples
        if value is not None and value > limit:
            raise ValueError(f"at most {limit} training samples (INITLAB_MAX_TRAIN_SAMPLES)")
        return value


class ModelSpec(Strict):
    hidden_units: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [128, 64], min_length=1)
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    output_initializer: InitializerRef | None = Field(
        default=None, description="initializer of the output layer; null = the run's initializer"
    )

    @field_validator("output_initializer", mode="before")
    @classmethod
    def _coerce_output(cls, value: Any) -> Any:
        return _as_choice(value)

    @field_validator("hidden_units")
    @classmethod
    def _within_limits(cls, units: list[int]) -> list[int]:
        settings = get_settings()
        if len(units) > settings.max_hidden_layers:
            raise ValueError(f"at most {settings.max_hidden_layers} hidden layers (INITLAB_MAX_HIDDEN_LAYERS)")
        if max(units) > settings.max_hidden_units:
            raise ValueError(f"at most {settings.max_hidden_units} units per layer (INITLAB_MAX_HIDDEN_UNITS)")
        return units


class TrainingSpec(Strict):
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = Field(default=0.001, gt=0.0, le=10.0)
    batch_size: int = Field(default=128, ge=1, le=65536)
    epochs: int = Field(default=10, ge=1)
    stop_on_divergence: bool = Field(
        default=True, description="end a run as `diverged` right after recording the first epoch whose "
        "loss or val_loss is NaN or infinite (false: train every epoch, still ending `diverged`)")

    @field_validator("epochs")
    @classmethod
    def _epochs_within_limit(cls, epochs: int) -> int:
        limit = get_settings().max_epochs
        if epochs > limit:
            raise ValueError(f"at most {limit} epochs (INITLAB_MAX_EPOCHS)")
        return epochs


class NamesInitializers(Strict):
    """What every request that names initializers checks alike (a study; the signal-propagation probe):
    ids or {id, params} accepted, each listed once, and no matrix-only scheme for biases.
    Subclasses declare the ``initializers`` and ``bias_initializer`` fields."""

    @field_validator("initializers", mode="before", check_fields=False)
    @classmethod
    def _coerce_refs(cls, value: Any) -> Any:
        return [_as_choice(item) for item in value] if isinstance(value, list) else value

    @field_validator("bias_initializer", mode="before", check_fields=False)
    @classmethod
    def _coerce_bias(cls, value: Any) -> Any:
        return _as_choice(value)

    @field_validator("bias_initializer", check_fields=False)
    @classmethod
    def _bias_capable(cls, ref: InitializerChoice) -> InitializerChoice:
        if REGISTRY[ref.id].kernel_only:
            raise ValueError(f"initializer {ref.id!r} needs a 2-D kernel and cannot initialize a bias vector")
        return ref

    @field_validator("initializers", check_fields=False)
    @classmethod
    def _distinct_initializers(cls, refs: list[InitializerChoice]) -> list[InitializerChoice]:
        keys = [ref.key for ref in refs]
        if len(set(keys)) != len(keys):
            raise ValueError("each initializer (with its parameters) may be listed once")
        return refs


class StudyCreate(NamesInitializers):
    name: str = Field(default="untitled study", min_length=1, max_length=200)
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    initializers: list[InitializerRef] = Field(min_length=1)
    bias_initializer: InitializerRef = Field(default_factory=lambda: InitializerChoice(id="zeros"))
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(default_factory=lambda: [0], min_length=1)
    activations: list[Activation] | None = Field(
        default=None, min_length=1,
        description="a grid: the runs are repeated for each activation (instead of model.activation)")
    depths: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, min_length=1,
        description="a grid: the runs are repeated for each number of hidden layers, each layer as wide as "
                    "model.hidden_units[0] (instead of model.hidden_units)")

    @field_validator("activations")
    @classmethod
    def _distinct_activations(cls, activations: list[str] | None) -> list[str] | None:
        if activations is not None and len(set(activations)) != len(activations):
            raise ValueError("activations must be distinct")
        return activations

    @field_validator("depths")
    @classmethod
    def _depths_within_limit(cls, depths: list[int] | None) -> list[int] | None:
        if depths is None:
            return depths
        if len(set(depths)) != len(depths):
            raise ValueError("depths must be distinct")
        limit = get_settings().max_hidden_layers
        if max(depths) > limit:
            raise ValueError(f"at most {limit} hidden layers (INITLAB_MAX_HIDDEN_LAYERS)")
        return depths

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        if len(seeds) > get_settings().max_seeds:
            raise ValueError(f"at most {get_settings().max_seeds} seeds (INITLAB_MAX_SEEDS)")
        return seeds

    @model_validator(mode="after")
    def _within_limits(self) -> "StudyCreate":
        settings = get_settings()
        runs = len(self.initializers) * len(self.seeds) * len(self.grid())
        if runs > settings.max_runs_per_study:
            raise ValueError(f"{runs} runs (initializers x seeds x activations x depths) exceed the limit of "
                             f"{settings.max_runs_per_study} (INITLAB_MAX_RUNS_PER_STUDY)")
        parameters = max(self.parameter_count(depth) for _, depth in self.grid())
        if parameters > settings.max_parameters:
            field = "depths" if self.depths else "model.hidden_units"
            raise ValueError(f"{field}: the model has {parameters:,} parameters, more than the limit of "
                             f"{settings.max_parameters:,} (INITLAB_MAX_PARAMETERS)")
        return self

    def grid(self) -> list[tuple[str | None, int | None]]:
        """(activation, depth) of each cell of the study's grid; None: the model's own."""
        return [(activation, depth) for activation in (self.activations or [None]) for depth in (self.depths or [None])]

    def hidden_units_for(self, depth: int | None) -> list[int]:
        """A grid depth is that many layers as wide as the model's first; None: the model's own widths."""
        return list(self.model.hidden_units) if depth is None else [self.model.hidden_units[0]] * depth

    def parameter_count(self, depth: int | None = None) -> int:
        info = DATASETS[self.dataset.name]
        widths = [info.input_dim, *self.hidden_units_for(depth), info.num_classes]
        return sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(widths, widths[1:]))


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    study_id: int
    initializer: str
    initializer_params: dict[str, ParamValue]
    seed: int
    activation: str | None = Field(default=None, description="this run's activation in a grid study (null: model.activation)")
    depth: int | None = Field(default=None, description="this run's hidden layers in a grid study (null: model.hidden_units)")
    status: RunStatus
    epoch: int
    epochs: int
    batch: int
    batches: int
    error: str | None
    diverged_epoch: int | None = None
    worker_host: str | None
    device: str | None
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
    runs: list[RunPublic]


class Numbers(BaseModel):
    """Floats may be NaN or Inf (a diverged run); JSON carries them as "NaN"/"Infinity"."""

    model_config = ConfigDict(ser_json_inf_nan="strings", from_attributes=True)


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


class RunLayers(BaseModel):
    run_id: int
    epoch: int
    available_epochs: list[int]
    layers: list[LayerStats]
