"""worker/training/optimizers.py: TensorFlow's one-pass update kernels give Keras's updates.

Each check applies the same gradients through initlab's optimizer and through Keras's own, and
also looks in the traced step for the fused kernel, so a silent fallback to Keras's element-wise
update (which would pass the comparison trivially) fails the test.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from app.domain.spec import run_setup
from worker.training import optimizers

SHAPE = (3, 37, 11)  # odd sizes: elements in the kernels' vector loops and in their tails
STEPS = 20


def trajectory(optimizer, initial: np.ndarray, gradients: list[np.ndarray]) -> tuple[list[np.ndarray], set[str]]:
    """The variable after each step, and the op types of the traced update."""
    variable = keras.Variable(initial.copy())
    optimizer.build([variable])
    step = tf.function(lambda gradient: optimizer.apply([gradient], [variable]))
    ops = {op.type for op in step.get_concrete_function(tf.TensorSpec(initial.shape, tf.float32)).graph.get_operations()}
    after = []
    for gradient in gradients:
        step(tf.constant(gradient))
        after.append(keras.ops.convert_to_numpy(variable).copy())
    return after, ops


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(7)
    initial = rng.normal(0, 0.05, SHAPE).astype(np.float32)
    # Gradients of mixed scales, so the second moments differ across elements and steps.
    gradients = [(rng.normal(0, 1, SHAPE) * 10.0 ** rng.integers(-4, 0, SHAPE)).astype(np.float32)
                 for _ in range(STEPS)]
    return initial, gradients


def test_adam_is_kerass_adam_in_one_kernel(draws):
    initial, gradients = draws
    rate = 0.01
    mine, mine_ops = trajectory(optimizers.Adam(learning_rate=rate), initial, gradients)
    theirs, theirs_ops = trajectory(keras.optimizers.Adam(learning_rate=rate), initial, gradients)
    assert "ResourceApplyAdam" in mine_ops and "ResourceApplyAdam" not in theirs_ops
    assert np.abs(theirs[-1] - initial).max() > 0.05  # 20 steps moved the weights: not two unmoved copies
    for step, (a, b) in enumerate(zip(mine, theirs)):
        # Each step moves a weight by about the learning rate; the two agree to 2e-5 of it (Keras
        # takes 1 - beta_2 from the Python float, the kernel from the float32 beta_2: 6e-6 apart).
        assert np.abs(a - b).max() <= 2e-5 * rate * (step + 1), f"step {step}"


def test_adams_first_step_is_the_exact_update(draws):
    """Against float64 arithmetic, so a formula error (epsilon inside the root, a bias correction
    left out) fails however Keras's own Adam rounds."""
    initial, gradients = draws
    (after,), _ = trajectory(optimizers.Adam(learning_rate=0.01), initial, gradients[:1])
    gradient = gradients[0].astype(np.float64)
    beta_1, beta_2 = float(np.float32(0.9)), float(np.float32(0.999))
    m, v = (1 - beta_1) * gradient, (1 - beta_2) * gradient**2
    step = 0.01 * np.sqrt(1 - beta_2) / (1 - beta_1) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(initial - after, step, rtol=2e-6)


def test_sgd_is_kerass_sgd_bit_for_bit(draws):
    initial, gradients = draws
    mine, mine_ops = trajectory(optimizers.SGD(learning_rate=0.1), initial, gradients)
    theirs, _ = trajectory(keras.optimizers.SGD(learning_rate=0.1), initial, gradients)
    assert "ResourceApplyGradientDescent" in mine_ops
    assert not np.array_equal(mine[-1], initial)
    for a, b in zip(mine, theirs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [lambda: optimizers.Adam(learning_rate=0.01), lambda: optimizers.SGD(learning_rate=0.1)],
                         ids=["adam", "sgd"])
def test_a_runs_slice_is_updated_as_if_alone(draws, make):
    """The fused group's promise: slice k of a stacked variable moves exactly as run k's own."""
    initial, gradients = draws
    together, _ = trajectory(make(), initial, gradients)
    for run in range(SHAPE[0]):
        alone, _ = trajectory(make(), initial[run], [gradient[run] for gradient in gradients])
        np.testing.assert_array_equal(together[-1][run], alone[-1])


def test_the_study_names_the_optimizer():
    adam = optimizers.optimizer(run_setup(1, 0, optimizer="adam", learning_rate=0.003))
    sgd = optimizers.optimizer(run_setup(1, 0, optimizer="sgd", learning_rate=0.2))
    assert isinstance(adam, optimizers.Adam) and float(adam.learning_rate) == pytest.approx(0.003)
    assert isinstance(sgd, optimizers.SGD) and float(sgd.learning_rate) == pytest.approx(0.2)
