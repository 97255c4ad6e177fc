"""A study's specification: one typed ``StudySpec``, validated once when the study is accepted.

The API validates the request body into a ``StudySpec`` (plus the deployment's limits,
which apply at acceptance only: app/schemas/studies.py), storage keeps its JSON and hands
the parsed spec back to every reader, and the spec answers what each of them needs: the
runs it expands to, each run's layers and which initializer draws each one, the parameter
count, the planned epochs, and the settings a worker trains a run with (``RunSetup``).

Request bodies are strict: a JSON API refuses ``true`` or ``"3"`` where a number belongs,
with a 422 that names the field (pydantic's strict mode). Initializer references may be
written as an id (``"he_normal"``) or as ``{"id": ..., "params": {...}}``; both parse into
``InitializerRef`` (app/domain/refs.py) and nowhere else.

A study names its initializers, or sweeps one scaled law instead (a phase-diagram study:
``weight_variances`` × ``bias_variances`` × ``depths``, Schoenholz et al. 2017): each run's
kernels are drawn with variance σ_w²/fan and its biases with variance σ_b², through the
registry's own custom initializer (``ScaledInitializer``), so no new math lives elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from app.domain.activations import Activation
from app.domain.architecture import Architecture, largest_pooling_steps
from app.domain.datasets import DATASETS, IMAGE_SHAPE
from app.domain.layers import dense_layer_names
from app.domain.blocks import (  # noqa: F401  (re-exported)
    MAX_SEED, DatasetSpec, ModelSpec, Optimizer, TrainingSpec, architecture_of, field_error as _error, layers_of)
from app.domain.run_setup import ZEROS, RunSetup
from app.domain.refs import Initializer, InitializerRef, StrictModel, as_ref, known  # noqa: F401  (re-exported)
from app.domain.registry import REGISTRY, resolve_params



def _distinct(values: list | None, what: str) -> list | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError(f"{what} must be distinct")
    return values


class NamesInitializers(StrictModel):
    """What every request that names initializers checks alike (a study; the signal probe): each
    listed once, and no matrix-only scheme for biases. Subclasses declare the two fields."""

    @field_validator("bias_initializer", check_fields=False)
    @classmethod
    def _bias_capable(cls, ref: InitializerRef) -> InitializerRef:
        if REGISTRY[ref.id].kernel_only:
            raise ValueError(f"initializer {ref.id!r} needs a 2-D kernel and cannot initialize a bias vector")
        return ref

    @field_validator("initializers", check_fields=False)
    @classmethod
    def _distinct_initializers(cls, refs: list[InitializerRef] | None) -> list[InitializerRef] | None:
        if refs is None:
            return refs
        # Compared with the defaults filled in: "random_normal" and random_normal with its
        # default stddev written out draw the same weights, so they would be two identical groups.
        seen: dict[tuple, InitializerRef] = {}
        for ref in refs:
            drawn = (ref.id, tuple(sorted(resolve_params(ref.id, ref.params).items())))
            if drawn in seen:
                raise ValueError(f"each initializer (with its parameters) may be listed once: {seen[drawn].key} "
                                 f"and {ref.key} draw the same weights")
            seen[drawn] = ref
        return refs


class ScaledInitializer(StrictModel):
    """The base law of a weight-variance sweep: kernels of variance σ_w²/n, biases of variance σ_b²."""

    distribution: Literal["normal", "truncated_normal", "uniform"] = "normal"
    mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in"

    def kernel(self, weight_variance: float) -> InitializerRef:
        return InitializerRef(id="custom", params={"distribution": self.distribution, "mode": self.mode,
                                                   "scale": weight_variance})

    def bias(self, bias_variance: float) -> InitializerRef:
        if bias_variance == 0:
            return InitializerRef(id="zeros")
        return InitializerRef(id="custom", params={"distribution": self.distribution, "mode": "none",
                                                   "scale": bias_variance})


@dataclass(frozen=True)
class PlannedRun:
    """One run a study expands to; ``activation``/``depth`` set only in a grid study's cell, the
    variances (and the run's own bias initializer) only in a weight-variance sweep."""

    initializer: InitializerRef
    seed: int
    activation: str | None = None
    depth: int | None = None
    bias: InitializerRef | None = None  # None: the study's bias_initializer
    weight_variance: float | None = None
    bias_variance: float | None = None


Variance = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]


class StudySpec(NamesInitializers):
    name: str = Field(default="untitled study", min_length=1, max_length=200)
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    initializers: list[Initializer] | None = Field(
        default=None, min_length=1, description="the initializers to compare (leave out in a weight-variance sweep)")
    bias_initializer: Initializer = Field(default_factory=lambda: InitializerRef(id="zeros"))
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] = Field(default_factory=lambda: [0], min_length=1)
    activations: list[Activation] | None = Field(
        default=None, min_length=1,
        description="a grid: the runs are repeated for each activation (instead of model.activation)")
    depths: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, min_length=1,
        description="a grid: the runs are repeated for each number of hidden layers, each layer as wide as "
                    "model.hidden_units[0] (instead of model.hidden_units); with residual, each number of "
                    "blocks (the plain first layer, then blocks of two); a cnn's depth is its conv layers "
                    "(as wide as conv_channels[0]), its Dense head kept")

    weight_variances: list[Variance] | None = Field(
        default=None, min_length=1, description="a phase-diagram sweep: one run per σ_w² (kernels of variance "
                                                "σ_w²/fan_in drawn from scaled_initializer) instead of initializers")
    bias_variances: list[Variance] | None = Field(
        default=None, min_length=1, description="with weight_variances: each run's biases have variance σ_b² "
                                                "(0: zeros), instead of bias_initializer")
    scaled_initializer: ScaledInitializer | None = Field(
        default=None, description="the law weight_variances scale (default: normal, fan_in)")

    @field_validator("seeds", "activations", "depths", "weight_variances", "bias_variances")
    @classmethod
    def _distinct_values(cls, values: list | None, info) -> list | None:
        return _distinct(values, info.field_name)

    @model_validator(mode="after")
    def _depths_fit_the_model(self) -> "StudySpec":
        model = self.model
        if not self.depths:
            model.check_stack()
        if self.depths and model.residual and min(self.depths) < 2:
            raise _error("depths", "with residual, a depth counts the plain first layer and then residual blocks: "
                                   "at least 2 (depth 1 would have no residual block)", min(self.depths))
        if self.depths and model.family == "cnn" and model.pooling != "none":
            room = largest_pooling_steps(min(IMAGE_SHAPE[:2]))
            if max(self.depths) > room:
                raise _error("depths", f"a cnn's depth is its conv blocks, each followed by 2×2 pooling: at most "
                                       f"{room} on a 28×28 image (or pooling 'none')", max(self.depths))
        return self

    @model_validator(mode="after")
    def _one_kind_of_initializer_list(self) -> "StudySpec":
        if self.weight_variances is None:
            if self.initializers is None:
                raise _error("initializers", "Field required: name the initializers, or sweep weight_variances", None)
            if self.bias_variances is not None or self.scaled_initializer is not None:
                field = "bias_variances" if self.bias_variances is not None else "scaled_initializer"
                raise _error(field, "applies only with weight_variances", None)
            return self
        if self.initializers is not None:
            raise _error("initializers", "leave out with weight_variances: the scaled law is the study's initializer",
                         None)
        if 0.0 in self.weight_variances:
            raise _error("weight_variances", "a weight variance must be positive", 0.0)
        if self.scaled_initializer is None:
            self.scaled_initializer = ScaledInitializer()
        return self

    # -- what the study expands to --------------------------------------------------

    def grid(self) -> list[tuple[str | None, int | None]]:
        """(activation, depth) of each cell of the study's grid; None: the model's own."""
        return [(activation, depth) for activation in (self.activations or [None]) for depth in (self.depths or [None])]

    def runs(self) -> list[PlannedRun]:
        """Every run, cell by cell, initializer (or σ_b², σ_w²) by initializer, seed by seed (the creation order)."""
        return [PlannedRun(kernel, seed, activation, depth, *variances) for activation, depth in self.grid()
                for kernel, variances in self.choices() for seed in self.seeds]

    def choices(self) -> list[tuple[InitializerRef, tuple]]:
        """The initializer choices of every cell: (kernel initializer, (bias, σ_w², σ_b²) of a sweep or ())."""
        if self.weight_variances is None:
            return [(ref, ()) for ref in self.initializers]
        scaled = self.scaled_initializer
        return [(scaled.kernel(weight), (None if bias is None else scaled.bias(bias), weight, bias))
                for bias in (self.bias_variances or [None]) for weight in self.weight_variances]

    def bias_for(self, bias_variance: float | None) -> InitializerRef:
        """The bias initializer of a run with this σ_b² (None: the study's bias_initializer)."""
        return self.bias_initializer if bias_variance is None else self.scaled_initializer.bias(bias_variance)

    @property
    def planned_epochs(self) -> int:
        return self.training.epochs

    def hidden_units_for(self, depth: int | None) -> list[int]:
        """An MLP's grid depth is that many hidden blocks as wide as the model's first layer; None: its own widths.
        (A CNN's depth sets its convolutions instead; its Dense head stays as written.)"""
        if depth is None or self.model.family == "cnn":
            return list(self.model.hidden_units)
        return [self.model.hidden_units[0]] * layers_of(depth, self.model.residual)

    def conv_channels_for(self, depth: int | None) -> list[int]:
        """A CNN's grid depth is that many conv blocks as wide as its first; an MLP has none."""
        channels = list(self.model.conv_channels or [])
        if depth is None or not channels:
            return channels
        return [channels[0]] * layers_of(depth, self.model.residual)

    def hidden_layers(self, depth: int | None = None) -> int:
        """Hidden layers (convolutions and Dense layers, projections not counted) of a run of the cell with
        ``depth``: what a depth axis plots, since a grid's depth may count blocks or only convolutions."""
        return len(self.architecture(depth).hidden)

    def depth_words(self, depth: int) -> str:
        """A grid depth as its cell says it: "3 layers", or "3 blocks" (residual), "3 conv layers" (cnn)."""
        unit = ("conv " if self.model.family == "cnn" else "") + ("block" if self.model.residual else "layer")
        return f"{depth} {unit}{'s' if depth != 1 else ''}"

    def cell_label(self, activation: str | None = None, depth: int | None = None,
                   bias_variance: float | None = None) -> str | None:
        """A grid cell's label, e.g. "tanh · 3 layers" or "3 blocks · σ_b² 0.05" (None: no grid): the runs a paired
        test may compare, since within a cell only the initial weights differ. One label for every view."""
        cell = [activation] if activation else []
        cell += [self.depth_words(depth)] if depth else []
        cell += [f"σ_b² {bias_variance:g}"] if bias_variance is not None else []
        return " · ".join(cell) or None

    def architecture(self, depth: int | None = None) -> Architecture:
        """The network of one run of the cell with ``depth`` (app/domain/architecture.py)."""
        return architecture_of(self.model, DATASETS[self.dataset.name], self.hidden_units_for(depth),
                             self.conv_channels_for(depth))

    def kernel_shapes(self, depth: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
        """(name, kernel shape) of every layer with a kernel, input to output."""
        return [(layer.name, layer.kernel_shape) for layer in self.architecture(depth).weighted()]

    def layer_shapes(self, depth: int | None = None) -> list[tuple[str, int, int]]:
        """(name, fan_in, units) of every layer with a kernel, input to output (a conv's fan_in is kh·kw·c_in)."""
        return [(name, math.prod(shape[:-1]), shape[-1]) for name, shape in self.kernel_shapes(depth)]

    def parameter_count(self, depth: int | None = None) -> int:
        """Weights and biases of one run's network (and its normalizations' scales and offsets)."""
        return self.architecture(depth).parameter_count()

    def scheme(self, initializer: InitializerRef, layer: str, kind: str,
               bias_variance: float | None = None, depth: int | None = None) -> InitializerRef:
        """Which initializer draws a run's ``kind`` ("kernel" or "bias") tensor of ``layer``."""
        if kind == "bias":
            return self.bias_for(bias_variance)
        if self.model.zero_init_residual and self.model.normalization == "none" and layer in {
                end.layer.name for end in self.architecture(depth).residual_ends()}:
            return ZEROS
        if layer == dense_layer_names(0)[-1] and self.model.output_initializer is not None:
            return self.model.output_initializer
        return initializer

    def setup(self, run_id: int, initializer: InitializerRef, seed: int, activation: str | None = None,
              depth: int | None = None, bias_variance: float | None = None) -> "RunSetup":
        """What a worker trains run ``run_id`` with."""
        return RunSetup(
            run_id=run_id, seed=seed, dataset=self.dataset, hidden_units=tuple(self.hidden_units_for(depth)),
            activation=activation or self.model.activation, dropout=self.model.dropout, training=self.training,
            kernel=initializer, bias=self.bias_for(bias_variance), output=self.model.output_initializer or initializer,
            family=self.model.family, conv_channels=tuple(self.conv_channels_for(depth)),
            kernel_size=self.model.kernel_size or 3, pooling=self.model.pooling or "none",
            normalization=self.model.normalization, residual=self.model.residual,
            zero_init_residual=self.model.zero_init_residual,
        )


def run_setup(run_id: int = 0, seed: int = 0, *, initializer: Any = "glorot_uniform", initializer_params=None,
              bias_initializer: Any = "zeros", bias_initializer_params=None, output_initializer: Any = None,
              output_initializer_params=None, **flat: Any) -> RunSetup:
    """A RunSetup from flat settings, through a one-run StudySpec: for scripts, benchmarks and tests.

    ``flat`` takes the fields of the spec's dataset (``dataset`` is its name), model and training blocks.
    """
    blocks: dict[str, dict[str, Any]] = {"dataset": {}, "model": {}, "training": {}}
    for name, value in flat.items():
        block = ("dataset" if name in DatasetSpec.model_fields or name == "dataset" else
                 "model" if name in ModelSpec.model_fields else "training" if name in TrainingSpec.model_fields else None)
        if block is None:
            raise TypeError(f"unknown setting {name!r}")
        blocks[block]["name" if name == "dataset" else name] = list(value) if isinstance(value, tuple) else value

    def ref(init_id, params):
        return None if init_id is None else {"id": init_id, "params": dict(params or {})}

    blocks["model"]["output_initializer"] = ref(output_initializer, output_initializer_params)
    spec = StudySpec.model_validate({**blocks, "initializers": [ref(initializer, initializer_params)],
                                     "bias_initializer": ref(bias_initializer, bias_initializer_params), "seeds": [seed]},
                                    strict=False)
    return spec.setup(run_id, spec.initializers[0], seed)
