"""The optimizers a study names, as Keras optimizers whose update is one kernel per variable on TensorFlow.

Why: Keras 3's Adam updates a variable in about a dozen element-wise ops (each a pass over
the weights, its moments and the gradient), and a fused group's variables hold K runs'
weights, so on a CPU core that work grows with the group: one Adam step of seed 000's six-run
group took 3.82 ms. TensorFlow's own training kernels, ``ResourceApplyAdam`` and
``ResourceApplyGradientDescent``, do the same update in one pass: 1.53 ms, and the group's epoch
9 % faster (bench/optimizer_step.py, AMD EPYC, one thread). They compute Keras's formulas: for Adam
``m += (g − m)(1 − β₁)``, ``v += (g² − v)(1 − β₂)``, ``w −= α·m / (√v + ε)`` with
``α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)``, the same ε outside the square root. Each step agrees with
Keras's to 1e-5 of its size: Keras takes 1 − β₂ from the Python float (exactly 0.001) and βᵗ
from the float32 β, the kernel both from float32 β (1.3e-5 apart in v), which puts the kernel's
step the closer of the two to the exact one (tests/worker/training/test_optimizers.py). SGD
without momentum is bit-identical (``w −= lr·g``).

Elementwise, so a run's slice is updated as if it were alone, whatever the group's size.
On JAX (and anything but TensorFlow) Keras's own update is kept: JAX compiles the whole
step with XLA, which fuses those element-wise ops by itself.
"""

from __future__ import annotations

import keras
from keras import ops

from app.domain.spec import RunSetup


def _fused_update(gradient) -> bool:
    """TensorFlow, and a dense gradient (an embedding's IndexedSlices keeps Keras's path)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not isinstance(gradient, tf.IndexedSlices)


class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` (amsgrad off) with TensorFlow's one-pass kernel there."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or not _fused_update(gradient):
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=ops.power(beta_1, step), beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype))


class SGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD`` (no momentum) with TensorFlow's one-pass kernel there."""

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum != 0 or not _fused_update(gradient):
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=ops.cast(learning_rate, dtype),
                                                delta=ops.cast(gradient, dtype))


def optimizer(setup: RunSetup) -> keras.optimizers.Optimizer:
    """The run's optimizer and learning rate (the study's ``training`` block)."""
    rate = setup.training.learning_rate
    return Adam(learning_rate=rate) if setup.training.optimizer == "adam" else SGD(learning_rate=rate)
