"""Several runs of one study, trained together in one fused model.

Runs that share data set, model shape and training settings (only the initializers and
the seed differ, as within a study) become one Keras model whose layers hold one slice
per run: ``StackedDense`` kernels of shape (runs, in, out), one batched matmul per layer.
The loss is the sum of the runs' own mean losses, so each slice gets exactly its own
run's gradient, and Adam and SGD update every element on its own, as if alone. Each run
still visits the samples in its own order (``trainer.epoch_order``; the model gathers
one batch per run from the rows it holds) and draws its own dropout masks. With the
same data, a run's metrics match ``train_run``'s to float rounding.

Why: on 2 CPU cores, one 784-128-64-10 run's epoch on full MNIST does ~27 GFLOP in
about 0.4 s of matmuls, but a separate run also pays Keras's per-step work, its own
tracing (~0.7 s) and its own model setup; a group pays them once. The numbers are in
bench/RESULTS.md.

Imported by the worker only: it loads Keras.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import keras
import numpy as np
from keras import ops

from worker.training.datasets import DATASETS, PreparedData, prepare_data
from worker.training.fused_layers import (
    IndexedRows, RunDropout, RunMetrics, StackedDense, rows_variable, summed_run_losses,
)
from worker.training.fused_recorder import Finished, GroupRecorder, _run_metrics, group_layer_statistics  # noqa: F401
from worker.training.lsuv import rescale_group
from worker.training.model import dense_layer_names, dropout_seed, layer_initializers
from worker.training.sink import Sink
from worker.training.trainer import (
    STEPS_PER_EXECUTION, RunConfig, RunOutcome, _optimizer, describe_device, epoch_order,
    initializer_factories, validation_rows,
)

# What runs must share to train in one model; initializers, their parameters and the
# seed may differ per run.
GROUP_FIELDS = (
    "dataset", "train_samples", "validation_samples", "subset_seed", "hidden_units",
    "activation", "dropout", "optimizer", "learning_rate", "batch_size", "epochs", "stop_on_divergence",
)

def group_key(config: RunConfig) -> tuple:
    return tuple(
        tuple(value) if isinstance(value, list) else value
        for value in (getattr(config, name) for name in GROUP_FIELDS)
    )


def check_group(configs: list[RunConfig]) -> None:
    """ValueError unless the runs can train in one fused model."""
    if not configs:
        raise ValueError("a fused group needs at least one run")
    for config in configs:
        config.validate()
    first = group_key(configs[0])
    for config in configs[1:]:
        if group_key(config) != first:
            differ = [name for name, a, b in zip(GROUP_FIELDS, first, group_key(config)) if a != b]
            raise ValueError(
                f"run {config.run_id} cannot be fused with run {configs[0].run_id}: "
                f"they differ in {', '.join(differ)}"
            )
    ids = [config.run_id for config in configs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a run appears twice in one group: {ids}")


def build_fused_mlp(configs: list[RunConfig], rows, as_bytes: bool = False):
    """(batch, runs) row indices → (batch, runs, classes) logits, one slice per run.

    Layer names are those of a run's own model (dense_0 … output), so records match.
    """
    first = configs[0]
    info = DATASETS[first.dataset]
    depth = len(first.hidden_units)
    names = dense_layer_names(depth)
    per_run = []
    for config in configs:
        kernel, bias, output = initializer_factories(config)
        per_run.append(layer_initializers(depth, int(config.seed), kernel, bias, output))
    index = keras.Input(shape=(len(configs),), dtype="int32", name="rows")
    hidden = IndexedRows(rows, as_bytes, name="pixels")(index)
    widths = [*first.hidden_units, info.num_classes]
    for layer, width in enumerate(widths):
        output_layer = layer == depth
        hidden = StackedDense(
            int(width), "linear" if output_layer else first.activation,
            kernel_initializers=[inits[layer][0] for inits in per_run],
            bias_initializers=[inits[layer][1] for inits in per_run],
            name=names[layer],
        )(hidden)
        if not output_layer and first.dropout > 0:
            seeds = [dropout_seed(int(config.seed), layer) for config in configs]
            hidden = RunDropout(float(first.dropout), seeds, name=f"dropout_{layer}")(hidden)
    outputs = ops.transpose(hidden, (1, 0, 2))
    return keras.Model(index, outputs, name="initlab_fused_mlp")


def train_group(
    configs: list[RunConfig],
    sink: Sink,
    data_dir: Path | None = None,
    stop_event: Callable[[], bool] | None = None,
    data: PreparedData | None = None,
    *,
    record: bool = True,
    on_finished: Finished | None = None,
) -> dict[int, RunOutcome]:
    """Train the runs together and report each to ``sink`` under its own run id.

    A run cancelled through ``sink.should_stop`` stops being recorded at once and is
    handed to ``on_finished``; the others train on, and the group stops when none is
    left. ``stop_event`` (worker shutdown) interrupts them all. Returns every run's
    outcome, by run id. Raises ValueError when the runs cannot be fused, and
    DatasetUnavailable when the data cannot be found.
    """
    check_group(configs)
    first = configs[0]
    if data is None:
        data = prepare_data(first.dataset, first.train_samples, first.validation_samples,
                            data_dir, first.subset_seed)

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(int(first.seed))
    model = build_fused_mlp(configs, *rows_variable(data.x_train, data.x_val))
    # LSUV runs: each slice rescaled on its own run's batch, as train_run does it alone.
    rescale_group(model, len(data.y_train), configs)
    model.compile(optimizer=_optimizer(first), loss=summed_run_losses,
                  metrics=[RunMetrics(len(configs))], steps_per_execution=STEPS_PER_EXECUTION)

    runs = len(configs)
    train_count, val_count = len(data.y_train), len(data.y_val)
    validation = (np.repeat(validation_rows(train_count, val_count)[:, None], runs, axis=1),
                  np.repeat(data.y_val[:, None], runs, axis=1))
    recorder = GroupRecorder(configs, sink, data, stop_event, on_finished) if record else None
    if recorder is not None:
        recorder.record_initial(model)
    history: dict[str, list] = {}
    for epoch in range(1, first.epochs + 1):
        if recorder is not None and not recorder.keep_going():
            break
        order = np.stack([epoch_order(int(config.seed), epoch, train_count) for config in configs], axis=1)
        history = model.fit(
            order, data.y_train[order], validation_data=validation,
            initial_epoch=epoch - 1, epochs=epoch, batch_size=first.batch_size,
            shuffle=False, verbose=0, callbacks=[recorder] if recorder else [],
        ).history
    if recorder is not None:
        return recorder.outcomes()
    device = describe_device()
    return {
        config.run_id: RunOutcome("succeeded", first.epochs, device,
                                  _run_metrics(history, index, math.nan))
        for index, config in enumerate(configs)
    }
