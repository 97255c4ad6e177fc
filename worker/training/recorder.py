"""The Keras callback that turns a group's ``model.fit`` into each run's own measurements.

It reports through a ``Sink`` only, so the same callback serves the Celery worker, tests and
benchmarks. Epoch 0 (after init, before any step) and every completed epoch get each run's
metrics, kernel, bias and probe-gradient summaries and unit diagnostics, under its own run id.
The per-batch hook must stay nearly free: it runs once per compiled call of
``STEPS_PER_EXECUTION`` steps, so it only reads a clock and, at most every ``interval``
seconds, reports progress and asks whether to stop. The gradient probe runs once for the
whole group: one call on the group's model, each run on its own probe samples.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

import keras
import numpy as np

from app.domain.spec import RunSetup
from worker.training.datasets import PreparedData
from worker.training.device import describe_device
from worker.training.model import is_plain_mlp, weighted_layers
from worker.training.group_records import activated_layers, group_layer_statistics, group_unit_diagnostics
from worker.training.probe import output_model, probe_indices
from worker.training.sink import RunEpoch, Sink


@dataclass
class RunOutcome:
    status: Literal["succeeded", "diverged", "cancelled", "interrupted"]
    epochs_completed: int
    device: str
    final: dict[str, float]
    diverged_epoch: int | None = None  # first epoch whose loss or val_loss was NaN/Inf


Finished = Callable[[int, RunOutcome], None]


class GroupHalted(Exception):
    """Raised inside ``fit`` when no run of the group is left to train mid-epoch.

    Setting ``stop_training`` would let Keras finish the epoch's validation first (on a
    first stop also tracing the evaluation function), seconds that a shutting-down worker
    does not have before its supervisor's grace ends; nothing of the epoch is recorded.
    """


def diverged(metrics: dict[str, float]) -> bool:
    """The epoch's training or validation loss is NaN or infinite."""
    return not (math.isfinite(metrics["loss"]) and math.isfinite(metrics["val_loss"]))


def run_metrics(logs: dict[str, Any], index: int, seconds: float) -> dict[str, float]:
    """Run ``index``'s epoch metrics from the group's logs (history lists or epoch logs)."""

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

    def __init__(self, index: int, setup: RunSetup):
        self.index = index
        self.setup = setup
        self.status = "active"  # then "cancelled", "diverged" or "interrupted"; "succeeded" once done
        self.epochs_completed = 0
        self.diverged_epoch: int | None = None
        self.last_metrics: dict[str, float] = {}

    @property
    def run_id(self) -> int:
        return self.setup.run_id


class GroupRecorder(keras.callbacks.Callback):
    """Records every run of a group through the sink, one call per run id.

    After ``fit`` returns, ``outcomes()`` says how each run ended and what it recorded last.
    One recorder serves the group's ``fit`` calls (one per epoch); epoch 0 is recorded once,
    by ``record_initial``, before the first.
    """

    def __init__(self, setups: list[RunSetup], sink: Sink, data: PreparedData,
                 stop_event: Callable[[], bool] | None = None, on_finished: Finished | None = None,
                 interval: float = 0.5, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.slots = [_Slot(index, setup) for index, setup in enumerate(setups)]
        self.sink = sink
        self.stop_event = stop_event
        self.on_finished = on_finished
        self.interval = interval
        self.clock = clock
        self.epochs = setups[0].epochs
        self.device = describe_device()
        train_count = len(data.y_train)
        self.probe_index = np.stack(
            [probe_indices(train_count, setup.seed) for setup in setups], axis=1
        ).astype(np.int32)
        self.probe_y = data.y_train[self.probe_index]
        self.probe_x = data.train_rows(self.probe_index)  # (samples, runs, features): the first layer's input
        self._epoch = 0
        self._epoch_started = 0.0
        self._last_report = 0.0
        self._taps = None  # (the group model, the model returning each tapped output, activated_layers)

    # -- what train_group asks ------------------------------------------------------

    def record_initial(self, model) -> None:
        self._record(model, 0, with_metrics=False)

    def keep_going(self) -> bool:
        """Before an epoch: is any run left to train (and no shutdown asked)?"""
        if self.stop_event is not None and self.stop_event():
            self._interrupt_all()
        return bool(self._active())

    def outcomes(self) -> dict[int, RunOutcome]:
        result = {}
        for slot in self.slots:
            if slot.status == "active":
                if slot.diverged_epoch is not None:
                    slot.status = "diverged"
                else:
                    slot.status = "succeeded" if slot.epochs_completed >= self.epochs else "interrupted"
            result[slot.run_id] = self._outcome(slot)
        return result

    # -- Keras hooks ----------------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._epoch_started = self._last_report = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        # Checked before a call of up to steps_per_execution batches rather than after one:
        # overriding a *_batch_end hook turns off Keras's asynchronous callback dispatch and
        # converts every step's logs to Python floats, a per-step sync that matters on
        # accelerators. A stop seen here ends ``fit`` before this call's batches run.
        if self.stop_event is not None and self.stop_event():
            self._interrupt_all()
            raise GroupHalted
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
            raise GroupHalted

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.clock() - self._epoch_started
        logs = logs or {}
        active = self._active()
        for slot in active:
            slot.last_metrics = run_metrics(logs, slot.index, seconds)
            slot.epochs_completed = self._epoch
        self._record(self.model, self._epoch, with_metrics=True)
        batches = self._batches()
        for slot in active:
            self.sink.progress(slot.run_id, self._epoch, batches, batches)
        self._note_divergence(active)
        active = self._active()
        if not active:
            self.model.stop_training = True
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

    def _note_divergence(self, active: list[_Slot]) -> None:
        """A run whose loss went NaN/Inf this epoch ends now (its slice stops being
        recorded), unless the study asked to train on; its NaN never reaches the other
        slices, whose gradients do not depend on it."""
        for slot in active:
            if slot.diverged_epoch is None and diverged(slot.last_metrics):
                slot.diverged_epoch = self._epoch
                if slot.setup.training.stop_on_divergence:
                    slot.status = "diverged"
                    if self.on_finished is not None:
                        self.on_finished(slot.run_id, self._outcome(slot))

    def _interrupt_all(self) -> None:
        for slot in self._active():
            slot.status = "interrupted"

    def _outcome(self, slot: _Slot) -> RunOutcome:
        return RunOutcome(slot.status, slot.epochs_completed, self.device, dict(slot.last_metrics), slot.diverged_epoch)

    def _batches(self) -> int:
        return int((self.params or {}).get("steps") or 0)

    def _record(self, model, epoch: int, with_metrics: bool) -> None:
        """Every active run's metrics (after an epoch), statistics and diagnostics, in one sink call."""
        active = self._active()
        if not active:
            return
        weights = [layer.get_weights() for layer in weighted_layers(model)]  # one copy for both
        statistics = group_layer_statistics(model, self.probe_index, self.probe_y, weights)
        if self._taps is None or self._taps[0] is not model:
            tapped = activated_layers(model, self.slots[0].setup.architecture())
            self._taps = (model, output_model(model, [tap for _, _, tap in tapped]), tapped)
        _, taps, tapped = self._taps
        # A plain MLP's pre-activations follow from each layer's input (mean-field q and c).
        probe_x = self.probe_x if is_plain_mlp(model) else None
        diagnostics = group_unit_diagnostics(taps, tapped, self.probe_index, weights, probe_x)
        self.sink.record(epoch, [RunEpoch(slot.run_id, dict(slot.last_metrics) if with_metrics else None,
                                          statistics(slot.index), diagnostics(slot.index)) for slot in active])
