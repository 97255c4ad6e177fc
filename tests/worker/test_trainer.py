"""Tiny real trainings: what a run records, that it repeats, and how it stops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.training.sink import MemorySink
from worker.training.trainer import RunConfig, train_run

pytestmark = pytest.mark.slow

LAYERS = ["dense_0", "dense_1", "output"]
KINDS = ["kernel", "bias", "gradient"]


def tiny_config(**overrides) -> RunConfig:
    settings = dict(
        run_id=1, seed=11, dataset="fashion_mnist", train_samples=300,
        validation_samples=200, hidden_units=[32, 16], epochs=2, batch_size=32,
    )
    settings.update(overrides)
    return RunConfig(**settings)


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


def test_stop_event_mid_epoch_records_no_partial_epoch(data_dir):
    sink = MemorySink()
    outcome = train_run(tiny_config(), sink, data_dir, stop_event=lambda: True)
    assert outcome.status == "interrupted" and outcome.epochs_completed == 0
    assert sink.epochs.get(1, []) == [] and sorted(sink.layers[1]) == [0]
    assert outcome.final == {}


def test_bad_config_lists_every_problem():
    config = tiny_config(
        activation="swish2", dropout=1.5, optimizer="rmsprop", epochs=0,
        initializer="nope", bias_initializer="orthogonal",
    )
    with pytest.raises(ValueError) as caught:
        train_run(config, MemorySink())
    message = str(caught.value)
    for fragment in ("swish2", "dropout", "rmsprop", "epochs", "nope", "biases"):
        assert fragment in message


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
    import keras

    from worker.training.datasets import prepare_data
    from worker.training.initializers import build_initializer
    from worker.training.model import build_mlp
    from worker.training.recorder import RecorderCallback

    data = prepare_data("mnist", 300, 100, data_dir)
    model = build_mlp(
        input_dim=784, num_classes=10, hidden_units=[8], activation="tanh", dropout=0.0, seed=0,
        kernel_initializer=lambda seed: build_initializer("lecun_normal", None, seed),
        bias_initializer=lambda seed: build_initializer("zeros", None, seed),
    )
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    recorder = RecorderCallback(7, sink, data.x_train[:32], data.y_train[:32], clock=clock)
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
              epochs=epochs, batch_size=10, verbose=0, callbacks=[recorder])
    return recorder


def fake_clock(step: float):
    """Advances ``step`` seconds per reading, so throttling no longer depends on CPU speed."""
    ticks = iter(range(10**9))
    return lambda: next(ticks) * step


def test_progress_is_throttled_by_the_clock(data_dir):
    sink = MemorySink()
    recorder = fit_with_recorder(data_dir, sink, fake_clock(0.2))
    # 30 batches an epoch, one clock reading each, a report at most every 0.5 s (3 readings),
    # plus one report at each epoch end.
    assert 2 * (30 // 3) <= sink.progress_calls <= 2 * (30 // 3 + 1) + 2
    assert recorder.epochs_completed == 2 and not recorder.cancelled


def test_cancel_mid_epoch_records_no_partial_epoch(data_dir):
    sink = CancelAfterProgressSink(limit=2)
    recorder = fit_with_recorder(data_dir, sink, fake_clock(1.0))
    assert recorder.cancelled and not recorder.interrupted
    assert recorder.epochs_completed == 0 and sink.epochs.get(7, []) == []
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
