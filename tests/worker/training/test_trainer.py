"""Tiny real trainings of a lone run (a group of one, the one training path): what it records,
that it repeats, that it agrees with plain Keras, and how it stops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.domain.spec import RunSetup, run_setup
from worker.training.sink import MemorySink
from worker.training.trainer import train_group

pytestmark = pytest.mark.slow

LAYERS = ["dense_0", "dense_1", "output"]
KINDS = ["kernel", "bias", "gradient"]


def tiny_config(**overrides) -> RunSetup:
    settings = dict(
        run_id=1, seed=11, dataset="fashion_mnist", train_samples=300,
        validation_samples=200, hidden_units=[32, 16], epochs=2, batch_size=32,
    )
    settings.update(overrides)
    return run_setup(**settings)


def train_run(setup: RunSetup, sink, data_dir=None, **kwargs):
    """One run alone: a group of one."""
    return train_group([setup], sink, data_dir, **kwargs)[setup.run_id]


def layer_record(sink: MemorySink, run_id: int, epoch: int, layer: str, kind: str) -> dict:
    (record,) = [
        item for item in sink.layers[run_id][epoch] if item["layer"] == layer and item["kind"] == kind
    ]
    return record


def without_seconds(epochs: list[dict]) -> list[dict]:
    return [{key: value for key, value in epoch.items() if key != "seconds"} for epoch in epochs]


def test_glorot_run_records_epochs_and_layer_stats(data_dir):
    sink = MemorySink()
    outcome = train_run(tiny_config(initializer="glorot_uniform", dropout=0.2), sink, data_dir)
    assert outcome.status == "succeeded" and outcome.epochs_completed == 2
    assert outcome.device == "CPU"
    epochs = sink.epochs[1]
    assert [epoch["epoch"] for epoch in epochs] == [1, 2]
    for epoch in epochs:
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
            assert math.isfinite(epoch[key]), key
        assert epoch["seconds"] > 0
    assert outcome.final == {key: value for key, value in epochs[-1].items() if key != "epoch"}
    assert sorted(sink.layers[1]) == [0, 1, 2]
    for epoch, records in sink.layers[1].items():
        assert [(r["layer"], r["kind"]) for r in records] == [(l, k) for l in LAYERS for k in KINDS]
        assert [r["index"] for r in records] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        for record in records:
            assert len(record["edges"]) == 65 and len(record["counts"]) == 64
    first_kernel = layer_record(sink, 1, 0, "dense_0", "kernel")
    assert sum(first_kernel["counts"]) == 784 * 32
    limit = math.sqrt(6 / (784 + 32))
    assert -limit <= first_kernel["min"] and first_kernel["max"] <= limit
    assert layer_record(sink, 1, 0, "dense_0", "gradient")["norm"] > 0
    assert sink.progress_calls >= 2, "at least one progress report per epoch end"


def test_same_seed_repeats_exactly_and_another_seed_does_not(data_dir):
    runs = []
    for seed in (5, 5, 6):
        sink = MemorySink()
        train_run(tiny_config(seed=seed, dropout=0.3), sink, data_dir)
        runs.append(sink)
    assert without_seconds(runs[0].epochs[1]) == without_seconds(runs[1].epochs[1])
    assert runs[0].layers[1][2] == runs[1].layers[1][2]
    assert runs[0].layers[1][0] != runs[2].layers[1][0]


def test_layers_of_equal_shape_get_different_weights(data_dir):
    sink = MemorySink()
    train_run(tiny_config(hidden_units=[16, 16, 16], epochs=1, initializer="he_normal"), sink, data_dir)
    second = layer_record(sink, 1, 0, "dense_1", "kernel")
    third = layer_record(sink, 1, 0, "dense_2", "kernel")
    assert second["counts"] != third["counts"] or second["mean"] != third["mean"]


def test_ones_initializer_diverges_without_crashing(data_dir):
    sink = MemorySink()
    outcome = train_run(tiny_config(initializer="ones"), sink, data_dir)
    assert outcome.epochs_completed == 2
    losses = [epoch["loss"] for epoch in sink.epochs[1]]
    assert len(losses) == 2, losses
    assert all(math.isnan(loss) or loss > 5.0 for loss in losses), losses


def test_zeros_initializer_has_no_spread_and_no_hidden_gradient(data_dir):
    sink = MemorySink()
    train_run(tiny_config(initializer="zeros"), sink, data_dir)
    for layer in LAYERS:
        assert layer_record(sink, 1, 0, layer, "kernel")["std"] == 0.0
    for layer in ("dense_0", "dense_1"):
        gradient = layer_record(sink, 1, 0, layer, "gradient")
        assert gradient["norm"] == 0.0 and gradient["max"] == gradient["min"] == 0.0


def test_separate_output_initializer_and_params(data_dir):
    sink = MemorySink()
    config = tiny_config(
        epochs=1, initializer="random_normal", initializer_params={"stddev": 0.01},
        output_initializer="constant", output_initializer_params={"value": 0.25},
        bias_initializer="constant", bias_initializer_params={"value": 0.5},
    )
    train_run(config, sink, data_dir)
    assert layer_record(sink, 1, 0, "dense_0", "kernel")["std"] == pytest.approx(0.01, rel=0.05)
    output = layer_record(sink, 1, 0, "output", "kernel")
    assert output["min"] == output["max"] == 0.25
    assert layer_record(sink, 1, 0, "dense_1", "bias")["mean"] == 0.5


def test_should_stop_after_first_epoch_cancels(data_dir):
    sink = MemorySink(stop_after_epoch=1)
    outcome = train_run(tiny_config(epochs=3), sink, data_dir)
    assert outcome.status == "cancelled" and outcome.epochs_completed == 1
    assert [epoch["epoch"] for epoch in sink.epochs[1]] == [1]
    assert sorted(sink.layers[1]) == [0, 1]


def test_stop_event_at_epoch_end_interrupts(data_dir):
    sink = MemorySink()
    outcome = train_run(
        tiny_config(epochs=3), sink, data_dir, stop_event=lambda: len(sink.epochs.get(1, [])) >= 1
    )
    assert outcome.status == "interrupted" and outcome.epochs_completed == 1


def test_stop_event_before_the_first_epoch_records_only_the_initial_state(data_dir):
    sink = MemorySink()
    outcome = train_run(tiny_config(), sink, data_dir, stop_event=lambda: True)
    assert outcome.status == "interrupted" and outcome.epochs_completed == 0
    assert sink.epochs.get(1, []) == [] and sorted(sink.layers[1]) == [0]
    assert outcome.final == {}


def test_a_shutdown_mid_epoch_skips_the_epochs_validation(data_dir, monkeypatch):
    """A shutting-down worker has seconds before its supervisor kills it: Keras's validation
    of an epoch nobody records (a first evaluation traces its function) must not run."""
    import keras

    evaluations = []
    evaluate = keras.Model.evaluate
    monkeypatch.setattr(keras.Model, "evaluate", lambda self, *a, **k: evaluations.append(1) or evaluate(self, *a, **k))
    sink = MemorySink()
    asked_after_epoch_1 = []

    def shutting_down() -> bool:
        # Asked at epoch 1's end, before epoch 2 and then before epoch 2's first compiled call:
        # the third question is inside epoch 2's fit.
        if sink.epochs.get(1):
            asked_after_epoch_1.append(1)
        return len(asked_after_epoch_1) >= 3

    outcome = train_run(tiny_config(epochs=3, batch_size=8), sink, data_dir, stop_event=shutting_down)
    assert outcome.status == "interrupted" and outcome.epochs_completed == 1
    assert [epoch["epoch"] for epoch in sink.epochs[1]] == [1] and sorted(sink.layers[1]) == [0, 1]
    assert len(evaluations) == 1  # epoch 1's validation only


def test_prepared_data_skips_loading(data_dir):
    from worker.training.datasets import prepare_data

    data = prepare_data("mnist", 200, 100, data_dir, subset_seed=1)
    sink = MemorySink()
    outcome = train_run(tiny_config(dataset="mnist", epochs=1), sink, data_dir=None, data=data)
    assert outcome.status == "succeeded" and np.isfinite(outcome.final["loss"])


class CancelAfterProgressSink(MemorySink):
    """Cancelled by the user once it has seen ``limit`` progress reports."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def should_stop(self, run_id: int) -> bool:
        return self.progress_calls >= self.limit


def fit_with_recorder(data_dir, sink, clock, epochs=2):
    """The group's model fitted by hand one step per call, so the recorder's batch hook runs every batch."""
    import keras

    from worker.training.datasets import prepare_data
    from worker.training.layers import RunMetrics, rows_variable, summed_run_losses
    from worker.training.model import build_network
    from worker.training.recorder import GroupHalted, GroupRecorder
    from worker.training.trainer import epoch_order

    data = prepare_data("mnist", 300, 100, data_dir)
    setup = run_setup(7, 0, dataset="mnist", train_samples=300, validation_samples=100, hidden_units=[8],
                      activation="tanh", initializer="lecun_normal", optimizer="sgd", epochs=epochs)
    keras.backend.clear_session(free_memory=False)
    model = build_network([setup], *rows_variable(data.x_train, data.x_val))
    model.compile(optimizer="sgd", loss=summed_run_losses, metrics=[RunMetrics(1)], steps_per_execution=1)
    recorder = GroupRecorder([setup], sink, data, clock=clock)
    recorder.record_initial(model)
    validation = (np.arange(300, 400, dtype=np.int32)[:, None], data.y_val[:, None])
    for epoch in range(1, epochs + 1):
        if not recorder.keep_going():
            break
        order = epoch_order(0, epoch, 300)[:, None]
        try:
            model.fit(order, data.y_train[order], validation_data=validation, initial_epoch=epoch - 1,
                      epochs=epoch, batch_size=10, shuffle=False, verbose=0, callbacks=[recorder])
        except GroupHalted:
            break
    return recorder.outcomes()[7]


def fake_clock(step: float):
    """Advances ``step`` seconds per reading, so throttling no longer depends on CPU speed."""
    ticks = iter(range(10**9))
    return lambda: next(ticks) * step


def test_progress_is_throttled_by_the_clock(data_dir):
    sink = MemorySink()
    outcome = fit_with_recorder(data_dir, sink, fake_clock(0.2))
    # 30 batches an epoch, one clock reading each, a report at most every 0.5 s (3 readings),
    # plus one report at each epoch end.
    assert 2 * (30 // 3) <= sink.progress_calls <= 2 * (30 // 3 + 1) + 2
    assert outcome.epochs_completed == 2 and outcome.status == "succeeded"


def test_cancel_mid_epoch_records_no_partial_epoch(data_dir):
    sink = CancelAfterProgressSink(limit=2)
    outcome = fit_with_recorder(data_dir, sink, fake_clock(1.0))
    assert outcome.status == "cancelled"
    assert outcome.epochs_completed == 0 and sink.epochs.get(7, []) == []
    assert sorted(sink.layers[7]) == [0]


def test_a_run_whose_loss_explodes_ends_diverged_after_recording_that_epoch(data_dir):
    sink = MemorySink()
    exploding = dict(initializer="ones", activation="linear", optimizer="sgd", learning_rate=0.1, epochs=3)
    outcome = train_run(tiny_config(**exploding), sink, data_dir)
    assert (outcome.status, outcome.diverged_epoch, outcome.epochs_completed) == ("diverged", 1, 1)
    (epoch,) = sink.epochs[1]
    assert epoch["epoch"] == 1 and not math.isfinite(epoch["loss"])
    assert sorted(sink.layers[1]) == [0, 1]  # the epoch it diverged in is recorded, then it stops

    sink = MemorySink()
    outcome = train_run(tiny_config(stop_on_divergence=False, **exploding), sink, data_dir)
    assert (outcome.status, outcome.diverged_epoch, outcome.epochs_completed) == ("diverged", 1, 3)
    assert sorted(sink.layers[1]) == [0, 1, 2, 3]


def test_a_lone_run_agrees_with_plain_keras(data_dir):
    """The same network, seeds, data order and optimizer in a plain Keras Sequential model fitted
    batch by batch: the group of one's metrics and final weights must be the plain model's."""
    import keras

    from app.domain.layers import BIAS, KERNEL, layer_seed
    from worker.training.datasets import prepare_data
    from worker.training.initializers import build
    from worker.training.trainer import epoch_order

    data = prepare_data("mnist", 320, 200, data_dir)
    setup = run_setup(1, 4, dataset="mnist", train_samples=320, validation_samples=200, hidden_units=[24, 12],
                      initializer="he_normal", epochs=2, batch_size=32)
    sink = MemorySink()
    train_group([setup], sink, data=data)
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(4)
    layers = [keras.layers.Dense(width, activation="relu" if index < 2 else None,
                                 kernel_initializer=build(setup.kernel_of(index), layer_seed(4, index, KERNEL)),
                                 bias_initializer=build(setup.bias, layer_seed(4, index, BIAS)))
              for index, width in enumerate([24, 12, 10])]
    plain = keras.Sequential([keras.Input((784,)), *layers])
    plain.compile(optimizer=keras.optimizers.Adam(0.001),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    for epoch in (1, 2):
        order = epoch_order(4, epoch, 320)
        history = plain.fit(data.x_train[order], data.y_train[order], validation_data=(data.x_val, data.y_val),
                            batch_size=32, shuffle=False, verbose=0).history
        mine = sink.epochs[1][epoch - 1]
        assert mine["loss"] == pytest.approx(history["loss"][-1], rel=1e-4)
        assert mine["val_loss"] == pytest.approx(history["val_loss"][-1], rel=1e-4)
        assert mine["val_accuracy"] == pytest.approx(history["val_accuracy"][-1], abs=1e-6)
    recorded = {record["layer"]: record for record in sink.layers[1][2] if record["kind"] == "kernel"}
    for name, layer in zip(["dense_0", "dense_1", "output"], layers):
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        assert recorded[name]["mean"] == pytest.approx(float(kernel.mean()), rel=1e-3, abs=1e-7)
        assert recorded[name]["std"] == pytest.approx(float(kernel.std()), rel=1e-3)
