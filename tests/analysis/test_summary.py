"""Seed aggregation, the per-initializer verdict and the progress arithmetic: pure functions."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from app.analysis.progress import eta_seconds, fraction_done
from app.analysis.summary import (
    aggregate, group_verdict, initializer_key, mark_leader, mark_leaders, mean_std, pick_epochs, run_verdict,
)


def _rows(val_accuracy, val_loss=None, seconds=2.0):
    return [{"epoch": i + 1, "loss": 1.0 / (i + 1), "accuracy": acc, "val_loss": (val_loss or [0.5] * len(val_accuracy))[i],
             "val_accuracy": acc, "seconds": seconds} for i, acc in enumerate(val_accuracy)]


def test_mean_std_leave_out_non_finite_values():
    assert mean_std([1.0, 3.0, math.nan, math.inf, None]) == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "n": 2}
    assert mean_std([]) == {"mean": None, "std": None, "n": 0}


def test_mean_std_is_the_sample_std_of_the_statistics():
    """One definition for one quantity: the table's ± is the std the t intervals use (ddof=1)."""
    from app.analysis.statistics import mean_ci

    values = [0.40, 0.46, 0.53, math.nan]
    assert mean_std(values)["std"] == pytest.approx(float(np.std([0.40, 0.46, 0.53], ddof=1)))
    assert mean_std(values)["std"] == pytest.approx(mean_ci(values)["std"])
    assert mean_std([0.5]) == {"mean": 0.5, "std": None, "n": 1}, "one run has no spread"
    assert mean_std([0.098] * 3) == {"mean": 0.098, "std": 0.0, "n": 3}, "equal values are their own mean, exactly"


def test_aggregate_per_epoch_over_the_runs_that_reached_it():
    series = [{1: 0.5, 2: 0.7, 3: 0.9}, {1: 0.3, 2: math.nan}]
    out = aggregate(series, [1, 2, 3])
    assert out["mean"] == [pytest.approx(0.4), 0.7, 0.9]
    assert out["min"] == [0.3, 0.7, 0.9] and out["max"] == [0.5, 0.7, 0.9]
    assert out["n"] == [2, 1, 1]
    assert out["std"][0] == pytest.approx(math.sqrt(2) * 0.1) and out["std"][1] is None
    assert aggregate([{}], [1])["mean"] == [None]


def test_pick_epochs_keeps_first_and_last_and_at_most_max_points():
    assert pick_epochs([3, 1, 2], 10) == [1, 2, 3]
    picked = pick_epochs(list(range(1, 501)), 200)
    assert len(picked) == 200 and picked[0] == 1 and picked[-1] == 500 and picked == sorted(set(picked))


def test_run_verdict_final_best_and_divergence():
    verdict = run_verdict(_rows([0.5, 0.9, 0.9, 0.8]))
    assert verdict["final_val_accuracy"] == 0.8 and verdict["best_val_accuracy"] == 0.9
    assert verdict["best_epoch"] == 2, "the earliest epoch reaching the best wins"
    assert verdict["seconds_per_epoch"] == 2.0 and not verdict["diverged"]
    diverged = run_verdict(_rows([0.5, 0.1], val_loss=[0.4, math.inf]))
    assert diverged["diverged"] and math.isinf(diverged["final_val_loss"])
    assert run_verdict([])["epochs"] == 0


def test_group_verdict_and_leader():
    he = group_verdict([run_verdict(_rows([0.9, 0.95])), run_verdict(_rows([0.9, 0.97]))], ["succeeded", "succeeded"])
    assert he["final_val_accuracy"]["mean"] == pytest.approx(0.96)
    assert he["final_val_accuracy"]["std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert he["runs"] == 2 and he["succeeded"] == 2 and he["diverged"] == 0
    zeros = group_verdict([run_verdict(_rows([0.11], val_loss=[math.nan])), run_verdict([])], ["failed", "queued"])
    assert zeros["diverged"] == 1 and zeros["active"] == 1 and zeros["final_val_loss"]["n"] == 0
    assert mark_leader([zeros, he]) == 1
    empty = group_verdict([run_verdict([])], ["queued"])
    assert mark_leader([empty]) is None


def _diverged_at_chance():
    return run_verdict(_rows([0.3, 0.098], val_loss=[0.5, math.nan]))


def test_all_diverged_groups_have_no_leader_and_keep_their_chance_accuracy_in_the_mean():
    groups = [group_verdict([_diverged_at_chance()] * 3, ["diverged"] * 3) for _ in range(3)]
    for group in groups:
        assert group["diverged"] == 3 and group["undiverged"] == 0
        assert group["final_val_accuracy"] == {"mean": 0.098, "std": 0.0, "n": 3}  # the stated rule: they count
    assert mark_leader(groups) is None and mark_leaders(groups) == set()
    # A diverged status counts even where no NaN was recorded.
    assert group_verdict([run_verdict(_rows([0.098]))], ["diverged"])["diverged"] == 1


def test_no_leader_from_diverged_runs_alone_or_between_equal_means():
    ok = group_verdict([run_verdict(_rows([0.098])), run_verdict(_rows([0.098]))], ["succeeded"] * 2)
    tied = group_verdict([run_verdict(_rows([0.098])), run_verdict(_rows([0.098]))], ["succeeded"] * 2)
    assert mark_leader([ok, tied]) is None, "equal means cannot be told apart"
    high = group_verdict([run_verdict(_rows([0.6], val_loss=[math.nan]))], ["diverged"])
    assert mark_leader([ok, high]) is None, "the best mean comes only from a diverged run"
    mixed = group_verdict([run_verdict(_rows([0.6], val_loss=[math.nan])), run_verdict(_rows([0.7]))],
                          ["diverged", "succeeded"])
    assert mixed["undiverged"] == 1 and mark_leader([ok, mixed]) == 1


def test_leaders_are_per_grid_cell():
    def group(final):
        return group_verdict([run_verdict(_rows([final]))], ["succeeded"])

    tables = [group(0.9), group(0.8), group(0.3), group(0.5)]
    assert mark_leader(tables) == 0
    assert mark_leaders(tables, ["relu", "relu", "tanh", "tanh"]) == {0, 3}
    assert mark_leaders(tables) == {0}


def test_initializer_key_separates_parameters():
    assert initializer_key("he_normal", {}) == "he_normal"
    assert initializer_key("random_normal", {"stddev": 0.01, "mean": 0.0}) == "random_normal(mean=0,stddev=0.01)"


def test_progress_fraction_and_eta():
    assert fraction_done("running", 2, 10, 50, 100) == pytest.approx(0.25)
    # batch == batches right after an epoch ends belongs to the epoch already counted
    assert fraction_done("running", 2, 10, 100, 100) == pytest.approx(0.2)
    assert fraction_done("succeeded", 3, 10, 0, 0) == 1.0
    assert fraction_done("queued", 0, 0, 0, 0) == 0.0
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert eta_seconds(now - timedelta(seconds=30), now, 0.25) == pytest.approx(90.0)
    assert eta_seconds(None, now, 0.5) is None and eta_seconds(now, now, 0.0) is None


def test_the_lead_counts_only_the_runs_the_statistics_count():
    """Audit case D: a cancelled run's 60 % at epoch 1 must not hand the lead to the other group."""
    he = group_verdict([run_verdict(_rows([v])) for v in (0.950, 0.940, 0.960, 0.60)],
                       ["succeeded"] * 3 + ["cancelled"])
    other = group_verdict([run_verdict(_rows([v])) for v in (0.940, 0.930, 0.9505, 0.945)], ["succeeded"] * 4)
    assert he["final_val_accuracy"]["mean"] < other["final_val_accuracy"]["mean"], "the table's means still show it"
    assert sorted(he["counted"]) == [0, 1, 2]
    assert mark_leader([he, other]) == 0
    failed = group_verdict([run_verdict(_rows([v])) for v in (0.950, 0.940, 0.960, 0.60)],
                           ["succeeded"] * 3 + ["failed"])
    assert mark_leader([failed, other]) == 0
    running = group_verdict([run_verdict(_rows([v])) for v in (0.950, 0.940, 0.960, 0.60)],
                            ["succeeded"] * 3 + ["running"])
    assert mark_leader([running, other]) == 0


def test_the_lead_is_on_the_seeds_every_group_has():
    """Audit case C': a NaN on seed 3 leaves the other group's bad seed 3 out too, so the lead agrees with the test."""
    he = group_verdict([run_verdict(_rows([v], val_loss=[math.nan] if math.isnan(v) else None))
                        for v in (0.950, 0.940, 0.960, math.nan)], ["succeeded"] * 3 + ["diverged"], [0, 1, 2, 3])
    other = group_verdict([run_verdict(_rows([v])) for v in (0.960, 0.951, 0.972, 0.861)], ["succeeded"] * 4,
                          [0, 1, 2, 3])
    assert he["final_val_accuracy"]["mean"] > other["final_val_accuracy"]["mean"]
    assert mark_leader([he, other]) == 1
    # Seeds, not positions: a group whose runs are listed in another order pairs by seed.
    shuffled = group_verdict([run_verdict(_rows([v])) for v in (0.861, 0.972, 0.951, 0.960)], ["succeeded"] * 4,
                             [3, 2, 1, 0])
    assert mark_leader([he, shuffled]) == 1
    disjoint = group_verdict([run_verdict(_rows([0.99]))], ["succeeded"], [7])
    assert mark_leader([he, disjoint]) is None, "no seed in common: no lead"
    assert mark_leader([other]) is None, "a cell's only initializer leads nothing"
    assert mark_leader([other, group_verdict([], [], [])]) is None, "nor beside a group with no finished run"
