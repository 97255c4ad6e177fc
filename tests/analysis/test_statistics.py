"""Seed-paired statistics: t intervals, paired t verdicts, epochs to threshold, ranking tiers, baseline.

Every interval and p-value is checked against scipy.stats.ttest_1samp, the textbook
computation, so a hand-made formula cannot drift from it. The error rates themselves are
measured in test_statistics_simulation.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from app.analysis import statistics as st


def _reference(values):
    found = stats.ttest_1samp(values, 0.0)
    interval = found.confidence_interval(0.95)
    return found.pvalue, interval.low, interval.high


def test_mean_ci_is_the_t_interval_clipped_to_possible_accuracies():
    found = st.mean_ci([0.90, 0.92, 0.94])
    assert found["mean"] == pytest.approx(0.92) and found["n"] == 3
    assert found["std"] == pytest.approx(0.02)  # sample std: sqrt((0.02² + 0 + 0.02²) / 2)
    half = stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)  # 4.30 standard errors: wider than the values
    assert (found["ci_low"], found["ci_high"]) == pytest.approx((0.92 - half, 0.92 + half))
    assert found["ci_low"] < 0.90 and found["ci_high"] > 0.94
    two = st.mean_ci([0.96, 0.98])  # t(1) = 12.7: the interval would pass 100 %
    assert two["ci_high"] == 1.0 and two["ci_low"] == pytest.approx(0.97 - stats.t.ppf(0.975, 1) * 0.01)


def test_mean_ci_leaves_out_non_finite_values_and_handles_degenerate_samples():
    assert st.mean_ci([0.5, math.nan, 0.7, math.inf, None, -math.inf])["mean"] == pytest.approx(0.6)
    assert st.mean_ci([0.5, math.nan, 0.7])["n"] == 2
    assert st.mean_ci([0.8, 0.8, 0.8]) == {"mean": 0.8, "std": 0.0, "ci_low": 0.8, "ci_high": 0.8, "n": 3}
    assert st.mean_ci([0.8]) == {"mean": 0.8, "std": None, "ci_low": None, "ci_high": None, "n": 1}
    assert st.mean_ci([math.nan]) == {"mean": None, "std": None, "ci_low": None, "ci_high": None, "n": 0}


def test_a_consistent_per_seed_gain_is_distinguishable_even_when_seeds_vary_more_than_the_gain():
    # Seed effects of +-7.5 points; the initializer adds 1 +- 0.2 points on every seed.
    baseline = {0: 0.80, 1: 0.90, 2: 0.85, 3: 0.95}
    gain = {0: 0.010, 1: 0.012, 2: 0.008, 3: 0.010}
    better = {seed: value + gain[seed] for seed, value in baseline.items()}
    found = st.paired_difference(better, baseline)
    p, low, high = _reference(list(gain.values()))
    assert found["mean"] == pytest.approx(0.01) and found["p_value"] == pytest.approx(p) and p < 0.01
    assert (found["ci_low"], found["ci_high"]) == pytest.approx((low, high)) and found["ci_low"] > 0
    assert found["verdict"] == "higher" and found["distinguishable"] is True and found["seeds"] == [0, 1, 2, 3]
    assert found["test"] == "paired t" and found["seeds_needed"] == 3  # effect 6.1; 2 seeds never give 80 %: t(1) > 12.7
    # Unpaired, the two means' CIs overlap widely: pairing is what makes the gain visible.
    alone, other = st.mean_ci(list(better.values())), st.mean_ci(list(baseline.values()))
    assert alone["ci_low"] < other["ci_high"]


def test_the_verdict_is_the_t_test_and_the_ci_is_its_interval():
    baseline = {0: 0.90, 1: 0.89, 2: 0.91, 3: 0.90}
    for values in ({0: 0.95, 1: 0.93, 2: 0.96, 3: 0.94},   # +5, +4, +5, +4 points
                   {0: 0.80, 1: 0.85, 2: 0.90, 3: 0.89},   # -10, -4, -1, -1: p = 0.13
                   {0: 0.92, 1: 0.87, 2: 0.92, 3: 0.89}):  # +2, -2, +1, -1: mean 0
        found = st.paired_difference(values, baseline)
        p, low, high = _reference([values[s] - baseline[s] for s in baseline])
        assert found["p_value"] == pytest.approx(p) and (found["ci_low"], found["ci_high"]) == pytest.approx((low, high))
        assert found["distinguishable"] is bool(p < 0.05) and (found["ci_low"] > 0 or found["ci_high"] < 0) is bool(p < 0.05)
    assert st.paired_difference({0: 0.95, 1: 0.93, 2: 0.96, 3: 0.94}, baseline)["verdict"] == "higher"
    lower = st.paired_difference({0: 0.80, 1: 0.85, 2: 0.90, 3: 0.89}, baseline)
    assert lower["verdict"] == "not distinguishable" and lower["ci_low"] < 0 < lower["ci_high"]
    assert lower["seeds_needed"] == 11  # mean -4 points, SD 4.2: effect 0.94
    mixed = st.paired_difference({0: 0.92, 1: 0.87, 2: 0.92, 3: 0.89}, baseline)
    assert mixed["mean"] == pytest.approx(0.0, abs=1e-12) and mixed["p_value"] == pytest.approx(1.0)
    assert mixed["verdict"] == "not distinguishable" and mixed["distinguishable"] is False
    assert mixed["seeds_needed"] is None and not mixed["seeds_needed_over_cap"], "no difference: no seed count finds it"
    tiny = st.paired_difference({0: 0.9003, 1: 0.8897, 2: 0.9103, 3: 0.8998}, baseline)  # +3, -3, +3, -2 (0.01 points)
    assert tiny["seeds_needed"] is None and tiny["seeds_needed_over_cap"]
    own = st.paired_difference(baseline, baseline, is_baseline=True)
    assert own["verdict"] == "baseline" and own["p_value"] is None and own["seeds_needed"] is None


def test_no_spread_falls_back_to_the_sign_flip_test():
    # Equal differences (float32 storage makes them equal only to ~1e-7): t is undefined.
    baseline = {seed: float(np.float32(0.80 + 0.01 * seed)) for seed in range(8)}
    gain = {seed: float(np.float32(0.82 + 0.01 * seed)) for seed in range(8)}
    for n, verdict in ((2, "not distinguishable"), (5, "not distinguishable"), (6, "higher"), (8, "higher")):
        found = st.paired_difference({s: gain[s] for s in range(n)}, baseline)
        assert found["test"] == "sign-flip" and found["p_value"] == pytest.approx(2.0 ** (1 - n)), n
        assert found["verdict"] == verdict and found["std"] == 0.0 and found["seeds_needed"] is None, n
        assert (found["ci_low"] is None) is (n < 6), "below 6 pairs the test rejects no value: no interval"
    six = st.paired_difference({s: gain[s] for s in range(6)}, baseline)
    assert six["ci_low"] == pytest.approx(0.02, abs=1e-6) and six["ci_high"] == pytest.approx(0.02, abs=1e-6)
    same = st.paired_difference(baseline, baseline)
    assert same["p_value"] == 1.0 and same["verdict"] == "not distinguishable" and same["ci_low"] == 0.0
    assert st.paired_difference({0: 0.5, 1: 0.5}, {0: 0.5, 1: 0.5})["ci_low"] is None


def test_only_seeds_finite_on_both_sides_are_paired_and_under_two_give_no_ci():
    baseline = {0: 0.90, 1: math.nan, 2: 0.91}
    found = st.paired_difference({0: 0.95, 1: 0.96, 2: 0.97, 3: 0.99}, baseline)
    assert found["seeds"] == [0, 2] and found["mean"] == pytest.approx(0.055)
    lonely = st.paired_difference({0: 0.95, 3: 0.99}, baseline)
    assert lonely["seeds"] == [0] and lonely["n"] == 1 and lonely["mean"] == pytest.approx(0.05)
    assert lonely["ci_low"] is None and lonely["ci_high"] is None
    assert lonely["verdict"] == "too few paired seeds" and lonely["distinguishable"] is None
    assert lonely["p_value"] is None and lonely["seeds_needed"] is None and lonely["std"] is None
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


def test_mean_order_shares_places_between_equal_means():
    ranks = st.rank([0.9, 0.95, 0.9, None, 0.8])
    assert [r for r, _ in ranks] == [2, 1, 2, None, 4]
    assert ranks[0][1] == [2] and ranks[2][1] == [0] and ranks[1][1] == []
    assert [r for r, _ in st.rank([0.1 + 0.2, 0.3])] == [1, 1], "float rounding is no reason to split a tie"


def test_tiers_share_a_rank_until_the_paired_test_tells_groups_apart():
    best = {0: 0.90, 1: 0.91, 2: 0.92, 3: 0.93}
    near = {s: best[s] + d for s, d in zip(best, (-0.002, 0.001, -0.001, 0.0005))}   # within noise of best
    worse = {s: best[s] - 0.03 + d for s, d in zip(best, (0.001, -0.001, 0.002, -0.002))}  # -3 points, every seed
    wild = {s: best[s] - 0.03 + d for s, d in zip(best, (0.05, -0.05, 0.04, -0.04))}  # worse's mean, no clear sign
    finals = [near, worse, {}, best, wild]
    found = st.tiers(finals)
    ranks = found["ranks"]
    assert found["seeds"] == [0, 1, 2, 3]
    # wild cannot be told from best, so it shares rank 1; worse is told apart from best, but has wild's mean, and
    # equal means always share a rank (the rule: "as does any with the same mean as one already there").
    assert [r for r, _ in ranks] == [1, 1, None, 1, 1]
    assert 1 in found["differs"][3] and 1 in found["differs"][0] and 4 not in found["differs"][3]
    wild = {s: v + 0.001 for s, v in wild.items()}  # no longer worse's mean: worse alone goes down, after three
    found = st.tiers([near, worse, {}, best, wild])
    assert [r for r, _ in found["ranks"]] == [1, 4, None, 1, 1]
    assert sorted(found["ranks"][3][1]) == [0, 4] and found["ranks"][1][1] == []
    equal = st.tiers([{0: 0.9, 1: 0.8}, {0: 0.9, 1: 0.8}])
    assert equal["ranks"] == [(1, [1]), (1, [0])] and equal["means"] == pytest.approx([0.85, 0.85])


def test_ranks_follow_the_printed_rule_word_for_word():
    """Audit case A: C cannot be told from the top (A), so it shares rank 1, whatever B, between them, does."""
    a = {0: 0.950, 1: 0.940, 2: 0.960}
    b = {0: 0.940, 1: 0.930, 2: 0.9505}  # one point below A on every seed
    c = {0: 0.960, 1: 0.900, 2: 0.960}   # noisy against A
    found = st.tiers([a, b, c])
    assert [r for r, _ in found["ranks"]] == [1, 3, 1]
    assert "every initializer the paired t-test, Holm-adjusted over all pairs in the cell, cannot tell from one of " \
           "them share rank 1" in st.RANKING_RULE
    # Below rank 1 only what the adjusted test tells apart from the top: B's adjusted p is under 0.05.
    assert found["differs"][1] == [0] and found["differs"][2] == []


def test_tier_mates_that_differ_are_reported():
    """Audit case B: B and C both share A's rank, yet the test tells B from C; the tie does not hide it."""
    a = {0: 0.950, 1: 0.930, 2: 0.970}
    b = {0: 0.960, 1: 0.900, 2: 0.965}
    c = {0: 0.955, 1: 0.8948, 2: 0.9602}  # about 0.5 points under B on every seed
    found = st.tiers([a, b, c])
    assert [r for r, _ in found["ranks"]] == [1, 1, 1]
    assert found["differs"][1] == [2] and found["differs"][2] == [1] and found["differs"][0] == []
    assert "may still differ from each other" in st.RANKING_RULE


def test_ranks_use_the_seeds_every_group_has_so_they_agree_with_the_tests():
    """Audit case C': a NaN on A's seed 3 must not rank A above B, which beats it on every common seed."""
    a = {0: 0.950, 1: 0.940, 2: 0.960, 3: math.nan}
    b = {0: 0.960, 1: 0.951, 2: 0.972, 3: 0.861}
    found = st.tiers([a, b])
    assert found["seeds"] == [0, 1, 2] and found["means"][1] > found["means"][0]
    assert [r for r, _ in found["ranks"]] == [2, 1]
    out = st.study_statistics([_group("he_normal", [_run(s, [v], "diverged" if s == 3 else "succeeded")
                                                    for s, v in a.items()]),
                               _group("b", [_run(s, [v]) for s, v in b.items()])], "relu", None, 90)
    he, other = out["groups"]
    assert other["difference"]["final_val_accuracy"]["verdict"] == "higher" and (other["rank"], he["rank"]) == (1, 2)
    assert out["ranking"] == ["b", "he_normal"] and out["cells"][0]["ranking_seeds"] == [0, 1, 2]
    assert "1 other finished run left out of the ranks" in out["cells"][0]["ranking_note"]
    assert other["rank_mean"] == pytest.approx(np.mean([0.960, 0.951, 0.972]))


def test_holm_adjustment_matches_the_textbook_and_skips_untested():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert st.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert st.holm([0.3]) == pytest.approx([0.3]), "one comparison: not adjusted"
    found = st.holm([[0.01, math.nan, 0.02], [0.9, 0.2, 0.1]])
    assert found[0][0] == pytest.approx(0.02) and math.isnan(found[0][1]) and found[0][2] == pytest.approx(0.02)
    assert found[1] == pytest.approx([0.9, 0.4, 0.3])
    assert st.holm([0.5, 0.6]).max() <= 1.0


def test_cell_verdicts_use_the_holm_adjusted_p():
    base = {0: 0.90, 1: 0.91, 2: 0.92, 3: 0.93}
    # small consistent gain (raw p about 0.03) and three others with no effect
    gain = {s: base[s] + d for s, d in zip(base, (0.003, 0.001, 0.004, 0.002))}
    nulls = [{s: base[s] + d for s, d in zip(base, ds)}
             for ds in ((0.002, -0.002, 0.001, -0.001), (-0.003, 0.002, 0.001, 0.0), (0.001, 0.001, -0.002, 0.0))]
    raw = st.paired_difference(gain, base)
    assert raw["verdict"] == "higher" and 0.01 < raw["p_value"] < 0.05 and raw["p_adjusted"] == raw["p_value"]
    groups = [_group("he_normal", [_run(s, [v]) for s, v in base.items()]),
              _group("gain", [_run(s, [v]) for s, v in gain.items()])]
    groups += [_group(f"null{i}", [_run(s, [v]) for s, v in f.items()]) for i, f in enumerate(nulls)]
    out = st.study_statistics(groups, "relu", None, 90)
    found = out["groups"][1]["difference"]["final_val_accuracy"]
    assert found["p_value"] == pytest.approx(raw["p_value"]) and found["comparisons"] == 4
    assert found["p_adjusted"] == pytest.approx(st.holm([g["difference"]["final_val_accuracy"]["p_value"]
                                                         for g in out["groups"][1:]])[0])
    assert found["p_adjusted"] >= 0.05 and found["verdict"] == "not distinguishable" and found["distinguishable"] is False
    assert out["groups"][0]["difference"]["final_val_accuracy"]["comparisons"] == 0
    assert "Holm-adjusted over the comparisons with the baseline in its cell" in out["method"]


def test_baseline_request_then_default_rule_then_first_in_the_study_order():
    keys = ["zeros", "he_normal", "glorot_uniform"]
    assert st.choose_baseline(keys, keys, "glorot_uniform", "relu") == ("glorot_uniform", "requested")
    key, why = st.choose_baseline(keys, keys, "lecun_normal", "relu")
    assert key == "he_normal" and "'lecun_normal' is not in this study" in why and "relu" in why
    assert st.choose_baseline(keys, keys, None, "leaky_relu")[0] == "he_normal"
    assert st.choose_baseline(keys, keys, None, "tanh")[0] == "glorot_uniform"
    key, why = st.choose_baseline(["zeros", "ones"], ["zeros", "ones"], None, "sigmoid")
    assert key == "zeros" and "the first in its order" in why
    # A default with parameters still counts as the default initializer.
    assert st.choose_baseline(["he_normal(x=1)"], ["he_normal"], None, "elu")[0] == "he_normal(x=1)"


def test_fallback_baseline_does_not_look_at_the_results():
    """Without the default, the first initializer in the study's order, however the results come out."""
    def study(first, second):
        return [_group("ones", [_run(s, [v]) for s, v in enumerate(first)]),
                _group("zeros", [_run(s, [v]) for s, v in enumerate(second)])]
    low_first = st.study_statistics(study([0.1, 0.11, 0.12], [0.9, 0.91, 0.92]), "relu", None, 90)
    high_first = st.study_statistics(study([0.9, 0.91, 0.92], [0.1, 0.11, 0.12]), "relu", None, 90)
    assert low_first["baseline"] == high_first["baseline"] == "ones"


def _group(key, runs):
    return {"key": key, "initializer": key, "runs": runs}


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


def test_grid_comparisons_stay_within_each_cell():
    """A seed pair means "only the initial weights differ" only within one grid cell (same activation, depth)."""
    level = {"relu|d1": 0.95, "tanh|d3": 0.30}
    gain = {0: 0.081, 1: 0.079, 2: 0.080}
    groups = []
    for cell, activation in (("relu|d1", "relu"), ("tanh|d3", "tanh")):
        for init in ("he_normal", "custom", "glorot_uniform"):
            extra = (lambda s: gain[s]) if init == "custom" else (lambda s: 0.001 * s if init == "glorot_uniform" else 0.0)
            groups.append({"key": f"{init}|{cell}", "initializer": init, "choice": init, "cell": cell,
                           "activation": activation,
                           "runs": [_run(s, [level[cell] + 0.01 * s + extra(s)]) for s in (0, 1, 2)]})
    found = st.study_statistics(groups, "relu", None, 90)
    assert [(c["cell"], c["baseline"], c["default_baseline"]) for c in found["cells"]] == [
        ("relu|d1", "he_normal|relu|d1", "he_normal"), ("tanh|d3", "glorot_uniform|tanh|d3", "glorot_uniform")]
    by_key = {g["key"]: g for g in found["groups"]}
    for key, group in by_key.items():
        assert group["cell"] == key.split("|", 1)[1] and group["baseline"].split("|", 1)[1] == group["cell"]
        assert all(other.split("|", 1)[1] == group["cell"] for other in group["tied_with"])
    # custom · tanh · 3 layers is compared with Glorot · tanh · 3 layers (+8 points minus Glorot's 0.1 per seed),
    # never with He · relu · 1 layer (-57 points).
    diff = by_key["custom|tanh|d3"]["difference"]["final_val_accuracy"]
    assert diff["mean"] == pytest.approx(np.mean([gain[s] - 0.001 * s for s in (0, 1, 2)]))
    assert by_key["custom|relu|d1"]["difference"]["final_val_accuracy"]["mean"] == pytest.approx(0.08)
    # Ranks are per cell: custom leads both cells; the ranking lists the cells in order.
    assert by_key["custom|relu|d1"]["rank"] == by_key["custom|tanh|d3"]["rank"] == 1
    assert [k.split("|", 1)[1] for k in found["ranking"]] == ["relu|d1"] * 3 + ["tanh|d3"] * 3
    assert found["baseline"] == "he_normal|relu|d1"
    # A requested baseline names the initializer choice: each cell takes its own group of it.
    asked = st.study_statistics(groups, "relu", "custom", 90)
    assert [c["baseline"] for c in asked["cells"]] == ["custom|relu|d1", "custom|tanh|d3"]
    assert {c["baseline_reason"] for c in asked["cells"]} == {"requested"}


def test_a_study_without_cells_is_one_cell():
    groups = [{"key": k, "initializer": k, "runs": [_run(s, [0.8 + 0.01 * s + d]) for s in (0, 1, 2)]}
              for k, d in (("he_normal", 0.0), ("zeros", -0.7))]
    found = st.study_statistics(groups, "relu", None, 90)
    assert found["baseline"] == "he_normal" and found["ranking"] == ["he_normal", "zeros"]
    assert found["cells"] == [{"cell": None, "baseline": "he_normal", "baseline_reason": "default for relu: he_normal",
                               "default_baseline": "he_normal", "ranking": ["he_normal", "zeros"],
                               "ranking_seeds": [0, 1, 2], "ranking_note": None}]
    assert [g["baseline"] for g in found["groups"]] == ["he_normal", "he_normal"]
