"""One run as the training core sees it (``RunSetup``), made by ``StudySpec.setup``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.architecture import Architecture, Weighted, build_architecture
from app.domain.blocks import DatasetSpec, TrainingSpec
from app.domain.datasets import DATASETS
from app.domain.refs import InitializerRef

ZEROS = InitializerRef(id="zeros")

@dataclass(frozen=True)
class RunSetup:
    """One run as the training core sees it: settings of a spec already validated, never checked again."""

    run_id: int
    seed: int
    dataset: DatasetSpec
    hidden_units: tuple[int, ...]
    activation: str
    dropout: float
    training: TrainingSpec
    kernel: InitializerRef  # hidden layers' kernels
    bias: InitializerRef  # every bias
    output: InitializerRef  # the output layer's kernel
    family: str = "mlp"
    conv_channels: tuple[int, ...] = ()
    kernel_size: int = 3
    pooling: str = "none"
    normalization: str = "none"
    residual: bool = False
    zero_init_residual: bool = False

    @property
    def epochs(self) -> int:
        return self.training.epochs

    @property
    def depth(self) -> int:
        """Hidden layers with a kernel: convolutions and Dense layers (the output layer's seed index)."""
        return len(self.conv_channels) + len(self.hidden_units)

    def architecture(self) -> Architecture:
        return build_architecture(
            family=self.family, image=DATASETS[self.dataset.name].image_shape,
            classes=DATASETS[self.dataset.name].num_classes, hidden_units=list(self.hidden_units),
            conv_channels=list(self.conv_channels), kernel_size=self.kernel_size, pooling=self.pooling,
            normalization=self.normalization, residual=self.residual)

    def kernel_of(self, layer_index: int) -> InitializerRef:
        """The kernel initializer of hidden layer ``layer_index`` (or a projection there); the output's last."""
        return self.output if layer_index == self.depth else self.kernel

    def kernel_for(self, layer: Weighted) -> InitializerRef:
        """The initializer of ``layer``'s kernel: the run's, but zeros for a residual block's last
        kernel under ``zero_init_residual`` without normalization (with one, its scale starts at 0)."""
        if (self.zero_init_residual and self.normalization == "none" and not layer.projection
                and layer.name in {end.layer.name for end in self.architecture().residual_ends()}):
            return ZEROS
        return self.kernel_of(layer.seed_index)

    def shared(self) -> dict[str, Any]:
        """What runs must share to train as one model (all but the id, seed and initializers), by name."""
        return {**{f"dataset.{name}": value for name, value in self.dataset.model_dump().items()},
                "hidden_units": self.hidden_units, "activation": self.activation, "dropout": self.dropout,
                "family": self.family, "conv_channels": self.conv_channels, "kernel_size": self.kernel_size,
                "pooling": self.pooling, "normalization": self.normalization, "residual": self.residual,
                "zero_init_residual": self.zero_init_residual,
                **{f"training.{name}": value for name, value in self.training.model_dump().items()}}
