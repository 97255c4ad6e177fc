"""Failure tags decided from what real tiny trainings record (app/analysis/failures.py).

Each run trains for real (300 Fashion-MNIST images, a 32-16 MLP, 1-2 epochs) into a
MemorySink; its records are handed to the analysis in the shape storage returns them.
The rules themselves are then checked at their thresholds on hand-made rows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.analysis.failures import (
    DEAD_SHARE, EXPLODING_RATIO, TAGS, VANISHING_RATIO, failure_view, gradient_evidence, run_tags,
)
from app.analysis.summary import initializer_key
from app.domain.spec import RunSetup, run_setup
from worker.training.sink import MemorySink
from worker.training.trainer import train_group

pytestmark = pytest.mark.slow

DIAGNOSTIC_FIELDS = ("activation", "units", "dead_fraction", "saturated_fraction", "mean", "std", "unit_spread",
                     "units_identical")


def config(run_id: int, initializer: str, seed: int = 5, **overrides) -> RunSetup:
    settings = dict(run_id=run_id, seed=seed, dataset="fashion_mnist", train_samples=300, validation_samples=200,
                    hidden_units=[32, 16], epochs=2, batch_size=32, initializer=initializer)
    settings.update(overrides)
    return run_setup(**settings)


def stored(configs: list[RunSetup], sink: MemorySink, outcomes: dict, activation: str = "relu") -> dict:
    """The sink's records as app.storage.diagnostics.failure_inputs returns them (epoch 0 and the latest)."""
    runs, diagnostics, gradients, losses = [], [], [], []
    for run in configs:
        outcome = outcomes[run.run_id]
        runs.append({"id": run.run_id, "initializer": run.kernel.id, "initializer_params": run.kernel.params,
                     "seed": run.seed, "status": outcome.status, "epoch": outcome.epochs_completed,
                     "epochs": run.epochs, "diverged_epoch": outcome.diverged_epoch})
        moments = (0, max(sink.diagnostics[run.run_id]))
        for epoch in moments:
            for row in sink.diagnostics[run.run_id][epoch]:
                diagnostics.append({"run_id": run.run_id, "epoch": epoch, "layer": row["layer"],
                                    "layer_index": row["index"], **{name: row[name] for name in DIAGNOSTIC_FIELDS}})
            for row in sink.layers[run.run_id][epoch]:
                if row["kind"] == "gradient":
                    gradients.append({"run_id": run.run_id, "epoch": epoch, "layer": row["layer"],
                                      "layer_index": row["index"], "l2": row["l2"]})
        losses += [{"run_id": run.run_id, "epoch": row["epoch"],
                    **{name: row[name] for name in ("loss", "val_loss", "accuracy", "val_accuracy")}}
                   for row in sink.epochs.get(run.run_id, [])]
    return {"spec": {"model": {"activation": activation}}, "runs": runs, "diagnostics": diagnostics,
            "gradients": gradients, "losses": losses}


@pytest.fixture(scope="module")
def view(data_dir):
    from worker.training.datasets import prepare_data

    data = prepare_data("fashion_mnist", 300, 200, data_dir)
    configs = [
        config(1, "zeros", output_initializer="glorot_uniform"),
        config(2, "ones"),
        config(3, "he_normal"),
        config(4, "he_normal", seed=6),
        config(5, "random_normal", initializer_params={"stddev": 10.0}, activation="sigmoid", epochs=1),
        config(6, "ones", activation="linear", optimizer="sgd", learning_rate=0.1, epochs=3),
    ]
    sink = MemorySink()
    outcomes = {run.run_id: train_group([run], sink, data=data)[run.run_id] for run in configs}
    return failure_view(42, stored(configs, sink, outcomes)), outcomes


def tags_of(view: dict, run_id: int) -> dict[str, list[dict]]:
    (run,) = [run for run in view["runs"] if run["run_id"] == run_id]
    return {tag["tag"]: tag["evidence"] for tag in run["tags"]}


def test_zeros_is_symmetric_dead_and_gets_no_gradient(view):
    tags = tags_of(view[0], 1)
    assert {"symmetric", "vanishing_gradients", "dead_relu"} <= set(tags) and "diverged" not in tags
    assert {item["layer"] for item in tags["symmetric"]} == {"dense_0", "dense_1"}  # Glorot's output layer is not
    assert all(item["epoch"] == 2 and item["value"] == 0.0 for item in tags["symmetric"])
    assert {item["epoch"] for item in tags["vanishing_gradients"]} == {0, 2}
    assert all(item["layer"] == "dense_0/output" for item in tags["vanishing_gradients"])
    # Both ReLU layers, at init and at the end (the two moments the view reads), every unit dead.
    assert sorted((item["epoch"], item["layer"]) for item in tags["dead_relu"]) == [
        (0, "dense_0"), (0, "dense_1"), (2, "dense_0"), (2, "dense_1")]
    assert all(item["value"] == 1.0 for item in tags["dead_relu"])
    # Its outputs ignore the input: it answers one class, so it ends at chance.
    (stuck,) = tags["no_learning"]
    assert stuck["epoch"] == 2 and abs(stuck["value"] - 0.1) <= 0.02 and "val_accuracy" in stuck["detail"]


def test_ones_is_symmetric_and_its_first_layer_hears_almost_nothing(view):
    tags = tags_of(view[0], 2)
    assert {item["layer"] for item in tags["symmetric"]} == {"dense_0", "dense_1"}
    (at_init,) = [item for item in tags["vanishing_gradients"] if item["epoch"] == 0]
    assert 0 < at_init["value"] < VANISHING_RATIO


def test_he_normal_relu_runs_get_no_tag(view):
    for run_id in (3, 4):
        assert tags_of(view[0], run_id) == {}, run_id


def test_sigmoid_with_a_huge_scale_is_saturated(view):
    tags = tags_of(view[0], 5)
    assert "saturated" in tags and "symmetric" not in tags
    assert {(item["epoch"], item["layer"]) for item in tags["saturated"]} >= {(0, "dense_0"), (1, "dense_0")}
    assert all(item["value"] > 0.5 for item in tags["saturated"])


def test_a_diverged_run_says_in_which_epoch(view):
    tags = tags_of(view[0], 6)
    assert view[1][6].status == "diverged"
    (item,) = tags["diverged"]
    assert item["epoch"] == view[1][6].diverged_epoch == 1
    assert not math.isfinite(item["value"])
    # Its weights are NaN after that epoch: symmetry is judged from epoch 0, and said so.
    assert [item["epoch"] for item in tags["symmetric"]] == [0, 0, 0]
    assert all("weights of epoch 1 are not finite" in item["detail"] for item in tags["symmetric"])


def test_matrix_counts_runs_per_initializer_and_activation(view):
    matrix = view[0]["matrix"]
    cells = {(cell["key"], cell["activation"]): cell for cell in matrix["cells"]}
    assert set(cells) == {("zeros", "relu"), ("ones", "relu"), ("he_normal", "relu"),
                          (initializer_key("random_normal", {"stddev": 10.0}), "sigmoid"), ("ones", "linear")}
    assert matrix["activations"] == ["relu", "sigmoid", "linear"]
    he = cells[("he_normal", "relu")]
    assert he["runs"] == 2 and all(share == 0.0 for share in he["shares"].values())
    assert cells[("zeros", "relu")]["shares"]["symmetric"] == 1.0
    assert cells[("ones", "linear")]["counts"]["diverged"] == 1
    assert set(he["shares"]) == set(TAGS) and view[0]["active"] is False


# -- the rules at their thresholds, on hand-made rows -----------------------------------------

def gradient_rows(epoch: int, first: float, last: float) -> dict[int, list[dict]]:
    return {epoch: [{"epoch": epoch, "layer": "dense_0", "layer_index": 0, "l2": first},
                    {"epoch": epoch, "layer": "dense_1", "layer_index": 1, "l2": 1.0},
                    {"epoch": epoch, "layer": "output", "layer_index": 2, "l2": last}]}


def test_gradient_ratio_thresholds():
    def tags(first, last):
        found = gradient_evidence(gradient_rows(3, first, last))
        return {tag for tag, items in found.items() if items}

    assert tags(EXPLODING_RATIO * 2, 1.0) == {"exploding_gradients"}
    assert tags(EXPLODING_RATIO / 2, 1.0) == set()
    assert tags(VANISHING_RATIO / 2, 1.0) == {"vanishing_gradients"}
    assert tags(VANISHING_RATIO * 2, 1.0) == set()
    assert tags(0.0, 0.0) == {"vanishing_gradients"}
    assert tags(1.0, 0.0) == {"exploding_gradients"}
    assert tags(float("nan"), 1.0) == set()  # a diverged epoch says nothing about the ratio


def test_a_run_still_training_after_a_nan_loss_is_tagged_diverged():
    run = {"id": 1, "status": "running", "diverged_epoch": None}
    losses = [{"epoch": 1, "loss": 0.5, "val_loss": 0.6}, {"epoch": 2, "loss": 0.4, "val_loss": float("inf")}]
    (tag,) = run_tags(run, [], [], losses)
    assert tag["tag"] == "diverged" and tag["evidence"][0]["epoch"] == 2


def test_dead_share_is_strictly_more_than_half():
    assert DEAD_SHARE == 0.5
    rows = [{"epoch": 0, "layer": "dense_0", "layer_index": 0, "units": 4, "dead_fraction": share,
             "saturated_fraction": None, "units_identical": False, "unit_spread": 1.0}
            for share in (DEAD_SHARE,)]
    assert run_tags({"id": 1, "status": "succeeded"}, rows, [], []) == []
    rows[0]["dead_fraction"] = 0.75
    assert [tag["tag"] for tag in run_tags({"id": 1, "status": "succeeded"}, rows, [], [])] == ["dead_relu"]


def test_a_finished_run_at_chance_learnt_nothing():
    def tags(status, accuracy, val_accuracy):
        metrics = [{"epoch": 1, "loss": 2.3, "val_loss": 2.3, "accuracy": 0.3, "val_accuracy": 0.3},
                   {"epoch": 2, "loss": 2.3, "val_loss": 2.3, "accuracy": accuracy, "val_accuracy": val_accuracy}]
        return [tag["tag"] for tag in run_tags({"id": 1, "status": status, "diverged_epoch": None}, [], [], metrics)]

    assert tags("succeeded", 0.1135, 0.098) == ["no_learning"]  # MNIST's largest class, and below chance
    assert tags("succeeded", 0.125, 0.10) == []  # training accuracy above the margin: it learns something
    assert tags("succeeded", 0.10, 0.13) == []
    assert tags("running", 0.10, 0.10) == []  # only a finished run is judged
    # The band is 2 points each side of chance as stored (float32), not as float64 happens to round it.
    assert tags("succeeded", float(np.float32(0.08)), float(np.float32(0.12))) == ["no_learning"]
    assert tags("succeeded", float(np.float32(0.0799)), 0.10) == [] and tags("succeeded", 0.10, float(np.float32(0.1201))) == []


def test_a_succeeded_run_with_a_nan_loss_is_diverged_not_also_learnt_nothing():
    metrics = [{"epoch": 1, "loss": math.nan, "val_loss": math.nan, "accuracy": 0.098, "val_accuracy": 0.1}]
    found = run_tags({"id": 1, "status": "succeeded", "diverged_epoch": None}, [], [], metrics)
    assert [tag["tag"] for tag in found] == ["diverged"]
