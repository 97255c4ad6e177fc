"""A study's blocks: ``dataset``, ``model`` (the network's family, layers, normalization, skips), ``training``.

The model's defaults are the MLP initlab always trained; app/domain/architecture.py turns a valid
block into the network's layers. Every bad combination is a 422 naming the field and the rule.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.domain.activations import Activation
from app.domain.architecture import Architecture, build_architecture, largest_pooling_steps, pooled_blocks
from app.domain.datasets import DATASETS, IMAGE_SHAPE
from app.domain.refs import Initializer, StrictModel, known

MAX_SEED = 2**31 - 1  # stored in 32-bit integer columns (PostgreSQL)
Optimizer = Literal["adam", "sgd"]
Family = Literal["mlp", "cnn"]
Pooling = Literal["max", "avg", "none"]
Normalization = Literal["none", "batchnorm", "layernorm"]


def field_error(field: str, message: str, value: Any) -> ValidationError:
    return ValidationError.from_exception_data("StudySpec", [InitErrorDetails(
        type=PydanticCustomError("value_error", "Value error, {message}", {"message": message}),
        loc=tuple(field.split(".")), input=value)])


def _check_residual(field: str, layers: int) -> None:
    """Residual stacks are a plain first layer and then blocks of two: an odd count, at least 3."""
    if layers < 3 or layers % 2 == 0:
        raise field_error(field, f"with residual, a plain first layer then blocks of two: an odd number of layers, "
                                 f"at least 3 (got {layers})", layers)


def _check_pooling(field: str, conv_layers: int, model: "ModelSpec") -> None:
    """2×2 pooling after each block halves the image side: 28 survives 4 poolings (28, 14, 7, 3, 1)."""
    steps = pooled_blocks(conv_layers, model.residual)
    room = largest_pooling_steps(min(IMAGE_SHAPE[:2]))
    if model.pooling != "none" and steps > room:
        raise field_error(field, f"{steps} conv blocks each followed by 2×2 pooling would shrink the 28×28 image to "
                                 f"nothing: at most {room} blocks with pooling (or pooling 'none')", conv_layers)


def layers_of(depth: int, residual: bool) -> int:
    """Hidden layers of ``depth`` hidden blocks: a residual stack's first block is one layer, the others two."""
    return 2 * depth - 1 if residual else depth


def architecture_of(model: "ModelSpec", info, hidden_units: list[int], conv_channels: list[int]) -> Architecture:
    return build_architecture(family=model.family, image=info.image_shape, classes=info.num_classes,
                              hidden_units=hidden_units, conv_channels=conv_channels,
                              kernel_size=model.kernel_size or 3, pooling=model.pooling or "none",
                              normalization=model.normalization, residual=model.residual)


class DatasetSpec(StrictModel):
    name: Annotated[str, Field(json_schema_extra={"enum": list(DATASETS)})] = "fashion_mnist"
    train_samples: int | None = Field(default=None, ge=10, description="seeded stratified subset; null = all")
    validation_samples: int | None = Field(default=None, ge=10, description="subset of the test split; null = all")
    subset_seed: int = Field(default=0, ge=0, le=MAX_SEED, description="seed of the subset, shared by every run")

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        return known(DATASETS, "data set")(value)

    @model_validator(mode="after")
    def _within_the_data_set(self) -> "DatasetSpec":
        info = DATASETS[self.name]
        for field, size, split in (("train_samples", info.train_size, "training"),
                                   ("validation_samples", info.test_size, "test")):
            value = getattr(self, field)
            if value is not None and value > size:
                raise field_error(field, f"{info.name} has {size} {split} images; at most {size} (null: all)", value)
        return self

    def sizes(self) -> tuple[int, int]:
        """(training, validation) images a run uses: the subsets', else the whole splits'."""
        info = DATASETS[self.name]
        return self.train_samples or info.train_size, self.validation_samples or info.test_size


class ModelSpec(StrictModel):
    """The network; the defaults are the MLP initlab always trained (app/domain/architecture.py says the shape)."""

    family: Family = Field(default="mlp", description="mlp: Dense layers on the flattened image; cnn: Conv2D "
                           "blocks on the 28×28×1 image, then hidden_units as the Dense head")
    hidden_units: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [128, 64], description="the Dense hidden layers (a cnn's head: may be empty)")
    conv_channels: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, description="family cnn: one Conv2D layer per entry, this many channels (required for cnn)")
    kernel_size: int | None = Field(default=None, ge=1, le=7, json_schema_extra={"enum": [1, 3, 5, 7, None]},
                                    description="family cnn: odd side of the convolution kernels, 'same' "
                                    "padding, stride 1 (default 3)")
    pooling: Pooling | None = Field(default=None, description="family cnn: 2×2 pooling after each conv block "
                                    "(default max)")
    normalization: Normalization = Field(default="none", description="after each hidden layer's affine part, "
                                         "before its activation (the output layer stays plain)")
    residual: bool = Field(default=False, description="blocks of two hidden layers with an identity skip (a "
                           "projection where shapes differ); the first layer and the head stay plain")
    zero_init_residual: bool = Field(default=False, description="with residual: each block starts as the identity "
                                     "(Goyal et al. 2017): its last normalization's scale starts at 0, or, without "
                                     "normalization, its last kernel does")
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, allow_inf_nan=False)
    output_initializer: Initializer | None = Field(
        default=None, description="initializer of the output layer; null = the run's initializer")

    @model_validator(mode="after")
    def _one_family(self) -> "ModelSpec":
        if self.zero_init_residual and not self.residual:
            raise field_error("zero_init_residual", "applies only with residual: true", self.zero_init_residual)
        if self.family == "mlp":
            for field in ("conv_channels", "kernel_size", "pooling"):
                if getattr(self, field) is not None:
                    raise field_error(field, "applies only with family cnn", getattr(self, field))
            if not self.hidden_units:
                raise field_error("hidden_units", "an mlp needs at least one hidden layer", self.hidden_units)
            return self
        if not self.conv_channels:
            raise field_error("conv_channels", "family cnn needs at least one convolution, e.g. [16, 32]",
                         self.conv_channels)
        if self.kernel_size is None:
            self.kernel_size = 3
        elif self.kernel_size % 2 == 0:
            raise field_error("kernel_size", "must be odd ('same' padding centres the kernel)", self.kernel_size)
        if self.pooling is None:
            self.pooling = "max"
        return self

    def check_stack(self) -> None:
        """The layer counts of the stack as written: checked by the study only where no depths grid replaces
        the stack (a grid's depths have their own checks), so a grid's base list need not fit these rules."""
        field, layers = (("hidden_units", len(self.hidden_units)) if self.family == "mlp"
                         else ("conv_channels", len(self.conv_channels)))
        if self.residual:
            _check_residual(f"model.{field}", layers)
        if self.family == "cnn":
            _check_pooling(f"model.{field}", layers, self)


class TrainingSpec(StrictModel):
    optimizer: Optimizer = "adam"
    learning_rate: float = Field(default=0.001, gt=0.0, le=10.0, allow_inf_nan=False)
    batch_size: int = Field(default=128, ge=1, le=65536)
    epochs: int = Field(default=10, ge=1)
    stop_on_divergence: bool = Field(
        default=True, description="end a run as `diverged` right after recording the first epoch whose "
        "loss or val_loss is NaN or infinite (false: train every epoch, still ending `diverged`)")
