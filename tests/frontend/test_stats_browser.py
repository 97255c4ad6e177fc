"""The study page's "Are the differences real?" section in a real headless Chromium.

A study is written through storage (he_normal; glorot_uniform within +-1 point of it per
seed; zeros at chance), the page is opened against a real uvicorn, and the section must show
the t intervals, the paired t-test's verdict and p, the seeds needed for 80 % power, the
ranking in tiers, the method sentence, and refetch when the baseline or threshold changes;
while a run trains it polls and picks the run up once it finishes.
"""

from __future__ import annotations

import re

import pytest
from app.storage import runs as run_store  # noqa: E402

pytestmark = pytest.mark.browser

SEEDS = (0, 1, 2)
NOISE = {0: 0.01, 1: -0.01, 2: 0.005}


def _write(name: str, unfinished: bool = False) -> tuple[int, int | None]:
    """he_normal 0.80 + 0.04 epoch + 0.03 seed; glorot_uniform that plus NOISE[seed]; zeros at 0.10.
    With ``unfinished``, zeros' seed 2 has trained one epoch and is still running; its id is returned."""
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    study = studies.create_study(StudyCreate(
        name=name, dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        model={"hidden_units": [16], "activation": "relu"}, training={"epochs": 3},
        initializers=["zeros", "he_normal", "glorot_uniform"], seeds=list(SEEDS)))[0]
    running = None
    for run in study.runs:
        run_store.claim_run(run.id, worker_host="test")
        stop = unfinished and run.initializer == "zeros" and run.seed == 2
        for epoch in (1, 2, 3):
            accuracy = 0.10 if run.initializer == "zeros" else (
                0.80 + 0.04 * epoch + 0.03 * run.seed + (NOISE[run.seed] if run.initializer == "glorot_uniform" else 0.0))
            records.record_epoch(run.id, epoch, {"loss": 1.0 / epoch, "accuracy": accuracy, "val_loss": 1.0 / epoch,
                                                 "val_accuracy": accuracy, "seconds": 1.0})
            if stop:
                break
        if stop:
            running = run.id
        else:
            run_store.finish_run(run.id, "succeeded")
    return study.id, running


def _row(page, key: str) -> str:
    return page.locator(f"#stats-table tr[data-group='{key}']").inner_text()


def test_stats_section_shows_t_test_tiers_seeds_needed_and_refetches(live_server, page, artifacts):
    study_id, _ = _write("stats: He vs Glorot vs zeros")
    page.goto(f"{live_server}/studies/{study_id}")
    page.wait_for_function("() => !document.getElementById('stats-section').hidden", timeout=20000)
    assert page.locator("#stats-baseline").input_value() == "he_normal"
    assert "He normal" in page.locator("#stats-baseline-note").inner_text()
    order = page.eval_on_selector_all("#stats-table tbody tr", "rows => rows.map(r => r.dataset.group)")
    assert order == ["glorot_uniform", "he_normal", "zeros"]  # one tier, then zeros; by mean within the tier

    # Glorot: +1, -1, +0.5 points per seed: p = 0.81, the CI spans 0, flagged. Zeros: 80+ points lower on every seed.
    glorot = page.locator("#stats-table tr[data-group='glorot_uniform']")
    assert glorot.get_attribute("data-verdict") == "not distinguishable"
    assert glorot.locator(".stat-badge").inner_text() == "not distinguishable"
    assert "p ≥ 0.05" in glorot.locator(".stat-badge").get_attribute("title")
    assert glorot.locator(".stat-p").inner_text().strip() == "p = 0.81"
    assert glorot.locator("td").nth(3).inner_text().startswith("+0.17 pp")
    low, high = _bounds(glorot.locator("td").nth(3).inner_text())
    assert low == pytest.approx(-2.42, abs=0.01) and high == pytest.approx(2.75, abs=0.01)  # t(2) interval
    # A gap of 0.17 points against a spread of 1.04: about 300 seeds would settle it alone (80 % power), about 370
    # for the verdict Holm-adjusted over the cell's 2 comparisons (at 2.5 %).
    needed = glorot.locator(".stat-seeds")
    assert 340 <= int(needed.inner_text()) <= 400
    assert "4 times in 5" in needed.get_attribute("title") and "Holm-adjusted over the cell's 2 comparisons" in \
        needed.get_attribute("title")
    # Different means, one tier: the paired test cannot order glorot and he_normal, so both are rank 1.
    assert glorot.locator("td").nth(0).inner_text() == "1 (tie)"
    assert page.locator("#stats-table tr[data-group='he_normal'] td").nth(0).inner_text() == "1 (tie)"
    assert page.locator("#stats-table tr[data-group='zeros'] td").nth(0).inner_text() == "3"
    # The verdict sentence names Glorot as leading (the highest mean); under it, what the test says of that lead.
    assert "Glorot (Xavier) uniform leads" in page.locator("#verdict-text").inner_text()
    assert page.locator("#verdict-caveat").inner_text() == (
        "The seed-paired test cannot tell Glorot (Xavier) uniform from He normal (same tier, below): its lead is "
        "the highest mean, not a significant difference.")
    he_final = page.locator("#stats-table tr[data-group='he_normal'] td").nth(2).inner_text()
    mean, ci_low, ci_high = (float(x) for x in re.findall(r"\d+\.\d+", he_final))
    # 92, 95, 98 %: t(2) = 4.30 standard errors, so the interval reaches past 98 and is cut at 100 %.
    assert mean == pytest.approx(95.0) and ci_low == pytest.approx(87.55, abs=0.01) and ci_high == 100.0, he_final
    zeros = page.locator("#stats-table tr[data-group='zeros']")
    assert zeros.locator(".stat-badge").inner_text() == "lower" and zeros.locator(".stat-p").inner_text().strip() == "p < 0.001"
    assert zeros.locator(".stat-seeds").inner_text() == "2"
    assert page.locator("#stats-table tr[data-group='he_normal'] .stat-seeds").inner_text() == "–"  # the baseline
    method = page.locator("#stats-method .stat-method").inner_text()
    assert method.startswith("Method: Paired Student-t test") and method.count(". ") == 0, "one sentence"
    assert "tiers" in page.locator("#stats-method .stat-ranking-rule").inner_text()
    assert "Seeds for 80 % power" in page.locator("#stats-table thead th").nth(5).text_content()
    assert "baseline" in _row(page, "he_normal")
    # Epochs to 90 %: he_normal's seeds reach it at epochs 3, 2, 1.
    assert "2.0 (1–3)" in _row(page, "he_normal") and "3 of 3 seeds" in _row(page, "he_normal")
    assert "never (0 of 3 seeds)" in _row(page, "zeros")
    page.screenshot(path=str(artifacts / "study_stats.png"), full_page=True)

    renders = int(page.locator("#stats-section").get_attribute("data-renders"))
    page.select_option("#stats-baseline", "zeros")
    page.wait_for_function(f"() => Number(document.getElementById('stats-section').dataset.renders) > {renders}")
    assert page.locator("#stats-table tr[data-group='he_normal']").get_attribute("data-verdict") == "higher"
    assert "Zeros" in page.locator("#stats-baseline-note").inner_text() and "requested" in page.locator("#stats-baseline-note").inner_text()

    renders = int(page.locator("#stats-section").get_attribute("data-renders"))
    page.fill("#stats-threshold", "86")
    page.press("#stats-threshold", "Enter")
    page.wait_for_function(f"() => Number(document.getElementById('stats-section').dataset.renders) > {renders}")
    assert "Epochs to ≥ 86 %" in page.locator("#stats-table thead").inner_text()
    assert "1.3 (1–2)" in _row(page, "he_normal")  # 0.84 + 0.03 seed at epoch 1: seeds 1 and 2 reach 86 % then
    page.fill("#stats-threshold", "150")
    page.press("#stats-threshold", "Enter")
    assert page.locator("#stats-threshold").get_attribute("aria-invalid") == "true"
    assert "at most 100" in page.locator("#stats-threshold-error").inner_text()
    assert page.watch.errors == [] and page.watch.external() == []


def _bounds(text: str) -> tuple[float, float]:
    """"0.00 pp [−1.00, +1.00]" -> (-1.0, 1.0)."""
    found = re.search(r"\[([−+]?)([\d.]+), ([−+]?)([\d.]+)\]", text)
    assert found, text
    sign = {"−": -1.0, "+": 1.0, "": 0.0}
    return sign[found[1]] * float(found[2]), sign[found[3]] * float(found[4])


def test_stats_section_polls_while_a_run_trains(live_server, page):
    from app.storage import records

    study_id, running = _write("stats: live", unfinished=True)
    page.goto(f"{live_server}/studies/{study_id}")
    page.wait_for_function("() => !document.getElementById('stats-section').hidden", timeout=20000)
    assert "2 of 3 · 1 still training" in _row(page, "zeros")
    assert "still training" in page.locator("#stats-status").inner_text()
    for epoch in (2, 3):
        records.record_epoch(running, epoch, {"loss": 0.5, "accuracy": 0.1, "val_loss": 0.5, "val_accuracy": 0.1, "seconds": 1.0})
    run_store.finish_run(running, "succeeded")
    page.wait_for_function("() => document.querySelector(\"#stats-table tr[data-group='zeros'] .stat-runs\")"
                           ".textContent.startsWith('3 of 3')", timeout=15000)
    assert page.locator("#stats-status").inner_text() == ""
    renders = page.locator("#stats-section").get_attribute("data-renders")
    page.wait_for_timeout(4000)
    assert page.locator("#stats-section").get_attribute("data-renders") == renders, "polling stops when every run is done"
