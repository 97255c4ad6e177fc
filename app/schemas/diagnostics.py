"""The signal-propagation probe: its request (within this deployment's cost limits) and its answer."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from app.domain.limits import limit_problems
from app.domain.probe import SignalProbeSpec
from app.schemas.common import plain_json
from app.schemas.studies import limits_error, study_limits
from app.settings import get_settings

# Variances of an exploding network overflow: they travel as "Infinity"/"NaN", like a diverged run's loss.
Measure = Annotated[float, WithJsonSchema({"anyOf": [
    {"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]})]


class SignalRequest(SignalProbeSpec):
    """A signal-propagation question whose cost stays within this deployment's bounds."""

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        return plain_json(data, cls.__name__)

    @model_validator(mode="after")
    def _bounded_cost(self) -> "SignalRequest":
        """A study's limits on the network (layers, units, channels, parameters, training samples),
        then the probe's own: weights and activations of all its networks at once."""
        settings = get_settings()
        study = self.study()
        problems = limit_problems(study, replace(study_limits(settings), worker_memory=None))
        if problems:
            raise limits_error("SignalRequest", problems)
        architecture = study.architecture()
        weights = architecture.parameter_count()
        if weights * len(self.initializers) > settings.max_probe_weights:
            raise limits_error("SignalRequest", [("initializers", (
                f"{len(self.initializers)} networks of {weights:,} weights exceed the probe's limit of "
                f"{settings.max_probe_weights:,} weights in all (INITLAB_MAX_PROBE_WEIGHTS); use fewer initializers "
                "or smaller layers"))])
        samples = min(self.probe_samples, self.dataset.train_samples or self.probe_samples)
        values = architecture.activation_values()  # a plain MLP's: the sum of its hidden units
        activations = samples * values * len(self.initializers)  # every network's, held at once
        if activations > settings.max_probe_activations:
            raise limits_error("SignalRequest", [("probe_samples", (
                f"{samples} samples × {values:,} hidden-layer values × {len(self.initializers)} networks are "
                f"{activations:,} activations, more than {settings.max_probe_activations:,} "
                "(INITLAB_MAX_PROBE_ACTIVATIONS); use fewer samples, initializers or smaller layers"))])
        return self


class LayerSignal(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")

    layer: str = Field(description="the hidden layers as a study's records name them (conv_0 …, dense_0 …), then output")
    index: int = Field(description="1 = the first hidden layer; depth + 1 = the output layer")
    units: int
    activation_variance: Measure = Field(description="variance of the layer's output (logits for the output layer)")
    preactivation_variance: Measure
    gradient_variance: Measure = Field(description="variance of d(each sample's loss)/d(pre-activation)")
    dead_fraction: Measure | None = Field(description="ReLU layers: share of units that are 0 on every probe sample "
                                                      "(the failure tags' definition); null for other activations")
    constant_fraction: Measure = Field(description="share of units whose output is the same on every probe sample, "
                                                   "whatever the activation (NaN when the layer overflowed)")


class InitializerSignal(BaseModel):
    id: str
    params: dict[str, float | str | None]
    name: str
    seconds: float = Field(description="this network's share of the time to build and probe the request's networks "
                                       "(they are built and probed together, one slice each)")
    layers: list[LayerSignal]


class SignalResponse(BaseModel):
    dataset: str
    activation: str
    depth: int = Field(description="hidden layers (convolutions and Dense layers; the output layer not counted)")
    probe_samples: int = Field(description="samples in the probe batch actually used")
    seed: int
    initializers: list[InitializerSignal]


class ProbePending(BaseModel):
    id: int
    status: Literal["queued", "running"]
    poll: str = Field(description="GET this URL for the answer (200) or the status (202)")
