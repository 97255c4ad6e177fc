"""Train a group of runs, start to finish: data, the seeded network, ``model.fit`` with the recorder.

The one training path. Runs that share data, model shape and training settings (a study's
grid cell: only the initializers and the seeds differ) train as one model whose layers hold
one slice per run (worker/training/model.py); a lone run is a group of one. The loss is the
sum of the runs' own mean losses, so each slice gets exactly its own run's gradient, and
Adam and SGD update every element on its own, as if alone. Each run visits the samples in
its own order (``epoch_order``; the model gathers one batch per run from the rows it holds)
and draws its own dropout masks, so a run's numbers do not depend on which group it trained in.

Why groups: on 2 CPU cores one 784-128-64-10 run's epoch on full MNIST does ~27 GFLOP in
about 0.4 s of matmuls, but a run alone also pays Keras's per-step work, its own tracing
(~0.7 s) and its own model setup; a group pays them once (bench/RESULTS.md).

Usable without Celery or a database: results go to a ``Sink`` (worker/training/sink.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np

from app.domain.spec import RunSetup
from worker.training import feed
from worker.training.datasets import PreparedData, prepare_data
from worker.training.layers import RunMetrics, rows_variable, summed_run_losses
from worker.training.device import describe_device
from worker.training.lsuv import rescale_group
from worker.training.model import build_network, check_group
from worker.training.optimizers import optimizer
from worker.training.recorder import Finished, GroupHalted, GroupRecorder, RunOutcome, run_metrics
from worker.training.sink import Sink

# Training steps per compiled call: Keras's per-step Python work is paid once per 32 steps
# (a steady full-MNIST epoch of seed 001's model went from 1.06 s to 0.68 s). Callbacks
# see a batch hook once per 32 steps, which only spaces out progress reports and stop
# checks (32 steps of a 16-run group take about 0.4 s on 2 cores).
STEPS_PER_EXECUTION = 32


def train_group(
    setups: Sequence[RunSetup],
    sink: Sink,
    data_dir: Path | None = None,
    stop_event: Callable[[], bool] | None = None,
    data: PreparedData | None = None,
    *,
    record: bool = True,
    on_finished: Finished | None = None,
) -> dict[int, RunOutcome]:
    """Train the runs together and report each to ``sink`` under its own run id.

    A run cancelled through ``sink.should_stop`` (or diverged) stops being recorded at once
    and is handed to ``on_finished``; the others train on, and the group stops when none is
    left. ``stop_event`` (worker shutdown) interrupts them all. Returns every run's outcome,
    by run id. ``data`` skips loading (benchmarks, a worker that trains many groups on one
    set); ``record=False`` drops the recorder so benchmarks can measure what it costs.
    Raises DatasetUnavailable when the data cannot be found.
    """
    check_group(setups)
    first = setups[0]
    if data is None:
        data = prepare_data(first.dataset.name, first.dataset.train_samples, first.dataset.validation_samples,
                            data_dir, first.dataset.subset_seed)

    # A worker trains many groups in one process; this drops Keras's global state (name
    # counters, the TF graph, the kernel cache) left by the previous one. The default
    # gc.collect() is skipped: it cost ~145 ms a run on 2 cores, and Python's own
    # collector frees the old model's reference cycles soon enough.
    keras.backend.clear_session(free_memory=False)
    # Python, numpy and backend seeds, for anything not seeded explicitly.
    keras.utils.set_random_seed(int(first.seed))
    model = build_network(setups, *rows_variable(data.images_train, data.images_val))
    # LSUV runs: each slice rescaled on its own run's batch, before epoch 0 is recorded.
    rescale_group(model, len(data.y_train), setups)
    model.compile(optimizer=optimizer(first), loss=summed_run_losses,
                  metrics=[RunMetrics(len(setups))], steps_per_execution=STEPS_PER_EXECUTION)
    # The optimizer's moments, made now rather than in fit's first trace: a tf.function that
    # creates variables is traced a second time, and the training step's trace is seconds
    # (deep's group of 4: the first 32 steps took 5.6 s with the second trace, 3.1 s without).
    model.optimizer.build(model.trainable_variables)

    runs = len(setups)
    train_count, val_count = len(data.y_train), len(data.y_val)
    batch_size = first.training.batch_size
    validation = feed.validation_data(np.repeat(validation_rows(train_count, val_count)[:, None], runs, axis=1),
                                      np.repeat(data.y_val[:, None], runs, axis=1), batch_size)
    recorder = GroupRecorder(setups, sink, data, stop_event, on_finished) if record else None
    if recorder is not None:
        recorder.record_initial(model)
    history: dict[str, list] = {}
    for epoch in range(1, first.epochs + 1):
        if recorder is not None and not recorder.keep_going():
            break
        order = np.stack([epoch_order(setup.seed, epoch, train_count) for setup in setups], axis=1)
        try:
            history = model.fit(
                **feed.fit_data(order, data.y_train[order], batch_size), validation_data=validation,
                initial_epoch=epoch - 1, epochs=epoch,
                shuffle=False, verbose=0, callbacks=[recorder] if recorder else [],
            ).history
        except GroupHalted:
            break  # every run was cancelled or interrupted mid-epoch; the recorder knows which
    if recorder is not None:
        return recorder.outcomes()
    device = describe_device()
    return {setup.run_id: RunOutcome("succeeded", first.epochs, device, run_metrics(history, index, float("nan")))
            for index, setup in enumerate(setups)}


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The order in which run ``seed`` visits ``count`` training samples in ``epoch`` (from 1).

    Explicit and backend-free, so a run visits the same batches whatever group it trains in.
    """
    return np.random.default_rng([seed, epoch]).permutation(count).astype(np.int32)


def validation_rows(train_count: int, validation_count: int) -> np.ndarray:
    """Indices of the validation rows, which ``rows_variable`` stores after the training rows."""
    return np.arange(train_count, train_count + validation_count, dtype=np.int32)
