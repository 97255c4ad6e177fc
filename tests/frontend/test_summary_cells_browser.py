"""The study page's verdict and statistics in a real headless Chromium: a grid study is compared cell
by cell (a heading row per cell names its baseline; no difference crosses cells, one leader per
cell), and a study whose runs all diverged names no leader and says why.
"""

from __future__ import annotations

import pytest

from support.factories import record_run

pytestmark = pytest.mark.browser

SEEDS = (0, 1, 2)
LEVEL = {"relu": 0.90, "tanh": 0.40}
GAIN = {0: 0.081, 1: 0.079, 2: 0.080}  # custom over he_normal / glorot_uniform, in every cell
READY = "() => document.getElementById('study').dataset.ready === 'true'"


def _create(name: str, **spec):
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    return studies.create_study(StudyCreate(
        name=name, dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        training={"epochs": 2, **spec.pop("training", {})}, seeds=list(SEEDS), **spec))[0]


def test_grid_study_statistics_are_per_cell(live_server, page):
    study = _create("grid: per cell", model={"hidden_units": [16], "activation": "relu"},
                    initializers=["he_normal", "glorot_uniform", {"id": "random_normal", "params": {"stddev": 0.05}}],
                    activations=["relu", "tanh"])
    for run in study.runs:
        final = LEVEL[run.activation] + 0.01 * run.seed + (GAIN[run.seed] if run.initializer == "random_normal" else 0.0)
        record_run(run, [final - 0.1, final])
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function("() => !document.getElementById('stats-section').hidden", timeout=20000)
    cells = page.eval_on_selector_all("#stats-table tr.stat-cell-row", "rows => rows.map(r => r.innerText)")
    assert len(cells) == 2 and cells[0].startswith("relu: against He normal · relu")
    assert cells[1].startswith("tanh: against Glorot (Xavier) uniform · tanh")
    assert "within each grid cell" in page.locator("#stats-baseline-note").inner_text()
    order = page.eval_on_selector_all("#stats-table tbody tr", "rows => rows.map(r => r.dataset.group || r.dataset.cell)")
    assert order[0] == "relu" and order[4] == "tanh"
    assert {key.split("|")[1] for key in order[1:4]} == {"relu"} and {key.split("|")[1] for key in order[5:]} == {"tanh"}
    # The tanh cell's custom choice is +8 points against tanh's Glorot, not -42 against relu's He.
    row = page.locator("#stats-table tr[data-group='random_normal(stddev=0.05)|tanh']")
    assert row.locator("td").nth(3).inner_text().startswith("+8.00 pp") and row.get_attribute("data-verdict") == "higher"
    assert page.locator("#stats-table tr[data-group='glorot_uniform|tanh']").get_attribute("data-verdict") == "baseline"
    # One baseline control per initializer (the same in every cell); choosing one applies it in each cell.
    options = page.eval_on_selector_all("#stats-baseline option", "os => os.map(o => o.value)")
    assert options == ["he_normal", "glorot_uniform", "random_normal(stddev=0.05)"]
    renders = int(page.locator("#stats-section").get_attribute("data-renders"))
    page.select_option("#stats-baseline", "random_normal(stddev=0.05)")
    page.wait_for_function(f"() => Number(document.getElementById('stats-section').dataset.renders) > {renders}")
    for activation in ("relu", "tanh"):
        key = f"random_normal(stddev=0.05)|{activation}"
        assert page.locator(f"#stats-table tr[data-group='{key}']").get_attribute("data-verdict") == "baseline"
    # The verdict: one leader per cell.
    page.wait_for_function(READY, timeout=20000)
    verdict = page.locator("#verdict-text").inner_text()
    assert "relu: Random normal (stddev=0.05) leads" in verdict and "tanh: Random normal (stddev=0.05) leads" in verdict
    assert page.locator("#summary-table tr.leader-row").count() == 2
    assert page.watch.errors == [] and page.watch.external() == []


def test_all_diverged_study_names_no_leader(live_server, page):
    study = _create("all diverged", model={"hidden_units": [16], "activation": "linear"},
                    training={"epochs": 3, "optimizer": "sgd", "learning_rate": 10.0},
                    initializers=["he_normal", "glorot_uniform"])
    for run in study.runs:
        record_run(run, [0.3, 0.098, 0.098], status="diverged", nan_from=2)
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function(READY, timeout=20000)
    verdict = page.locator("#verdict-text").inner_text()
    assert verdict.startswith("No initializer leads: every run diverged") and "He normal leads" not in verdict
    assert page.locator("#summary-table tr.leader-row").count() == 0
    assert page.locator("#summary-table .leader").count() == 0
    assert "9.8 ± 0.0 %" in page.locator("#summary-table tr[data-group='he_normal']").inner_text()
    hint = page.locator("#summary-table").locator("xpath=../following-sibling::p[1]").inner_text()
    assert "last finite accuracy" in hint and "sample standard deviation" in hint and "left out of the means" not in hint
    assert page.watch.errors == [] and page.watch.external() == []


def test_a_lone_initializer_and_a_training_study_name_no_leader_and_say_why(live_server, page):
    """The lead counts finished runs only, like the statistics: while runs train, and for a cell's
    only initializer, the verdict says why nobody leads (it claimed "comes only from diverged runs")."""
    from app.storage import records
    from app.storage import runs as run_store

    alone = _create("one initializer", model={"hidden_units": [16]}, initializers=["he_normal"])
    for run in alone.runs:
        record_run(run, [0.8, 0.9])
    page.goto(f"{live_server}/studies/{alone.id}")
    page.wait_for_function(READY, timeout=20000)
    verdict = page.locator("#verdict-text").inner_text()
    assert verdict.startswith("He normal: ") and verdict.endswith("the only initializer: nothing to lead."), verdict

    training = _create("still training", model={"hidden_units": [16]}, initializers=["he_normal", "glorot_uniform"])
    for run in training.runs:
        run_store.claim_run(run.id, worker_host="test")
        records.record_epoch(run.id, 1, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0,
                                         "val_accuracy": 0.5 + (0.1 if run.initializer == "he_normal" else 0.0),
                                         "seconds": 1.0})
    page.goto(f"{live_server}/studies/{training.id}")
    page.wait_for_function("() => document.getElementById('verdict-text').innerText.includes('leads yet')", timeout=20000)
    verdict = page.locator("#verdict-text").inner_text()
    assert verdict.startswith("No initializer leads yet: the lead is decided on finished runs (highest mean so far: "
                              "He normal"), verdict
    assert "diverged" not in verdict and page.watch.errors == []
