"""Groups: each run's numbers in a group equal its own lone run's (a group of one), and it stops on its own.

Real tiny trainings (300 Fashion-MNIST images, 2 epochs): the same runs trained together and
each in a group of its own, compared epoch by epoch and layer by layer.
"""

from __future__ import annotations

import math

import pytest

from app.domain.spec import RunSetup, run_setup
from support.fused import assert_same_epochs, assert_same_layers
from worker.training.sink import MemorySink
from worker.training.trainer import train_group as train

pytestmark = pytest.mark.slow



def config(run_id: int, seed: int, initializer: str = "glorot_uniform", **overrides) -> RunSetup:
    settings = dict(run_id=run_id, seed=seed, dataset="fashion_mnist", train_samples=300, validation_samples=200,
                    hidden_units=[32, 16], epochs=2, batch_size=32, initializer=initializer)
    settings.update(overrides)
    return run_setup(**settings)


def train_group(configs, sink, data, **kwargs):
    return train(configs, sink, data=data, **kwargs)


def separate(configs, data) -> MemorySink:
    sink = MemorySink()
    for run in configs:
        train([run], sink, data=data)
    return sink


def test_fused_runs_equal_their_separate_runs(data):
    runs = [
        config(1, 0, "glorot_uniform"),
        config(2, 1, "he_normal"),
        config(3, 2, "zeros"),
        config(4, 3, "random_normal", initializer_params={"stddev": 0.01}),
        config(5, 1, "orthogonal", output_initializer="lecun_uniform", bias_initializer="constant",
               bias_initializer_params={"value": 0.1}),
    ]
    fused = MemorySink()
    outcomes = train_group(runs, fused, data)
    alone = separate(runs, data)
    assert {run_id: outcome.status for run_id, outcome in outcomes.items()} == dict.fromkeys(range(1, 6), "succeeded")
    for run in runs:
        assert_same_epochs(fused, alone, run.run_id)
        assert_same_layers(fused, alone, run.run_id)
        assert outcomes[run.run_id].epochs_completed == 2
        assert outcomes[run.run_id].final == {k: v for k, v in fused.epochs[run.run_id][-1].items() if k != "epoch"}


def test_sgd_runs_match_too(data):
    # Plain SGD would show a gradient scaled by the group size, which Adam hides.
    runs = [config(1, 4, "he_uniform", optimizer="sgd", learning_rate=0.05),
            config(2, 5, "lecun_normal", optimizer="sgd", learning_rate=0.05)]
    fused = MemorySink()
    train_group(runs, fused, data)
    alone = separate(runs, data)
    for run in runs:
        assert_same_epochs(fused, alone, run.run_id)


def test_each_run_keeps_its_own_dropout_masks(data):
    a, b, c = (config(1, 7, "he_normal", dropout=0.3), config(2, 8, "he_normal", dropout=0.3),
               config(3, 9, "glorot_normal", dropout=0.3))
    with_b, with_c = MemorySink(), MemorySink()
    train_group([a, b], with_b, data)
    train_group([c, a], with_c, data)  # another partner, and another slice position
    alone = separate([a, b], data)
    # Run 1's masks come from its own seed stream: the same alone, beside either partner
    # and in either slice (a mask shared by the group would follow the partner or the slot).
    assert_same_epochs(with_b, alone, 1)
    assert_same_epochs(with_c, alone, 1)
    assert_same_epochs(with_b, alone, 2)
    no_dropout = MemorySink()
    train_group([config(1, 7, "he_normal"), config(2, 8, "he_normal")], no_dropout, data)
    assert no_dropout.epochs[1][0]["loss"] != with_b.epochs[1][0]["loss"]  # the masks did act


def test_a_cancelled_run_stops_alone(data):
    class CancelRun2AfterEpoch1(MemorySink):
        def should_stop(self, run_id: int) -> bool:
            return run_id == 2 and self._epoch_seen.get(2, 0) >= 1

    runs = [config(1, 0, epochs=3), config(2, 1, epochs=3), config(3, 2, epochs=3)]
    sink = CancelRun2AfterEpoch1()
    finished = []
    outcomes = train_group(runs, sink, data, on_finished=lambda run_id, outcome: finished.append((run_id, outcome.status)))
    assert finished == [(2, "cancelled")]
    assert outcomes[2].status == "cancelled" and outcomes[2].epochs_completed == 1
    assert [epoch["epoch"] for epoch in sink.epochs[2]] == [1] and sorted(sink.layers[2]) == [0, 1]
    for run_id in (1, 3):
        assert outcomes[run_id].status == "succeeded"
        assert [epoch["epoch"] for epoch in sink.epochs[run_id]] == [1, 2, 3]
        assert sorted(sink.layers[run_id]) == [0, 1, 2, 3]


def test_the_group_stops_when_every_run_is_cancelled(data):
    sink = MemorySink(stop_after_epoch=1)
    outcomes = train_group([config(1, 0, epochs=4), config(2, 1, epochs=4)], sink, data)
    assert sorted(outcomes) == [1, 2]
    assert {outcome.status for outcome in outcomes.values()} == {"cancelled"}
    assert all(outcome.epochs_completed == 1 for outcome in outcomes.values())
    assert all(len(sink.epochs[run_id]) == 1 for run_id in (1, 2))


def test_a_shutdown_interrupts_every_run_without_a_partial_epoch(data):
    sink = MemorySink()
    outcomes = train_group([config(1, 0), config(2, 1)], sink, data,
                           stop_event=lambda: len(sink.epochs.get(2, [])) >= 1)
    assert sorted(outcomes) == [1, 2]
    assert {outcome.status for outcome in outcomes.values()} == {"interrupted"}
    assert all(outcome.epochs_completed == 1 for outcome in outcomes.values())

    sink = MemorySink()
    outcomes = train_group([config(1, 0), config(2, 1)], sink, data, stop_event=lambda: True)
    assert sorted(outcomes) == [1, 2]
    assert all(outcome.status == "interrupted" and outcome.epochs_completed == 0 for outcome in outcomes.values())
    assert sink.epochs == {} and all(sorted(sink.layers[run_id]) == [0] for run_id in (1, 2))


# A linear network of all-ones kernels under SGD at 0.1 overflows in its first epoch;
# Glorot's stays finite under the same settings (a fused group shares them).
EXPLODING = dict(activation="linear", optimizer="sgd", learning_rate=0.1, epochs=3)


def test_a_diverging_run_ends_alone_and_does_not_disturb_its_neighbours(data):
    runs = [config(1, 0, "ones", **EXPLODING), config(2, 1, "glorot_uniform", **EXPLODING)]
    fused = MemorySink()
    finished = []
    outcomes = train_group(runs, fused, data, on_finished=lambda run_id, outcome: finished.append((run_id, outcome.status)))
    assert finished == [(1, "diverged")]
    assert (outcomes[1].status, outcomes[1].diverged_epoch, outcomes[1].epochs_completed) == ("diverged", 1, 1)
    assert math.isnan(fused.epochs[1][0]["loss"]) and sorted(fused.layers[1]) == [0, 1]  # that epoch is recorded
    assert outcomes[2].status == "succeeded" and outcomes[2].diverged_epoch is None
    alone = separate(runs, data)
    assert [epoch["epoch"] for epoch in alone.epochs[1]] == [1]  # alone it diverges in the same epoch
    assert_same_epochs(fused, alone, 2)


def test_with_stop_on_divergence_off_a_diverged_run_trains_on(data):
    runs = [config(1, 0, "ones", stop_on_divergence=False, **EXPLODING),
            config(2, 1, "glorot_uniform", stop_on_divergence=False, **EXPLODING)]
    sink = MemorySink()
    outcomes = train_group(runs, sink, data)
    assert (outcomes[1].status, outcomes[1].diverged_epoch, outcomes[1].epochs_completed) == ("diverged", 1, 3)
    assert [epoch["epoch"] for epoch in sink.epochs[1]] == [1, 2, 3]
    assert outcomes[2].status == "succeeded"


def test_runs_that_differ_in_shape_or_training_are_refused(data):
    with pytest.raises(ValueError, match="hidden_units"):
        train_group([config(1, 0), config(2, 1, hidden_units=[8])], MemorySink(), data)
    with pytest.raises(ValueError, match="learning_rate"):
        train_group([config(1, 0), config(2, 1, learning_rate=0.01)], MemorySink(), data)
    with pytest.raises(ValueError, match="twice"):
        train_group([config(1, 0), config(1, 1)], MemorySink(), data)


def test_fused_lsuv_and_custom_runs_equal_their_separate_runs(data):
    # LSUV rescales each slice on its own run's batch, so beside other runs it is as alone.
    clipped = {"distribution": "truncated_normal", "mode": "fan_in", "scale": 2.0, "clip_sigma": 1.5}
    runs = [
        config(1, 0, "lsuv"),
        config(2, 1, "he_normal", output_initializer="lsuv"),
        config(3, 2, "lsuv", bias_initializer="random_uniform", output_initializer="glorot_uniform"),
        config(4, 3, "custom", initializer_params=clipped),
        config(5, 4, "orthogonal"),
    ]
    fused = MemorySink()
    outcomes = train_group(runs, fused, data)
    alone = separate(runs, data)
    assert {run_id: outcome.status for run_id, outcome in outcomes.items()} == dict.fromkeys(range(1, 6), "succeeded")
    for run in runs:
        assert_same_epochs(fused, alone, run.run_id)
        assert_same_layers(fused, alone, run.run_id)
    # Run 1's epoch-0 kernels are LSUV's: an orthogonal 784×32 kernel (run 5) has std 1/28 whatever its seed.
    kernel_std = {(run_id, r["layer"]): r["std"]
                  for run_id in (1, 5) for r in fused.layers[run_id][0] if r["kind"] == "kernel"}
    assert kernel_std[(1, "dense_0")] != pytest.approx(kernel_std[(5, "dense_0")], rel=1e-2)
