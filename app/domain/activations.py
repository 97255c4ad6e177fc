"""The activations a study's layers may use, and the families the analysis reasons about.

Names are Keras's own (``keras.activations.get`` builds them on the worker). The families
say what an initializer's derivation assumed: He's variance 2/n assumes half of a ReLU-like
layer's units are off; tanh and sigmoid saturate at their bounds.
"""

from __future__ import annotations

from typing import Literal, get_args

Activation = Literal["relu", "tanh", "sigmoid", "leaky_relu", "elu", "selu", "linear"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
# Units of these output exactly 0 on one side: a unit at 0 on every sample is dead.
DEAD_CAPABLE = ("relu",)
# He's derivation (half the units off) fits these; Glorot's (linear regime) the others.
RELU_FAMILY = ("relu", "leaky_relu", "elu", "gelu", "swish", "silu", "relu6")
# Bounds of the saturating activations: a derivative near 0 close to them.
SATURATING: dict[str, tuple[float, float]] = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}
