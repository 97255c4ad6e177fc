"""One run, start to finish: data, seeded model, ``model.fit`` with the recorder.

Every run visits the training samples in an explicit order, ``epoch_order(seed, epoch)``,
fed to the model as row indices (``fused_layers.IndexedRows``). A run therefore sees the
same batches whether it trains alone here or inside a fused group (``fused.train_group``),
and both give the same results.

``RunConfig.validate`` is importable without TensorFlow (Keras is imported inside
``train_run``), so the API can reject a bad study with the same rules the worker applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from worker.training.datasets import DATASETS, PreparedData, prepare_data
from worker.training.initializers import REGISTRY, Params, build_initializer, resolve_params
from worker.training.model import ACTIVATIONS
from worker.training.sink import Sink

OPTIMIZERS = ("adam", "sgd")
PROBE_BATCH_SIZE = 256
# Training steps per compiled call: Keras's per-step Python work is paid once per 32 steps
# (a steady full-MNIST epoch of seed 001's model went from 1.06 s to 0.68 s). Callbacks
# see a batch hook once per 32 steps, which only spaces out progress reports and stop
# checks (32 steps of a 16-run group take about 0.4 s on 2 cores).
STEPS_PER_EXECUTION = 32
MAX_SEED = 2**32 - 1  # numpy's global seed, which keras.utils.set_random_seed also sets, is 32-bit


@dataclass
class RunConfig:
    run_id: int
    seed: int
    dataset: str = "fashion_mnist"
    train_samples: int | None = None
    validation_samples: int | None = None
    subset_seed: int = 0
    hidden_units: list[int] = field(default_factory=lambda: [128, 64])
    activation: str = "relu"
    dropout: float = 0.0
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 0.001
    batch_size: int = 128
    epochs: int = 10
    initializer: str = "glorot_uniform"
    initializer_params: Params = field(default_factory=dict)
    bias_initializer: str = "zeros"
    bias_initializer_params: Params = field(default_factory=dict)
    output_initializer: str | None = None  # None: the output layer uses `initializer`
    output_initializer_params: Params = field(default_factory=dict)
    stop_on_divergence: bool = True  # end right after the first epoch with a NaN/Inf loss

    def validate(self) -> None:
        """Raise one ValueError that lists every problem, so a user can fix them in one go."""
        problems = _config_problems(self)
        if problems:
            raise ValueError("invalid run configuration: " + "; ".join(problems))


@dataclass
class RunOutcome:
    status: Literal["succeeded", "diverged", "cancelled", "interrupted"]
    epochs_completed: int
    device: str
    final: dict[str, float]
    diverged_epoch: int | None = None  # first epoch whose loss or val_loss was NaN/Inf


def _config_problems(config: RunConfig) -> list[str]:
    problems = []

    def is_int(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_int(config.seed) or not 0 <= config.seed <= MAX_SEED:
        problems.append(f"seed must be an integer in 0..{MAX_SEED}, got {config.seed!r}")
    if not is_int(config.subset_seed) or config.subset_seed < 0:
        problems.append(f"subset_seed must be a non-negative integer, got {config.subset_seed!r}")
    if config.dataset not in DATASETS:
        problems.append(f"unknown dataset '{config.dataset}' (known: {', '.join(DATASETS)})")
    for name in ("train_samples", "validation_samples"):
        value = getattr(config, name)
        if value is not None and (not is_int(value) or value < 1):
            problems.append(f"{name} must be a positive integer or null, got {value!r}")
    widths = config.hidden_units
    if not isinstance(widths, (list, tuple)) or not all(is_int(w) and w >= 1 for w in widths):
        problems.append(f"hidden_units must be positive integers, got {config.hidden_units!r}")
    if config.activation not in ACTIVATIONS:
        problems.append(f"unknown activation '{config.activation}' (known: {', '.join(ACTIVATIONS)})")
    if not isinstance(config.dropout, (int, float)) or not 0.0 <= config.dropout < 1.0:
        problems.append(f"dropout must be in [0, 1), got {config.dropout!r}")
    if config.optimizer not in OPTIMIZERS:
        problems.append(f"unknown optimizer '{config.optimizer}' (known: {', '.join(OPTIMIZERS)})")
    rate = config.learning_rate
    if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        problems.append(f"learning_rate must be a positive number, got {rate!r}")
    if not is_int(config.batch_size) or config.batch_size < 1:
        problems.append(f"batch_size must be a positive integer, got {config.batch_size!r}")
    if not is_int(config.epochs) or config.epochs < 1:
        problems.append(f"epochs must be a positive integer, got {config.epochs!r}")
    schemes = [
        ("initializer", config.initializer, config.initializer_params),
        ("bias_initializer", config.bias_initializer, config.bias_initializer_params),
    ]
    if config.output_initializer is not None:
        schemes.append(
            ("output_initializer", config.output_initializer, config.output_initializer_params)
        )
    for role, init_id, params in schemes:
        if init_id not in REGISTRY:
            problems.append(f"unknown {role} '{init_id}' (known: {', '.join(REGISTRY)})")
            continue
        if role == "bias_initializer" and REGISTRY[init_id].kernel_only:
            problems.append(f"'{init_id}' needs a matrix and cannot initialize biases")
        try:
            resolve_params(init_id, params)
        except ValueError as error:
            problems.append(f"{role}: {error}")
    return problems


def train_run(
    config: RunConfig,
    sink: Sink,
    data_dir: Path | None = None,
    stop_event: Callable[[], bool] | None = None,
    data: PreparedData | None = None,
    *,
    record: bool = True,
) -> RunOutcome:
    """Train one run and report it to ``sink``.

    Raises ValueError for a bad config and DatasetUnavailable when the data cannot be
    found. ``data`` skips loading (benchmarks, a worker that trains many runs on one
    set). ``record=False`` drops the recorder entirely; it exists only so the benchmarks
    can measure what recording costs, and then nothing reaches the sink.
    """
    config.validate()
    if data is None:
        data = prepare_data(
            config.dataset, config.train_samples, config.validation_samples,
            data_dir, config.subset_seed,
        )

    import keras

    from worker.training.fused_layers import IndexedRows, rows_variable
    from worker.training.lsuv import rescale_run

    # A worker trains many runs in one process; this drops Keras's global state (name
    # counters, the TF graph, the kernel cache) left by the previous run. The default
    # gc.collect() is skipped: it cost ~145 ms a run on 2 cores, and Python's own
    # collector frees the old model's reference cycles soon enough.
    keras.backend.clear_session(free_memory=False)
    # Python, numpy and backend seeds, for anything not seeded explicitly below.
    keras.utils.set_random_seed(int(config.seed))
    network = _build_model(config)
    # LSUV rescales its layers on the run's data now, so epoch 0 records the rescaled weights.
    rescale_run(network, data.x_train, config)
    index = keras.Input(shape=(), dtype="int32", name="row")
    model = keras.Model(index, network(IndexedRows(*rows_variable(data.x_train, data.x_val))(index)))
    model.compile(
        optimizer=_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    recorder = None
    if record:
        from worker.training.recorder import RecorderCallback

        probe_x, probe_y = probe_batch(data, int(config.seed))
        recorder = RecorderCallback(config.run_id, sink, probe_x, probe_y, stop_event=stop_event, network=network,
                                    stop_on_divergence=config.stop_on_divergence)
    train_count = len(data.y_train)
    validation = (validation_rows(train_count, len(data.y_val)), data.y_val)
    final: dict[str, float] = {}
    if recorder is not None:
        recorder.record_initial()
    for epoch in range(config.epochs):
        if recorder is not None and stop_event is not None and stop_event():
            recorder.interrupted = True
            break
        order = epoch_order(int(config.seed), epoch + 1, train_count)
        history = model.fit(
            order, data.y_train[order], validation_data=validation,
            initial_epoch=epoch, epochs=epoch + 1, batch_size=config.batch_size,
            shuffle=False, verbose=0, callbacks=[recorder] if recorder else [],
        )
        final = {name: float(values[-1]) for name, values in history.history.items()}
        if recorder is not None and (recorder.cancelled or recorder.interrupted or recorder.stopped_by_divergence):
            break
    if recorder is None:
        return RunOutcome("succeeded", config.epochs, describe_device(), final)
    return RunOutcome(
        _status(recorder, config.epochs),
        recorder.epochs_completed,
        describe_device(),
        dict(recorder.last_metrics),
        recorder.diverged_epoch,
    )


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The order in which run ``seed`` visits ``count`` training samples in ``epoch`` (from 1).

    Explicit and backend-free, so a run trained alone and the same run trained in a
    fused group see the same batches.
    """
    return np.random.default_rng([seed, epoch]).permutation(count).astype(np.int32)


def validation_rows(train_count: int, validation_count: int) -> np.ndarray:
    """Indices of the validation rows, which ``rows_variable`` stores after the training rows."""
    return np.arange(train_count, train_count + validation_count, dtype=np.int32)


def _status(recorder, epochs: int) -> str:
    if recorder.diverged_epoch is not None:
        return "diverged"
    # A stop request that arrives after the last epoch has nothing left to stop.
    if recorder.epochs_completed >= epochs:
        return "succeeded"
    if recorder.interrupted:
        return "interrupted"
    if recorder.cancelled:
        return "cancelled"
    return "succeeded"


def _build_model(config: RunConfig):
    from worker.training.model import build_mlp

    info = DATASETS[config.dataset]
    kernel, bias, output = initializer_factories(config)
    return build_mlp(
        input_dim=info.input_dim,
        num_classes=info.num_classes,
        hidden_units=list(config.hidden_units),
        activation=config.activation,
        dropout=float(config.dropout),
        seed=int(config.seed),
        kernel_initializer=kernel,
        bias_initializer=bias,
        output_initializer=output,
    )


def initializer_factories(config: RunConfig) -> tuple[Callable[[int], Any], Callable[[int], Any], Callable[[int], Any] | None]:
    """The run's kernel, bias and output-kernel initializer factories (seed → initializer)."""

    def factory(init_id: str, params: Params) -> Callable[[int], Any]:
        return lambda seed: build_initializer(init_id, params, seed)

    output = config.output_initializer
    return (
        factory(config.initializer, config.initializer_params),
        factory(config.bias_initializer, config.bias_initializer_params),
        factory(output, config.output_initializer_params) if output else None,
    )


def _optimizer(config: RunConfig):
    import keras

    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.learning_rate)
    return keras.optimizers.SGD(learning_rate=config.learning_rate)


def probe_indices(count: int, seed: int, size: int = PROBE_BATCH_SIZE) -> np.ndarray:
    """The training samples every epoch's gradient is measured on (repeatable per seed)."""
    return np.sort(np.random.default_rng(seed).choice(count, min(size, count), replace=False))


def probe_batch(data: PreparedData, seed: int, size: int = PROBE_BATCH_SIZE):
    """The probe's samples and labels (``probe_indices`` of the training set)."""
    index = probe_indices(len(data.y_train), seed, size)
    return data.x_train[index], data.y_train[index]


def describe_device() -> str:
    """"CPU", or the accelerator's name, for the run's record."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return str(details.get("device_name") or gpus[0].name)
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                return str(getattr(device, "device_kind", device.platform))
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
    except Exception:  # device listing is informative only; never fail a run over it
        return "unknown"
    return "CPU"
