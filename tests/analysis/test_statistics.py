"""Seed-paired statistics: bootstrap CIs, paired differences, epochs to threshold, ranking, baseline.

The numbers are chosen so the answer can be checked by hand: a bootstrap mean can never leave
[min, max] of its values, so differences of one sign must give a CI on that side of 0, and
differences of both signs that average 0 must give a CI around it.
"""

from __future__ import annotations

import math

import pytest

from app.analysis import statistics as st


def test_mean_ci_brackets_the_mean_inside_the_values_and_repeats():
    found = st.mean_ci([0.90, 0.92, 0.94])
    assert found["mean"] == pytest.approx(0.92) and found["n"] == 3
    assert found["std"] == pytest.approx(0.02)  # sample std: sqrt((0.02² + 0 + 0.02²) / 2)
    assert 0.90 <= found["ci_low"] < 0.92 < found["ci_high"] <= 0.94
    st._interval.cache_clear()
    assert st.mean_ci([0.90, 0.92, 0.94]) == found, "a fixed random state: the same answer every time"


def test_mean_ci_leaves_out_non_finite_values_and_handles_degenerate_samples():
    assert st.mean_ci([0.5, math.nan, 0.7, math.inf, None, -math.inf])["mean"] == pytest.approx(0.6)
    assert st.mean_ci([0.5, math.nan, 0.7])["n"] == 2
    assert st.mean_ci([0.8, 0.8, 0.8]) == {"mean": 0.8, "std": 0.0, "ci_low": 0.8, "ci_high": 0.8, "n": 3}
    assert st.mean_ci([0.8]) == {"mean": 0.8, "std": None, "ci_low": None, "ci_high": None, "n": 1}
    assert st.mean_ci([math.nan]) == {"mean": None, "std": None, "ci_low": None, "ci_high": None, "n": 0}
    two = st.mean_ci([0.6, 0.8])
    assert 0.6 <= two["ci_low"] <= 0.7 <= two["ci_high"] <= 0.8


def test_a_consistent_per_seed_gain_is_distinguishable_even_when_seeds_vary_more_than_the_gain():
    # Seed effects of +-7.5 points; the initializer adds exactly 1 point on every seed.
    baseline = {0: 0.80, 1: 0.90, 2: 0.85, 3: 0.95}
    better = {seed: value + 0.01 for seed, value in baseline.items()}
    found = st.paired_difference(better, baseline)
    assert found["mean"] == pytest.approx(0.01) and found["ci_low"] == pytest.approx(0.01)
    assert found["verdict"] == "higher" and found["distinguishable"] is True and found["seeds"] == [0, 1, 2, 3]
    # Unpaired, the two means' CIs overlap widely: pairing is what makes the gain visible.
    alone, other = st.mean_ci(list(better.values())), st.mean_ci(list(baseline.values()))
    assert alone["ci_low"] < other["ci_high"]


def test_differences_of_one_sign_exclude_zero_and_mixed_ones_span_it():
    baseline = {0: 0.90, 1: 0.89, 2: 0.91, 3: 0.90}
    higher = st.paired_difference({0: 0.95, 1: 0.93, 2: 0.96, 3: 0.94}, baseline)  # +0.05, +0.04, +0.05, +0.04
    assert higher["verdict"] == "higher" and 0.04 - 1e-12 <= higher["ci_low"] <= higher["mean"] == pytest.approx(0.045)
    lower = st.paired_difference({0: 0.80, 1: 0.85, 2: 0.90, 3: 0.89}, baseline)  # -0.10, -0.04, -0.01, -0.01
    assert lower["verdict"] == "lower" and lower["distinguishable"] and lower["ci_high"] <= -0.01 + 1e-12
    mixed = st.paired_difference({0: 0.92, 1: 0.87, 2: 0.92, 3: 0.89}, baseline)  # +0.02, -0.02, +0.01, -0.01
    assert mixed["mean"] == pytest.approx(0.0, abs=1e-12)
    assert mixed["ci_low"] < 0 < mixed["ci_high"]
    assert mixed["verdict"] == "not distinguishable" and mixed["distinguishable"] is False
    same = st.paired_difference(baseline, baseline)
    assert same["ci_low"] == same["ci_high"] == 0 and same["verdict"] == "not distinguishable"
    assert st.paired_difference(baseline, baseline, is_baseline=True)["verdict"] == "baseline"


def test_only_seeds_finite_on_both_sides_are_paired_and_under_two_give_no_ci():
    baseline = {0: 0.90, 1: math.nan, 2: 0.91}
    found = st.paired_difference({0: 0.95, 1: 0.96, 2: 0.97, 3: 0.99}, baseline)
    assert found["seeds"] == [0, 2] and found["mean"] == pytest.approx(0.055)
    lonely = st.paired_difference({0: 0.95, 3: 0.99}, baseline)
    assert lonely["seeds"] == [0] and lonely["n"] == 1 and lonely["mean"] == pytest.approx(0.05)
    assert lonely["ci_low"] is None and lonely["ci_high"] is None
    assert lonely["verdict"] == "too few paired seeds" and lonely["distinguishable"] is None
    assert st.paired_difference({}, baseline)["verdict"] == "too few paired seeds"


def test_epochs_to_threshold_first_epoch_at_or_above_it():
    rows = [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": math.nan},
            {"epoch": 3, "val_accuracy": 0.8999999761581421}, {"epoch": 4, "val_accuracy": 0.95}]
    assert st.epochs_to_threshold(rows, 0.9) == 3, "float32's 0.9 counts as 0.9"
    assert st.epochs_to_threshold(rows, 0.92) == 4
    assert st.epochs_to_threshold(rows, 0.96) is None
    assert st.epochs_to_threshold(rows, 0.5) == 1
    found = st.threshold_summary({0: 2, 1: None, 2: 4})
    assert (found["runs"], found["reached"], found["mean"], found["min"], found["max"]) == (3, 2, 3.0, 2, 4)
    assert found["per_seed"][1] == {"seed": 1, "epoch": None}
    assert st.threshold_summary({0: None})["mean"] is None


def test_ranking_shares_ranks_between_equal_means():
    ranks = st.rank([0.9, 0.95, 0.9, None, 0.8])
    assert [r for r, _ in ranks] == [2, 1, 2, None, 4]
    assert ranks[0][1] == [2] and ranks[2][1] == [0] and ranks[1][1] == []
    assert [r for r, _ in st.rank([0.1 + 0.2, 0.3])] == [1, 1], "float rounding is no reason to split a tie"


def test_baseline_request_then_default_rule_then_best_ranked():
    keys = ["zeros", "he_normal", "glorot_uniform"]
    ranks = [3, 1, 2]
    assert st.choose_baseline(keys, keys, ranks, "glorot_uniform", "relu") == ("glorot_uniform", "requested")
    key, why = st.choose_baseline(keys, keys, ranks, "lecun_normal", "relu")
    assert key == "he_normal" and "'lecun_normal' is not in this study" in why and "relu" in why
    assert st.choose_baseline(keys, keys, ranks, None, "leaky_relu")[0] == "he_normal"
    assert st.choose_baseline(keys, keys, ranks, None, "tanh")[0] == "glorot_uniform"
    key, why = st.choose_baseline(["zeros", "ones"], ["zeros", "ones"], [2, 1], None, "sigmoid")
    assert key == "ones" and "best ranked" in why
    assert st.choose_baseline(["zeros", "ones"], ["zeros", "ones"], [None, None], None, "relu")[0] == "zeros"
    # A default with parameters still counts as the default initializer.
    assert st.choose_baseline(["he_normal(x=1)"], ["he_normal"], [None], None, "elu")[0] == "he_normal(x=1)"


def _run(seed, finals, status="succeeded", diverged=False):
    rows = [{"epoch": i + 1, "val_accuracy": value} for i, value in enumerate(finals)]
    finite = [v for v in finals if isinstance(v, float) and math.isfinite(v)]
    return {"seed": seed, "status": status, "diverged": diverged, "rows": rows, "final": finals[-1],
            "best": max(finite) if finite else None}


def test_study_statistics_count_finished_results_only_and_keep_nan_out():
    groups = [
        {"key": "he_normal", "initializer": "he_normal",
         "runs": [_run(0, [0.80, 0.90]), _run(1, [0.82, 0.92]), _run(2, [0.81, 0.91])]},
        {"key": "zeros", "initializer": "zeros", "runs": [
            _run(0, [0.10, 0.10]),
            _run(1, [0.60, math.nan], status="diverged", diverged=True),   # NaN final: left out of the final mean
            _run(2, [0.11, 0.10], status="diverged", diverged=True),       # finite final: counts, at chance
            _run(3, [0.50], status="cancelled"), _run(4, [0.70], status="running")]},
    ]
    found = st.study_statistics(groups, "relu", None, 85)
    assert found["baseline"] == "he_normal" and found["ranking"] == ["he_normal", "zeros"] and found["threshold"] == 85
    he, zeros = found["groups"]
    assert he["final_val_accuracy"]["mean"] == pytest.approx(0.91) and he["rank"] == 1
    assert (zeros["runs"], zeros["used"], zeros["active"], zeros["excluded"], zeros["diverged"]) == (5, 3, 1, 1, 2)
    assert zeros["final_val_accuracy"]["n"] == 2 and zeros["final_val_accuracy"]["mean"] == pytest.approx(0.10)
    assert zeros["best_val_accuracy"]["n"] == 3 and zeros["best_val_accuracy"]["mean"] == pytest.approx((0.1 + 0.6 + 0.11) / 3)
    final = zeros["difference"]["final_val_accuracy"]
    assert final["seeds"] == [0, 2] and final["mean"] == pytest.approx(-0.805) and final["verdict"] == "lower"
    assert he["difference"]["final_val_accuracy"]["verdict"] == "baseline"
    assert he["epochs_to_threshold"]["reached"] == 3 and he["epochs_to_threshold"]["mean"] == 2.0
    assert zeros["epochs_to_threshold"] == {"runs": 3, "reached": 0, "mean": None, "min": None, "max": None,
                                            "per_seed": [{"seed": s, "epoch": None} for s in (0, 1, 2)]}
    assert st.study_statistics(groups, "relu", None, 81)["groups"][0]["epochs_to_threshold"]["mean"] == pytest.approx(4 / 3)
    # A run that diverged but was recorded as failed (before the diverged status existed) still counts.
    assert st.counts_as_result("failed", True) and not st.counts_as_result("failed", False)
    assert not st.counts_as_result("running", True) and not st.counts_as_result("cancelled", False)
