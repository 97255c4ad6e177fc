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
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
from keras import ops

from worker.training.datasets import DATASETS, PreparedData, prepare_data
from worker.training.fused_layers import (
    IndexedRows, RunDropout, RunMetrics, StackedDense, rows_variable, summed_run_losses,
)
from worker.training.model import dense_layer_names, dense_layers, dropout_seed, layer_initializers
from worker.training.probe import kernel_gradients
from worker.training.sink import Sink
from worker.training.stats import gradient_summary, tensor_summary
from worker.training.trainer import (
    STEPS_PER_EXECUTION, RunConfig, RunOutcome, _optimizer, describe_device, epoch_order,
    initializer_factories, probe_indices, validation_rows,
)

# What runs must share to train in one model; initializers, their parameters and the
# seed may differ per run.
GROUP_FIELDS = (
    "dataset", "train_samples", "validation_samples", "subset_seed", "hidden_units",
    "activation", "dropout", "optimizer", "learning_rate", "batch_size", "epochs",
)

Finished = Callable[[int, RunOutcome], None]


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
    """(batch, runs) row indices → (batch, runs, classes) probabilities, one slice per run.

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
            int(width), "softmax" if output_layer else first.activation,
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


def _run_metrics(logs: dict[str, Any], index: int, seconds: float) -> dict[str, float]:
    """Run ``index``'s epoch metrics from the fused logs (history lists or epoch logs)."""

    def value(name: str) -> float:
        values = logs.get(name)
        if values is None:
            return math.nan
        if isinstance(values, list):
            values = values[-1]
        return float(np.asarray(values, dtype=np.float64).reshape(-1)[index])

    return {
        "loss": value("run_loss"),
        "accuracy": value("run_accuracy"),
        "val_loss": value("val_run_loss"),
        "val_accuracy": value("val_run_accuracy"),
        "seconds": seconds,
    }


class _Slot:
    """One run of the group: where its slice is, and how far it got."""

    def __init__(self, index: int, config: RunConfig):
        self.index = index
        self.config = config
        self.status = "active"  # then "cancelled" or "interrupted"; "succeeded" once done
        self.epochs_completed = 0
        self.last_metrics: dict[str, float] = {}

    @property
    def run_id(self) -> int:
        return self.config.run_id


class GroupRecorder(keras.callbacks.Callback):
    """Records every run of a fused group through the sink, one call per run id.

    The same measurements as ``RecorderCallback``: epoch 0 and every completed epoch's
    kernel, bias and probe-gradient summaries, per-epoch metrics, throttled progress and
    stop checks. The gradient probe runs once for the whole group: one call on the fused
    model, each run on its own probe samples.
    """

    def __init__(self, configs: list[RunConfig], sink: Sink, data: PreparedData,
                 stop_event: Callable[[], bool] | None = None, on_finished: Finished | None = None,
                 interval: float = 0.5, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.slots = [_Slot(index, config) for index, config in enumerate(configs)]
        self.sink = sink
        self.stop_event = stop_event
        self.on_finished = on_finished
        self.interval = interval
        self.clock = clock
        self.epochs = configs[0].epochs
        self.device = describe_device()
        train_count = len(data.y_train)
        self.probe_index = np.stack(
            [probe_indices(train_count, int(config.seed)) for config in configs], axis=1
        ).astype(np.int32)
        self.probe_y = data.y_train[self.probe_index]
        self._epoch = 0
        self._epoch_started = 0.0
        self._last_report = 0.0
        self._stopped_mid_epoch = False

    # -- what train_group asks ------------------------------------------------------

    def record_initial(self, model) -> None:
        self._record_layers(model, 0)

    def keep_going(self) -> bool:
        """Before an epoch: is any run left to train (and no shutdown asked)?"""
        if self.stop_event is not None and self.stop_event():
            self._interrupt_all()
        return bool(self._active())

    def outcomes(self) -> dict[int, RunOutcome]:
        result = {}
        for slot in self.slots:
            if slot.status == "active":
                slot.status = "succeeded" if slot.epochs_completed >= self.epochs else "interrupted"
            result[slot.run_id] = self._outcome(slot)
        return result

    # -- Keras hooks ----------------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._epoch_started = self._last_report = self.clock()
        self._stopped_mid_epoch = False

    def on_train_batch_begin(self, batch, logs=None):
        # Before a call of up to steps_per_execution batches, as in RecorderCallback.
        if self.stop_event is not None and self.stop_event():
            self._interrupt_all()
            self._halt(batch)
            return
        now = self.clock()
        if now - self._last_report < self.interval:
            return
        self._last_report = now
        batches = self._batches()
        for slot in self._active():
            self.sink.progress(slot.run_id, self._epoch, batch, batches)
            if self.sink.should_stop(slot.run_id):
                self._cancel(slot)
        if not self._active():
            self._halt(batch)

    def on_epoch_end(self, epoch, logs=None):
        if self._stopped_mid_epoch:
            return  # an incomplete epoch is never recorded, as in RecorderCallback
        seconds = self.clock() - self._epoch_started
        logs = logs or {}
        active = self._active()
        for slot in active:
            metrics = _run_metrics(logs, slot.index, seconds)
            self.sink.record_epoch(slot.run_id, self._epoch, metrics)
            slot.epochs_completed = self._epoch
            slot.last_metrics = metrics
        self._record_layers(self.model, self._epoch)
        batches = self._batches()
        for slot in active:
            self.sink.progress(slot.run_id, self._epoch, batches, batches)
        if self._epoch >= self.epochs:
            return  # a stop request after the last epoch has nothing left to stop
        if self.stop_event is not None and self.stop_event():
            self._interrupt_all()
        else:
            for slot in active:
                if self.sink.should_stop(slot.run_id):
                    self._cancel(slot)
        if not self._active():
            self.model.stop_training = True

    # -- helpers --------------------------------------------------------------------

    def _active(self) -> list[_Slot]:
        return [slot for slot in self.slots if slot.status == "active"]

    def _cancel(self, slot: _Slot) -> None:
        slot.status = "cancelled"
        if self.on_finished is not None:
            self.on_finished(slot.run_id, self._outcome(slot))

    def _interrupt_all(self) -> None:
        for slot in self._active():
            slot.status = "interrupted"

    def _halt(self, batch: int) -> None:
        steps = int(getattr(self.model, "steps_per_execution", 1) or 1)
        self._stopped_mid_epoch = batch + steps < self._batches()
        self.model.stop_training = True

    def _outcome(self, slot: _Slot) -> RunOutcome:
        return RunOutcome(slot.status, slot.epochs_completed, self.device, dict(slot.last_metrics))

    def _batches(self) -> int:
        return int((self.params or {}).get("steps") or 0)

    def _record_layers(self, model, epoch: int) -> None:
        active = self._active()
        if not active:
            return
        statistics = group_layer_statistics(model, self.probe_index, self.probe_y)
        for slot in active:
            self.sink.record_layers(slot.run_id, epoch, statistics(slot.index))


def group_layer_statistics(model, probe_index: np.ndarray, probe_y: np.ndarray):
    """A function of a run's slice index: that run's layer records, as ``RecorderCallback`` makes them.

    The probe's loss is the mean over every run's probe samples, so each slice's gradient
    is 1/runs of its own run's; it is scaled back here.
    """
    layers = dense_layers(model)
    runs = probe_index.shape[1]
    gradients = kernel_gradients(model, probe_index, probe_y)
    weights = [layer.get_weights() for layer in layers]

    def records(index: int) -> list[dict[str, Any]]:
        result = []
        for position, (layer, (kernel, bias), gradient) in enumerate(zip(layers, weights, gradients)):
            for kind, summary in (
                ("kernel", tensor_summary(kernel[index])),
                ("bias", tensor_summary(bias[index])),
                ("gradient", gradient_summary(gradient[index] * np.float32(runs))),
            ):
                result.append({"layer": layer.name, "index": position, "kind": kind, **summary})
        return result

    return records
