"""Per-run layers for CNNs, normalization and residual blocks (the MLP's are in layers.py).

Every tensor between layers is (K, B, ...): one slice per run of the group. Backend-neutral
Keras 3 only (``keras.ops``), so the same code runs on TensorFlow and on JAX.

* ``StackedConv`` is K Conv2D layers of one shape: a (K, kh, kw, c_in, c_out) kernel, each
  slice drawn by its run's own initializer with the slice's shape, so its fans are Keras's
  Conv2D fans (kh·kw·c_in, kh·kw·c_out). The K convolutions run in a Python loop inside the
  one compiled step (``keras.ops.conv`` per slice): simple, exact, and each run's result is
  the one its own Conv2D would compute; a grouped convolution or a vmap could be faster.
* ``RunPooling`` pools every image of every run (runs and batch merged into one axis).
* ``RunReshape`` reshapes each sample (flat rows to images, images to flat features).
* ``RunNormalization`` is BatchNorm or LayerNorm with a scale and offset per run, and for
  BatchNorm each run's own batch statistics and moving statistics: a run's slice never sees
  another run's samples, so it normalizes exactly as it would alone.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

from worker.training.layers import stacked_initializer

# keras.layers.BatchNormalization / LayerNormalization defaults.
MOMENTUM = 0.99
EPSILON = 1e-3


class StackedConv(keras.layers.Layer):
    """K independent Conv2D layers of one shape, 'same' padding, stride 1: (K, B, h, w, c) → (K, B, h, w, channels)."""

    def __init__(self, channels: int, kernel_size: int, activation: str, kernel_initializers: Sequence[Any],
                 bias_initializers: Sequence[Any] | None, **kwargs):
        super().__init__(**kwargs)
        if bias_initializers is not None and len(kernel_initializers) != len(bias_initializers):
            raise ValueError("one kernel and one bias initializer per run")
        self.channels = int(channels)
        self.kernel_size = int(kernel_size)
        self.runs = len(kernel_initializers)
        self.activation = keras.activations.get(activation)
        self.kernel_initializers = list(kernel_initializers)
        self.bias_initializers = None if bias_initializers is None else list(bias_initializers)

    def build(self, input_shape):
        shape = (self.kernel_size, self.kernel_size, int(input_shape[-1]), self.channels)
        self.kernel = self.add_weight(name="kernel", shape=(self.runs, *shape),
                                      initializer=stacked_initializer(self.kernel_initializers, shape))
        self.bias = None
        if self.bias_initializers is not None:
            self.bias = self.add_weight(name="bias", shape=(self.runs, self.channels),
                                        initializer=stacked_initializer(self.bias_initializers, (self.channels,)))

    def affine(self, inputs):
        """Each run's convolution plus its bias, before the activation (what LSUV measures)."""
        # unstack, not inputs[k]: each strided slice's gradient is a full-size tensor (see RunDropout).
        outputs = []
        for run, run_input in enumerate(ops.unstack(inputs, axis=0)):
            output = ops.conv(run_input, self.kernel[run], strides=1, padding="same")
            if self.bias is not None:
                # The bias is added to the output seen as (positions, channels): with
                # TF_ENABLE_ONEDNN_OPTS=1, TensorFlow fuses a Conv2D directly followed by its bias
                # add, and that fused op's bias gradient is wrong for every run slice but the first
                # (bench/RESULTS.md, "oneDNN"). Same sums, per run, whatever the group's size.
                rows = ops.add(ops.reshape(output, (-1, self.channels)), self.bias[run])
                output = ops.reshape(rows, (-1, *output.shape[1:]))
            outputs.append(output)
        return ops.stack(outputs)

    def call(self, inputs):
        # The order of keras.layers.Conv2D: convolution, add the bias, activation.
        return self.activation(self.affine(inputs))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)


class RunPooling(keras.layers.Layer):
    """2×2 max or average pooling, stride 2, 'valid' padding, of every run's images."""

    def __init__(self, kind: str, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind

    def call(self, inputs):
        runs, height, width, channels = inputs.shape[0], inputs.shape[2], inputs.shape[3], inputs.shape[4]
        images = ops.reshape(inputs, (-1, height, width, channels))
        pool = ops.max_pool if self.kind == "max" else ops.average_pool
        pooled = pool(images, pool_size=2, strides=2, padding="valid")
        return ops.reshape(pooled, (runs, -1, height // 2, width // 2, channels))

    def compute_output_shape(self, input_shape):
        runs, batch, height, width, channels = input_shape
        return (runs, batch, height // 2, width // 2, channels)


class RunReshape(keras.layers.Layer):
    """(K, B, ...) → (K, B, *shape): each sample reshaped, row-major as keras.layers.Flatten/Reshape."""

    def __init__(self, shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.target = tuple(int(size) for size in shape)

    def call(self, inputs):
        return ops.reshape(inputs, (inputs.shape[0], -1, *self.target))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], *self.target)


class RunNormalization(keras.layers.Layer):
    """BatchNorm or LayerNorm over the last (channel) axis, with parameters and statistics per run.

    BatchNorm normalizes each channel over a run's batch (and its image positions), using the
    batch statistics in training and the moving ones at inference, as
    ``keras.layers.BatchNormalization`` does; LayerNorm normalizes each sample (each image
    position of a convolution's output) over its channels, as ``keras.layers.LayerNormalization()``.
    """

    def __init__(self, kind: str, runs: int, scale_initializer: str = "ones", **kwargs):
        super().__init__(**kwargs)
        if kind not in ("batchnorm", "layernorm"):
            raise ValueError(f"unknown normalization {kind!r}")
        self.kind = kind
        self.runs = int(runs)
        self.scale_initializer = scale_initializer

    def build(self, input_shape):
        shape = (self.runs, int(input_shape[-1]))
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer=self.scale_initializer)
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros")
        if self.kind == "batchnorm":
            self.moving_mean = self.add_weight(name="moving_mean", shape=shape, initializer="zeros",
                                               trainable=False)
            self.moving_variance = self.add_weight(name="moving_variance", shape=shape, initializer="ones",
                                                   trainable=False)

    def _per_run(self, values, rank: int):
        """(K, C) → (K, 1, ..., 1, C), broadcastable against a (K, B, ..., C) tensor."""
        return ops.reshape(values, (self.runs, *([1] * (rank - 2)), values.shape[-1]))

    def _batch_moments(self, inputs):
        """Each run's (K, C) mean and variance over its batch and image positions.

        One reduction per run slice, the same reduction whatever the group's size (a (K, B, C)
        reduction over its middle axis sums in another order than a (B, C) one, and BatchNorm
        carries that rounding into every later step), and the variance as the mean of squared
        deviations: ``keras.ops.moments`` takes E[x²] − E[x]², which loses the variance of large
        pre-activations (a [0, 1] uniform kernel's) to cancellation in float32.
        """
        means, variances = [], []
        for values in ops.unstack(inputs, axis=0):  # not inputs[k]: see StackedConv.affine
            axes = list(range(len(values.shape) - 1))
            mean = ops.mean(values, axis=axes, keepdims=True)
            means.append(ops.reshape(mean, (-1,)))
            variances.append(ops.mean(ops.square(ops.subtract(values, mean)), axis=axes))
        return ops.stack(means), ops.stack(variances)

    def call(self, inputs, training=False):
        rank = len(inputs.shape)
        if self.kind == "layernorm":
            mean, variance = ops.moments(inputs, axes=[-1], keepdims=True)
        elif training:
            batch_mean, batch_variance = self._batch_moments(inputs)
            self.moving_mean.assign(self.moving_mean * MOMENTUM + batch_mean * (1.0 - MOMENTUM))
            self.moving_variance.assign(self.moving_variance * MOMENTUM + batch_variance * (1.0 - MOMENTUM))
            mean, variance = self._per_run(batch_mean, rank), self._per_run(batch_variance, rank)
        else:
            mean, variance = self._per_run(self.moving_mean, rank), self._per_run(self.moving_variance, rank)
        # Everything after the moments runs run by run, on one run's (B, ..., C) slice, as the run
        # would alone: a (K, 1, ..., C) mean, scale or offset broadcast over the (K, B, ..., C)
        # activations has its gradient summed over that tensor in an order that depends on K
        # (1e-6 apart, which a LayerNorm CNN amplified past 1e-4 in an epoch on an Intel Xeon),
        # and one rsqrt over the (K, ..., C) variance gave runs 1 and 2 of a three-run BatchNorm
        # CNN other bits than their own call (run 3, the tensor's tail, matched: the pattern of a
        # vector loop and its scalar tail rounding differently), 1e-7 that BatchNorm carried to
        # 1e-4 in two epochs.
        slices = zip(ops.unstack(inputs, axis=0), ops.unstack(mean, axis=0), ops.unstack(variance, axis=0))
        return ops.stack([self._normalize_run(run, *parts) for run, parts in enumerate(slices)])

    def _normalize_run(self, run: int, values, mean, variance):
        """Run ``run``'s (values − mean) / √(variance + ε) · γ + β."""
        normalized = ops.multiply(ops.subtract(values, mean), ops.rsqrt(ops.add(variance, EPSILON)))
        return ops.add(ops.multiply(normalized, self.gamma[run]), self.beta[run])

    def compute_output_shape(self, input_shape):
        return input_shape
