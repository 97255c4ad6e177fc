"""The phase view's pure parts: cells over seeds, the theory of one σ_b², predicted correlations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

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
    edge = phase.measured_edge(phase.cells(RUNS, finals, "accuracy"), "tanh", 0.05, "accuracy", samples=300)
    assert edge["threshold"] == pytest.approx(0.1 + 0.5 * (0.9 - 0.1))
    assert edge["weight_variance"] == [0.5, 1.75, 4.0] and edge["trainable_depth"] == [None, 9, 3]
    assert edge["trained"] is True and edge["best"] == 0.9
    assert edge["critical_weight_variance"] == 1.75 and edge["critical_range"] == [1.75, 1.75]
    # a tie at the deepest depth: the mean, and the range says how wide
    accuracy[(4.0, 9)] = 0.85
    finals = [{"run_id": run["id"], "accuracy": accuracy[(run["weight_variance"], run["depth"])]} for run in RUNS]
    edge = phase.measured_edge(phase.cells(RUNS, finals, "accuracy"), "tanh", 0.05, "accuracy", samples=300)
    assert edge["critical_weight_variance"] == pytest.approx((1.75 + 4.0) / 2) and edge["critical_range"] == [1.75, 4.0]
    losses = [{"run_id": row["run_id"], "loss": 1 - row["accuracy"]} for row in finals]
    assert phase.measured_edge(phase.cells(RUNS, losses, "loss"), "tanh", 0.05, "loss", samples=300) is None  # no chance level


def _edge(accuracy: dict[tuple[float, int], float], samples: int = 300, runs: list[dict] = RUNS) -> dict:
    finals = [{"run_id": run["id"], "accuracy": accuracy[(run["weight_variance"], run["depth"])]} for run in runs]
    return phase.measured_edge(phase.cells(runs, finals, "accuracy"), "tanh", 0.05, "accuracy", samples=samples)


def test_a_diagram_at_chance_trains_nowhere():
    # every cell between 9 and 15 %: halfway from chance to 15 % (12.5 %) would call 4.0 the
    # σ_w² that trains deepest, from noise
    accuracy = {(0.5, 3): 0.11, (1.75, 3): 0.09, (4.0, 3): 0.12, (0.5, 9): 0.10, (1.75, 9): 0.11, (4.0, 9): 0.15}
    edge = _edge(accuracy)
    assert (edge["trained"], edge["best"], edge["chance"]) == (False, 0.15, 0.1)
    assert edge["margin"] == pytest.approx(0.1)  # 6 cells of 2 seeds on 300 images: the 10 points suffice
    assert (edge["samples"], edge["seeds"], edge["cells"], edge["noise_rate"]) == (300, 2, 6, 0.01)
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


TRAINED = {(0.5, 3): 0.2, (1.75, 3): 0.9, (4.0, 3): 0.8, (0.5, 9): 0.11, (1.75, 9): 0.7, (4.0, 9): 0.3}


@pytest.mark.parametrize("samples", [10, 100, 1000, 10000])
@pytest.mark.parametrize("seeds", [1, 2])
def test_a_diagram_that_trained_still_reports_its_edge_on_any_sample_count(samples, seeds):
    runs = [run for run in RUNS if run["seed"] < seeds]
    edge = _edge(TRAINED, samples, runs)
    assert edge["trained"] is True and edge["seeds"] == seeds and edge["samples"] == samples
    assert edge["trainable_depth"] == [None, 9, 3] and edge["critical_weight_variance"] == 1.75
    assert 0.1 <= edge["margin"] <= 0.8 - 1e-9  # 6 cells: even on 10 images of 1 seed noise needs 0.6


def _chance_best_passes(cells: int, trials: int, chance: float, at: float) -> float:
    """Exactly, P(the best of ``cells`` Binomial(trials, chance)/trials means reaches ``at``)."""
    return 1 - stats.binom.cdf(math.ceil(at * trials - 1e-9) - 1, trials, chance) ** cells


@pytest.mark.parametrize(("samples", "seeds", "ceiling"), [(100, 1, 0.25), (100, 2, 0.205), (200, 1, 0.205),
                                                           (1000, 1, 0.152), (1000, 2, 0.1405)])
def test_the_noise_ceiling_is_the_exact_one_percent_quantile_of_the_best_of_72_cells(samples, seeds, ceiling):
    trials = samples * seeds
    found = phase.noise_ceiling(((trials, 72),))
    assert found == pytest.approx(ceiling)
    assert _chance_best_passes(72, trials, phase.NOISE_CHANCE, found) <= phase.NOISE_RATE
    assert _chance_best_passes(72, trials, phase.NOISE_CHANCE, found - 1 / trials) > phase.NOISE_RATE
    # cells of fewer seeds (a diverged seed) are noisier: the ceiling sits between the two
    mixed = phase.noise_ceiling(((samples, 1), (2 * samples, 71)))
    assert phase.noise_ceiling(((2 * samples, 72),)) <= mixed <= phase.noise_ceiling(((samples, 72),))


def _grid(means: np.ndarray, seeds: int) -> list[dict]:
    """72 cells (9 σ_w² × 8 depths), as phase.cells gives them, with these means over ``seeds`` seeds."""
    return [{"weight_variance": w, "bias_variance": 0.05, "depth": d, "activation": None, "mean": float(means[i]),
             "n": seeds} for i, (w, d) in enumerate((w, d) for w in range(9) for d in (5, 10, 20, 30, 45, 60, 80, 100))]


@pytest.mark.parametrize("chance", [0.10, 0.1135])
@pytest.mark.parametrize("samples", [100, 1000])
@pytest.mark.parametrize("seeds", [1, 2])
def test_noise_at_chance_says_trained_in_at_most_the_stated_rate_of_diagrams(seeds, samples, chance):
    # Every cell learnt nothing: each seed's accuracy is Binomial(samples, chance)/samples. The old fixed
    # 10 points let 13 % (chance 10 %) and 45 % (11.35 %) of such diagrams of 1 seed on 100 images train.
    repeats = 4000
    rng = np.random.default_rng(7 + seeds + samples + int(chance * 1e4))
    means = rng.binomial(samples, chance, size=(repeats, 72, seeds)).mean(axis=2) / samples
    said = sum(phase.measured_edge(_grid(diagram, seeds), "tanh", 0.05, "val_accuracy", samples=samples)["trained"]
               for diagram in means)
    rate = phase.NOISE_RATE
    assert said / repeats <= rate + 2 * math.sqrt(rate * (1 - rate) / repeats)


@pytest.mark.parametrize(("samples", "best", "trained"), [(100, 0.24, False), (100, 0.25, True),
                                                          (1000, 0.19, False), (1000, 0.2, True)])
def test_one_seed_on_100_images_needs_15_points_and_on_1000_the_10(samples, best, trained):
    means = np.full(72, 0.1)
    means[40] = best
    edge = phase.measured_edge(_grid(means, 1), "tanh", 0.05, "val_accuracy", samples=samples)
    assert edge["trained"] is trained
    assert edge["margin"] == pytest.approx(0.15 if samples == 100 else 0.1)
    assert (edge["critical_weight_variance"] is not None) is trained
