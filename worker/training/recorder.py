"""The Keras callback that turns a ``model.fit`` into initlab measurements.

It reports through a ``Sink`` only, so the same callback serves the Celery worker, tests
and benchmarks. The per-batch hook must stay nearly free: it runs 469 times an epoch on
full MNIST, so it only reads a clock and, at most every ``interval`` seconds, reports
progress and asks whether to stop. The expensive work (weights, histograms, the gradient
probe, the layers' outputs on the probe batch) happens once before training and once per epoch.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import keras
import numpy as np

from worker.training.activations import activation_name, layer_diagnostics, layer_outputs, output_model
from worker.training.model import dense_layers
from worker.training.probe import kernel_gradients
from worker.training.sink import Sink
from worker.training.stats import gradient_summary, tensor_summary

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class RecorderCallback(keras.callbacks.Callback):
    """Records epoch 0 (after init, before any step) and every completed epoch.

    After ``fit`` returns, ``cancelled`` / ``interrupted`` say why it stopped early and
    ``epochs_completed`` / ``last_metrics`` what was recorded. One recorder may serve
    several ``fit`` calls (one per epoch, as ``train_run`` does): epoch 0 is recorded once.
    ``network`` is the model whose Dense layers are measured when the fitted model wraps
    it (``train_run`` feeds row indices through an extra input layer); default: the fitted model.
    """

    def __init__(
        self,
        run_id: int,
        sink: Sink,
        probe_x: np.ndarray,
        probe_y: np.ndarray,
        stop_event: Callable[[], bool] | None = None,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        network=None,
        stop_on_divergence: bool = True,
    ):
        super().__init__()
        self.network = network
        self.stop_on_divergence = stop_on_divergence
        self.diverged_epoch: int | None = None
        self.run_id = run_id
        self.sink = sink
        self.probe_x = probe_x
        self.probe_y = probe_y
        self.stop_event = stop_event
        self.interval = interval
        self.clock = clock
        self.cancelled = False
        self.interrupted = False
        self.epochs_completed = 0
        self.last_metrics: dict[str, float] = {}
        self._epoch = 0
        self._epoch_started = 0.0
        self._last_report = 0.0
        self._stopped_mid_epoch = False
        self._initial_recorded = False
        self._taps = None  # (network, the model returning every Dense layer's output)

    def record_initial(self) -> None:
        """Epoch 0: the weights as initialized, before any step (once per recorder)."""
        if not self._initial_recorded:
            self._initial_recorded = True
            self.sink.record_layers(self.run_id, 0, self.layer_statistics())
            self.sink.record_diagnostics(self.run_id, 0, self.unit_diagnostics())

    def on_train_begin(self, logs=None):
        self.record_initial()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._epoch_started = self._last_report = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        # Checked before a batch rather than after it: overriding a *_batch_end hook turns
        # off Keras's asynchronous callback dispatch and converts every step's logs to
        # Python floats, a per-step sync that matters on accelerators (on a 2-core CPU
        # the difference was within noise). A stop seen here lets only this batch finish,
        # or with steps_per_execution this call's batches.
        if self.stop_event is not None and self.stop_event():
            self._stop(batch, interrupted=True)
            return
        now = self.clock()
        if now - self._last_report < self.interval:
            return
        self._last_report = now
        self.sink.progress(self.run_id, self._epoch, batch, self._batches())
        if self.sink.should_stop(self.run_id):
            self._stop(batch, interrupted=False)

    def on_epoch_end(self, epoch, logs=None):
        if self._stopped_mid_epoch:
            # Keras still validates and calls this hook after a mid-epoch stop; the epoch
            # is incomplete, and recording it would put a partial epoch on the charts.
            return
        seconds = self.clock() - self._epoch_started
        logs = logs or {}
        metrics = {name: _as_float(logs.get(name)) for name in EPOCH_METRICS}
        metrics["seconds"] = seconds
        self.sink.record_epoch(self.run_id, self._epoch, metrics)
        self.sink.record_layers(self.run_id, self._epoch, self.layer_statistics())
        self.sink.record_diagnostics(self.run_id, self._epoch, self.unit_diagnostics())
        self.epochs_completed = self._epoch
        self.last_metrics = metrics
        batches = self._batches()
        self.sink.progress(self.run_id, self._epoch, batches, batches)
        if self.diverged_epoch is None and diverged(metrics):
            self.diverged_epoch = self._epoch
            if self.stop_on_divergence:
                self.model.stop_training = True
                return
        if self.stop_event is not None and self.stop_event():
            self.interrupted = True
            self.model.stop_training = True
        elif self.sink.should_stop(self.run_id):
            self.cancelled = True
            self.model.stop_training = True

    @property
    def stopped_by_divergence(self) -> bool:
        return self.diverged_epoch is not None and self.stop_on_divergence

    def layer_statistics(self) -> list[dict[str, Any]]:
        """kernel, bias and probe-gradient summaries for every Dense layer, in layer order."""
        network = self.network if self.network is not None else self.model
        layers = dense_layers(network)
        gradients = kernel_gradients(network, self.probe_x, self.probe_y)
        records = []
        for index, (layer, gradient) in enumerate(zip(layers, gradients)):
            kernel, bias = layer.get_weights()
            for kind, summary in (
                ("kernel", tensor_summary(kernel)),
                ("bias", tensor_summary(bias)),
                ("gradient", gradient_summary(gradient)),
            ):
                records.append({"layer": layer.name, "index": index, "kind": kind, **summary})
        return records

    def unit_diagnostics(self) -> list[dict[str, Any]]:
        """Dead, saturated and identical units of every Dense layer on the probe batch."""
        network = self.network if self.network is not None else self.model
        layers = dense_layers(network)
        if self._taps is None or self._taps[0] is not network:
            self._taps = (network, output_model(network, layers))
        outputs = layer_outputs(self._taps[1], self.probe_x)
        return [
            layer_diagnostics(layer.name, index, activation_name(layer), output, *layer.get_weights())
            for index, (layer, output) in enumerate(zip(layers, outputs))
        ]

    def _stop(self, batch: int, interrupted: bool):
        self.interrupted = self.interrupted or interrupted
        self.cancelled = self.cancelled or not interrupted
        # Keras finishes the batches about to run (one, or steps_per_execution of them);
        # if they end the epoch, the epoch is still complete and gets recorded.
        steps = int(getattr(self.model, "steps_per_execution", 1) or 1)
        self._stopped_mid_epoch = batch + steps < self._batches()
        self.model.stop_training = True

    def _batches(self) -> int:
        return int((self.params or {}).get("steps") or 0)


def diverged(metrics: dict[str, float]) -> bool:
    """The epoch's training or validation loss is NaN or infinite."""
    return not (math.isfinite(metrics["loss"]) and math.isfinite(metrics["val_loss"]))


def _as_float(value) -> float:
    """Keras hands NaN/Inf losses through unchanged; missing metrics become NaN too."""
    if value is None:
        return math.nan
    return float(value)
