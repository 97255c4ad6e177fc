"""The MLP every run trains: flattened image → [Dense → Dropout] × depth → Dense (logits).

The output layer gives logits and every loss is computed ``from_logits`` (``LOSS``): the
softmax then lives inside the loss, as seed 001's ``Dense(10, activation="softmax")``
does on TensorFlow, where Keras quietly takes the logits back from the softmax. Other
backends cannot do that trick and would clip probabilities instead, which changes when
a run diverges; explicit logits give the same numbers on every backend and in fused groups.

Seed 000's "dropout + dense" model and seed 001's 784-128-64-10 ReLU network are both
instances. Keras is imported inside ``build_mlp`` so that ``ACTIVATIONS`` and
``layer_seed`` stay importable by the API without TensorFlow.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

def loss(y_true, logits):
    """Per-sample cross-entropy of integer labels against the output layer's logits."""
    import keras

    return keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)


ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu", "elu", "selu", "linear")

# A factory turns a per-layer seed into a fresh initializer instance.
InitializerFactory = Callable[[int], Any]

_KERNEL, _BIAS, _DROPOUT = 0, 1, 2


def layer_seed(run_seed: int, layer_index: int, role: int) -> int:
    """An independent seed per (layer, role), derived from the run seed.

    A seeded Keras initializer returns the same values on every call, so reusing one
    instance for two layers of the same shape would give them identical weights.
    """
    return int(np.random.SeedSequence([run_seed, layer_index, role]).generate_state(1)[0])


def dense_layer_names(depth: int) -> list[str]:
    """Stable names the pages and storage key on: dense_0 … dense_{depth-1}, then output."""
    return [f"dense_{index}" for index in range(depth)] + ["output"]


def build_mlp(
    *,
    input_dim: int,
    num_classes: int,
    hidden_units: Sequence[int],
    activation: str,
    dropout: float,
    seed: int,
    kernel_initializer: InitializerFactory,
    bias_initializer: InitializerFactory,
    output_initializer: InitializerFactory | None = None,
):
    """A functional Keras model; ``output_initializer`` None means the hidden layers' scheme."""
    import keras

    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{activation}' (known: {', '.join(ACTIVATIONS)})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")

    inputs = keras.Input(shape=(input_dim,), name="pixels")
    hidden = inputs
    names = dense_layer_names(len(hidden_units))
    inits = layer_initializers(len(hidden_units), seed, kernel_initializer, bias_initializer, output_initializer)
    for index, width in enumerate(hidden_units):
        hidden = keras.layers.Dense(
            int(width),
            activation=activation,
            kernel_initializer=inits[index][0],
            bias_initializer=inits[index][1],
            name=names[index],
        )(hidden)
        if dropout > 0:
            hidden = keras.layers.Dropout(
                dropout, seed=dropout_seed(seed, index), name=f"dropout_{index}"
            )(hidden)
    outputs = keras.layers.Dense(
        num_classes,
        activation=None,
        kernel_initializer=inits[-1][0],
        bias_initializer=inits[-1][1],
        name=names[-1],
    )(hidden)
    return keras.Model(inputs, outputs, name="initlab_mlp")


def layer_initializers(
    depth: int,
    seed: int,
    kernel_initializer: InitializerFactory,
    bias_initializer: InitializerFactory,
    output_initializer: InitializerFactory | None = None,
) -> list[tuple[Any, Any]]:
    """(kernel, bias) initializer of each Dense layer of one run, hidden first, output last.

    The one place that decides which seed each layer draws from: a run's own model and
    its slice of a fused model (``fused.build_fused_mlp``) start from the same weights.
    """
    inits = []
    for index in range(depth + 1):
        kernel = output_initializer if index == depth and output_initializer else kernel_initializer
        inits.append((kernel(layer_seed(seed, index, _KERNEL)), bias_initializer(layer_seed(seed, index, _BIAS))))
    return inits


def dropout_seed(run_seed: int, layer_index: int) -> int:
    """The seed of the dropout mask stream after hidden layer ``layer_index``."""
    return layer_seed(run_seed, layer_index, _DROPOUT)


def dense_layers(model) -> list:
    """The model's Dense layers in order, hidden first and the output last.

    In a fused model (``fused.build_fused_mlp``) these are the ``StackedDense`` layers,
    whose kernels hold one slice per run.
    """
    import keras

    from worker.training.fused_layers import StackedDense

    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Dense, StackedDense))]
