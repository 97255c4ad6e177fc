"""The phase view's pure parts: cells over seeds, the theory of one σ_b², predicted correlations."""

from __future__ import annotations

import math

import pytest

from app.analysis import phase

RUNS = [{"id": i, "seed": seed, "status": "succeeded", "activation": None, "depth": depth, "weight_variance": w,
         "bias_variance": 0.05}
        for i, (w, depth, seed) in enumerate([(w, d, s) for d in (3, 9) for w in (0.5, 1.75, 4.0) for s in (0, 1)])]


def test_cells_aggregate_seeds_and_keep_divergence_apart():
    finals = [{"run_id": run["id"], "accuracy": 0.1 + 0.1 * run["weight_variance"] + 0.01 * run["seed"]} for run in RUNS]
    finals[0]["accuracy"] = math.nan  # a diverged seed
    cells = phase.cells(RUNS, finals, "accuracy")
    assert [(c["weight_variance"], c["depth"]) for c in cells] == [(w, d) for d in (3, 9) for w in (0.5, 1.75, 4.0)]
    first, second = cells[0], cells[1]
    assert (first["n"], first["diverged"], first["mean"]) == (1, 1, pytest.approx(0.16))
    assert (second["n"], second["mean"], second["std"]) == (2, pytest.approx(0.28), pytest.approx(0.005))
    assert second["run_ids"] == [2, 3] and second["finished"] == 2


def test_theory_puts_the_edge_where_chi_1_is_one_and_the_depth_curve_peaks_there():
    found = phase.theory("tanh", 0.05, [0.5, 1.0, 2.0, 4.0], depth_limit=120)
    assert found["critical_weight_variance"] == pytest.approx(1.7609546, abs=1e-5)
    weights, depths = found["curve"]["weight_variance"], found["curve"]["depth"]
    assert found["critical_weight_variance"] in weights
    at = weights.index(found["critical_weight_variance"])
    assert depths[at] == 120  # ξ_c diverges at σ_w*: the curve is cut at the limit there
    left, right = depths[:at], depths[at:]
    assert all(b >= a for a, b in zip(left, left[1:])) and all(b <= a for a, b in zip(right, right[1:]))
    assert depths[0] < 30 and depths[-1] < 120
    assert [p["weight_variance"] for p in found["points"]] == [0.5, 1.0, 2.0, 4.0]


def test_correlations_start_from_the_measured_first_layer():
    at_init = [{"run_id": run["id"], "layer_index": layer, "preact_length": 0.5, "preact_correlation": 0.6 + 0.01 * layer}
               for run in RUNS for layer in range(run["depth"] + 1)]
    found = phase.correlations(RUNS, at_init, {run["id"]: "tanh" for run in RUNS})
    ordered = next(c for c in found if c["weight_variance"] == 0.5 and c["depth"] == 9)
    assert ordered["layers"] == list(range(1, 10)) and ordered["measured_c"][0] == pytest.approx(0.6)
    predicted = ordered["predicted"]["c"]
    assert predicted[0] == pytest.approx(0.6) and len(predicted) == 9
    assert all(b > a for a, b in zip(predicted, predicted[1:]))  # ordered phase: the correlation climbs to 1
    chaotic = next(c for c in found if c["weight_variance"] == 4.0 and c["depth"] == 9)["predicted"]["c"]
    assert chaotic[-1] < chaotic[0]  # chaotic phase: nearby inputs decorrelate


def test_the_measured_edge_is_the_weight_variance_that_trains_deepest():
    # depth 3 trains everywhere but at 0.5; depth 9 only at 1.75: the measured σ_w* is 1.75
    accuracy = {(0.5, 3): 0.2, (1.75, 3): 0.9, (4.0, 3): 0.8, (0.5, 9): 0.11, (1.75, 9): 0.7, (4.0, 9): 0.3}
    finals = [{"run_id": run["id"], "accuracy": accuracy[(run["weight_variance"], run["depth"])]} for run in RUNS]
    edge = phase.measured_edge(phase.cells(RUNS, finals, "accuracy"), "tanh", 0.05, "accuracy")
    assert edge["threshold"] == pytest.approx(0.1 + 0.5 * (0.9 - 0.1))
    assert edge["weight_variance"] == [0.5, 1.75, 4.0] and edge["trainable_depth"] == [None, 9, 3]
    assert edge["trained"] is True and edge["best"] == 0.9
    assert edge["critical_weight_variance"] == 1.75 and edge["critical_range"] == [1.75, 1.75]
    # a tie at the deepest depth: the mean, and the range says how wide
    accuracy[(4.0, 9)] = 0.85
    finals = [{"run_id": run["id"], "accuracy": accuracy[(run["weight_variance"], run["depth"])]} for run in RUNS]
    edge = phase.measured_edge(phase.cells(RUNS, finals, "accuracy"), "tanh", 0.05, "accuracy")
    assert edge["critical_weight_variance"] == pytest.approx((1.75 + 4.0) / 2) and edge["critical_range"] == [1.75, 4.0]
    losses = [{"run_id": row["run_id"], "loss": 1 - row["accuracy"]} for row in finals]
    assert phase.measured_edge(phase.cells(RUNS, losses, "loss"), "tanh", 0.05, "loss") is None  # no chance level


def _edge(accuracy: dict[tuple[float, int], float]) -> dict:
    finals = [{"run_id": run["id"], "accuracy": accuracy[(run["weight_variance"], run["depth"])]} for run in RUNS]
    return phase.measured_edge(phase.cells(RUNS, finals, "accuracy"), "tanh", 0.05, "accuracy")


def test_a_diagram_at_chance_trains_nowhere():
    # every cell between 9 and 15 %: halfway from chance to 15 % (12.5 %) would call 4.0 the
    # σ_w² that trains deepest, from noise
    accuracy = {(0.5, 3): 0.11, (1.75, 3): 0.09, (4.0, 3): 0.12, (0.5, 9): 0.10, (1.75, 9): 0.11, (4.0, 9): 0.15}
    edge = _edge(accuracy)
    assert (edge["trained"], edge["best"], edge["chance"], edge["margin"]) == (False, 0.15, 0.1, 0.1)
    assert edge["trainable_depth"] == [None, None, None]
    assert edge["critical_weight_variance"] is None and edge["critical_range"] == []
    assert edge["weight_variance"] == [0.5, 1.75, 4.0]


@pytest.mark.parametrize(("best", "trained"), [(0.19, False), (0.2, True), (0.25, True)])
def test_the_best_cell_must_be_ten_points_above_chance(best, trained):
    accuracy = {(0.5, 3): 0.1, (1.75, 3): best, (4.0, 3): 0.1, (0.5, 9): 0.1, (1.75, 9): 0.1, (4.0, 9): 0.1}
    edge = _edge(accuracy)
    assert edge["trained"] is trained
    assert edge["critical_weight_variance"] == (1.75 if trained else None)
    assert edge["trainable_depth"] == ([None, 3, None] if trained else [None, None, None])
