"""Per-run layers for CNNs, normalization and residual blocks (the MLP's are in layers.py).

Between layers the runs travel as one (K, B, ...) tensor (the Dense layers' batched matmul
wants it) or, from the reshape to images to the flatten before the Dense head, as a list of K
(B, h, w, c) tensors: each run's convolution, bias, activation, pooling and normalization then
read the tensor its previous layer made (a stacked tensor had to be unstacked and stacked again
at every layer: copies of the largest activations, forwards and backwards). One CNN workload
group (8 runs, 10000 Fashion-MNIST images, 2 epochs, one thread) took 33 s as lists, 41 s
stacked (bench/RESULTS.md). Every layer here takes either form and gives back the
form it got (``per_run``), so the recorder's taps, the signal probe and LSUV read stacked arrays
whichever form flows. Backend-neutral Keras 3 only (``keras.ops``), so the same code runs on
TensorFlow and on JAX.

* ``StackedConv`` is K Conv2D layers of one shape: a (K, kh, kw, c_in, c_out) kernel, each
  slice drawn by its run's own initializer with the slice's shape, so its fans are Keras's
  Conv2D fans (kh·kw·c_in, kh·kw·c_out). The K convolutions run in a Python loop inside the
  one compiled step (``keras.ops.conv`` per slice): simple, exact, and each run's result is
  the one its own Conv2D would compute (a grouped convolution and im2col were slower on CPU).
* ``RunPooling`` pools every run's images. In a training or validation step a plain ReLU, leaky
  ReLU or linear convolution followed by max pooling pools first (``pool_first``, below): same
  numbers, a quarter of the element-wise work.
* ``RunReshape`` reshapes each sample: flat rows to images (as a list of runs), images to flat
  features (stacked again for the Dense head).
* ``RunActivation`` and ``RunAdd`` are Keras's Activation and Add for either form.
* ``RunNormalization`` is BatchNorm or LayerNorm with a scale and offset per run, and for
  BatchNorm each run's own batch statistics and moving statistics: a run's slice never sees
  another run's samples, so it normalizes exactly as it would alone.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, Sequence

import keras
from keras import ops

from worker.training.layers import per_run, same_form, stacked_initializer

# keras.layers.BatchNormalization / LayerNormalization defaults.
MOMENTUM = 0.99
EPSILON = 1e-3


def _run_shape(input_shape) -> tuple:
    """One run's input shape, from a stacked (K, B, ...) shape or a list form's list of (B, ...) shapes."""
    if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
        return tuple(input_shape[0])
    return tuple(input_shape)[1:]


class StackedConv(keras.layers.Layer):
    """K independent Conv2D layers of one shape, 'same' padding, stride 1: each run's (B, h, w, c) → (B, h, w, channels)."""

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
        self.pools_first = False  # set by pool_first()

    def build(self, input_shape):
        shape = (self.kernel_size, self.kernel_size, int(_run_shape(input_shape)[-1]), self.channels)
        self.kernel = self.add_weight(name="kernel", shape=(self.runs, *shape),
                                      initializer=stacked_initializer(self.kernel_initializers, shape))
        self.bias = None
        if self.bias_initializers is not None:
            self.bias = self.add_weight(name="bias", shape=(self.runs, self.channels),
                                        initializer=stacked_initializer(self.bias_initializers, (self.channels,)))

    def _affine_run(self, run: int, run_input):
        return self._add_bias(run, self._convolve(run, run_input))

    def _convolve(self, run: int, run_input):
        return ops.conv(run_input, self.kernel[run], strides=1, padding="same")

    def _add_bias(self, run: int, output):
        if self.bias is None:
            return output
        # The bias is added to the output seen as (positions, channels): with
        # TF_ENABLE_ONEDNN_OPTS=1, TensorFlow fuses a Conv2D directly followed by its bias
        # add, and that fused op's bias gradient is wrong for every run slice but the first
        # (bench/RESULTS.md, "oneDNN"). Same sums, per run, whatever the group's size.
        rows = ops.add(ops.reshape(output, (-1, self.channels)), self.bias[run])
        return ops.reshape(rows, (-1, *output.shape[1:]))

    def affine(self, inputs):
        """Each run's convolution plus its bias, before the activation (what LSUV measures)."""
        runs, listed = per_run(inputs)
        return same_form([self._affine_run(run, run_input) for run, run_input in enumerate(runs)], listed)

    def call(self, inputs, training=False):
        runs, listed = per_run(inputs)
        if self.pools_first and _pooling_first_now(training):
            return same_form([self._pooled_run(run, run_input) for run, run_input in enumerate(runs)], listed)
        # The order of keras.layers.Conv2D: convolution, add the bias, activation; run by run.
        return same_form([self.activation(self._affine_run(run, run_input)) for run, run_input in enumerate(runs)],
                         listed)

    def _pooled_run(self, run: int, run_input):
        """act(max_pool(conv) + b): equal to max_pool(act(conv + b)), on a quarter of the positions."""
        pooled = pool_2x2(self._convolve(run, run_input), "max")
        return self.activation(self._add_bias(run, pooled))


class RunPooling(keras.layers.Layer):
    """2×2 max or average pooling, stride 2, 'valid' padding, of every run's images."""

    def __init__(self, kind: str, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.done_by_conv = False  # set by pool_first()

    def call(self, inputs, training=False):
        if self.done_by_conv and _pooling_first_now(training):
            return inputs  # the convolution before pooled its output already
        runs, listed = per_run(inputs)
        return same_form([pool_2x2(images, self.kind) for images in runs], listed)


def pool_2x2(images, kind: str):
    """One run's (B, h, w, c) images pooled 2×2, stride 2, 'valid' padding (keras.layers.MaxPooling2D's defaults)."""
    pool = ops.max_pool if kind == "max" else ops.average_pool
    return pool(images, pool_size=2, strides=2, padding="valid")


_POOLING_FIRST = contextvars.ContextVar("pooling_first", default=False)


@contextlib.contextmanager
def _switched_on(flag: contextvars.ContextVar) -> Iterator[None]:
    token = flag.set(True)
    try:
        yield
    finally:
        flag.reset(token)


def pooling_first() -> contextlib.AbstractContextManager:
    """Inference that reads only the network's outputs pools first too (the compiled validation
    step, ``model.GroupNetwork``): whatever is traced inside this block. Everything that reads a
    convolution's own output (the recorder's taps, the signal probe, LSUV) runs outside it."""
    return _switched_on(_POOLING_FIRST)


def _pooling_first_now(training) -> bool:
    """Whether a ``pool_first`` pair pools first in this call: StackedConv and RunPooling must agree."""
    return bool(training) or _POOLING_FIRST.get()


# Activations with fl(act(x)) non-decreasing in x for every float32 x: max(x, 0), x, and x or
# fl(slope·x) (a positive factor keeps the order through rounding); tanh's, the sigmoid's and the
# exponential ones' approximations are not promised to be.
POOL_FIRST_ACTIVATIONS = ("relu", "leaky_relu", "linear")


def pool_first(conv: StackedConv, pooling: RunPooling, activation: str) -> bool:
    """In training steps (and ``pooling_first`` blocks), let ``conv`` pool its convolution before
    the bias and activation, and ``pooling`` (which follows it directly) pass that on; True if it can.

    Exact for max pooling and an activation that never reverses an order: rounding is monotone,
    so max(fl(x + b)) = fl(max(x) + b), and relu(max(·)) = max(relu(·)). The bias add, the
    activation and their gradients then run on the pooled quarter of a 28×28×16 output, which
    cost more than the convolution itself (a steady epoch of the CNN workload's group of 8: 5.45 →
    5.12 s, bench/RESULTS.md). The gradients are the same but for rounding of the bias's (summed
    over the pooled positions) and for a tie after rounding in a pooling window (the unpooled form
    takes the first of equal values, this one the largest before the bias), both negligible and the
    same in a group as alone; and a window holding NaN beside numbers (a run already diverged) may
    pool to either. Other inference (the recorder's taps, the signal probe, LSUV) keeps
    the layer-by-layer form, so every recorded activation is the convolution's own output.
    """
    if pooling.kind != "max" or activation not in POOL_FIRST_ACTIVATIONS:
        return False
    conv.pools_first = pooling.done_by_conv = True
    return True


class RunReshape(keras.layers.Layer):
    """Each sample reshaped, row-major as keras.layers.Flatten/Reshape.

    To images (a target of more than one axis) the runs of a group come out as a list, one tensor
    per run, which the convolution stack keeps; to flat features they come out stacked, (K, B,
    features). A lone run stays stacked, (1, B, ...): Keras reports a one-element list output as
    its element (``layer.output``, ``layer.input``), which would lose the run axis for readers.
    """

    def __init__(self, shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.target = tuple(int(size) for size in shape)

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)) or (len(self.target) > 1 and inputs.shape[0] > 1):
            runs, _ = per_run(inputs)
            reshaped = [ops.reshape(run_input, (-1, *self.target)) for run_input in runs]
            return reshaped if len(self.target) > 1 else ops.stack(reshaped)
        return ops.reshape(inputs, (inputs.shape[0], -1, *self.target))


class RunActivation(keras.layers.Layer):
    """keras.layers.Activation on a stacked tensor or on each run's tensor of a list."""

    def __init__(self, activation: str, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return [self.activation(run_input) for run_input in inputs]
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


class RunAdd(keras.layers.Layer):
    """keras.layers.Add of two inputs (a residual block's output and its skip), in either form."""

    def call(self, inputs):
        first, second = inputs
        if not isinstance(first, (list, tuple)) and not isinstance(second, (list, tuple)):
            return ops.add(first, second)
        return [ops.add(a, b) for a, b in zip(per_run(first)[0], per_run(second)[0])]


_BATCH_STATISTICS = contextvars.ContextVar("batch_statistics", default=False)


def batch_statistics() -> contextlib.AbstractContextManager:
    """Inference that measures what a training step sees (the recorder's probe, LSUV, the signal
    probe): BatchNorm normalizes with the batch's own statistics, as in training, and leaves its
    moving statistics alone; dropout stays off (``training=False``). At initialization the moving
    statistics are 0 and 1, so plain inference would show BatchNorm as the identity: a uniform
    [0, 1] net's output gradient read 8.7e3 with BatchNorm, its value without, against 0.6 in a
    training step. Read when a layer is called (eagerly, or while a function is traced)."""
    return _switched_on(_BATCH_STATISTICS)


class RunNormalization(keras.layers.Layer):
    """BatchNorm or LayerNorm over the last (channel) axis, with parameters and statistics per run.

    BatchNorm normalizes each channel over a run's batch (and its image positions), using the
    batch statistics in training (and in ``batch_statistics`` measurements) and the moving ones at
    inference, as ``keras.layers.BatchNormalization`` does; LayerNorm normalizes each sample (each image
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
        shape = (self.runs, int(_run_shape(input_shape)[-1]))
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

    def _batch_moments(self, runs: list):
        """Each run's (K, C) mean and variance over its batch and image positions.

        One reduction per run, the same reduction whatever the group's size (a (K, B, C)
        reduction over its middle axis sums in another order than a (B, C) one, and BatchNorm
        carries that rounding into every later step), and the variance as the mean of squared
        deviations: ``keras.ops.moments`` takes E[x²] − E[x]², which loses the variance of large
        pre-activations (a [0, 1] uniform kernel's) to cancellation in float32.
        """
        means, variances = [], []
        for values in runs:
            axes = list(range(len(values.shape) - 1))
            mean = ops.mean(values, axis=axes, keepdims=True)
            means.append(ops.reshape(mean, (-1,)))
            variances.append(ops.mean(ops.square(ops.subtract(values, mean)), axis=axes))
        return ops.stack(means), ops.stack(variances)

    def call(self, inputs, training=False):
        runs, listed = per_run(inputs)
        rank = len(runs[0].shape) + 1
        if self.kind == "layernorm":
            moments = [ops.moments(values, axes=[-1], keepdims=True) for values in runs]
            means, variances = [mean for mean, _ in moments], [variance for _, variance in moments]
        else:
            if training:
                mean, variance = self._batch_moments(runs)
                self.moving_mean.assign(self.moving_mean * MOMENTUM + mean * (1.0 - MOMENTUM))
                self.moving_variance.assign(self.moving_variance * MOMENTUM + variance * (1.0 - MOMENTUM))
            elif _BATCH_STATISTICS.get():
                mean, variance = self._batch_moments(runs)  # a measurement: the moving statistics stay
            else:
                mean, variance = self.moving_mean, self.moving_variance
            means = ops.unstack(self._per_run(mean, rank), axis=0)
            variances = ops.unstack(self._per_run(variance, rank), axis=0)
        # Everything runs run by run, on one run's (B, ..., C) tensor, as the run would alone: a
        # (K, 1, ..., C) mean, scale or offset broadcast over the (K, B, ..., C) activations has
        # its gradient summed over that tensor in an order that depends on K (1e-6 apart, which a
        # LayerNorm CNN amplified past 1e-4 in an epoch on an Intel Xeon), and one rsqrt over the
        # (K, ..., C) variance gave runs 1 and 2 of a three-run BatchNorm CNN other bits than their
        # own call (run 3, the tensor's tail, matched: the pattern of a vector loop and its scalar
        # tail rounding differently), 1e-7 that BatchNorm carried to 1e-4 in two epochs.
        return same_form([self._normalize_run(run, *parts) for run, parts in enumerate(zip(runs, means, variances))],
                         listed)

    def _normalize_run(self, run: int, values, mean, variance):
        """Run ``run``'s (values − mean) / √(variance + ε) · γ + β."""
        normalized = ops.multiply(ops.subtract(values, mean), ops.rsqrt(ops.add(variance, EPSILON)))
        return ops.add(ops.multiply(normalized, self.gamma[run]), self.beta[run])

    def compute_output_shape(self, input_shape):
        return input_shape
