"""The study page's "Failure modes" section in a real headless Chromium against a real uvicorn.

The runs are trained for real (300 Fashion-MNIST images, a 32-16 ReLU MLP) and written
through the worker's StorageSink, as a Celery worker would write them. Asserts on the DOM
(chips, their evidence tooltips) and on the Plotly heatmap's own data; screenshots land in
tests/artifacts/.
"""

from __future__ import annotations

import pytest
from app.storage import runs as run_store  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OWNER = "browser-failures"
SECTION_SHOWN = "() => !document.getElementById('failures-section').hidden"


def new_study(name: str, initializers: list[str], epochs: int = 1):
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    return studies.create_study(StudyCreate(
        name=name, dataset={"name": "fashion_mnist", "train_samples": 300, "validation_samples": 200},
        model={"hidden_units": [32, 16], "activation": "relu"},
        training={"optimizer": "adam", "learning_rate": 0.001, "batch_size": 32, "epochs": epochs},
        initializers=initializers, seeds=[0],
    ))[0]


def train(study, data_dir) -> None:
    """Claim, train (as one group) and finish every run of the study, through the worker's own sink."""
    from app.domain.spec import StudySpec
    from worker.execution import run_setup
    from worker.storage_sink import StorageSink
    from worker.training.trainer import train_group

    spec = StudySpec.model_validate(study.spec)
    runs = [run_store.claim_run(run.id, worker_host=OWNER) for run in study.runs]
    outcomes = train_group([run_setup(run, spec) for run in runs], StorageSink(OWNER), data_dir=data_dir)
    for run_id, outcome in outcomes.items():
        run_store.finish_run(run_id, outcome.status, owner=OWNER, diverged_epoch=outcome.diverged_epoch)


def chips(page) -> dict[str, dict[str, str]]:
    """Per run row's first cell (the initializer): tag -> tooltip."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#failures-table tbody tr')].map(tr =>
        [tr.cells[0].textContent, Object.fromEntries([...tr.querySelectorAll('.failure-chip')].map(c => [c.dataset.tag, c.title]))]))""")


def test_finished_study_shows_chips_and_the_matrix(live_server, data_dir, page, artifacts):
    study = new_study("Failure modes (zeros, ones, He)", ["zeros", "ones", "he_normal"], epochs=2)
    train(study, data_dir)
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function(SECTION_SHOWN, timeout=20000)
    page.wait_for_function("() => document.querySelectorAll('#failures-table tbody tr').length === 3")
    shown = chips(page)
    assert {"symmetric", "vanishing_gradients"} <= set(shown["Zeros"]), shown
    assert "symmetric" in shown["Ones"] and shown["He normal"] == {}
    assert "dense_0: all 32 units identical at epoch 0 and still at epoch 2" in shown["Zeros"]["symmetric"]
    assert "no gradient reaches dense_0" in shown["Zeros"]["vanishing_gradients"]
    assert page.inner_text("#failures-table tbody tr:nth-child(3) td:last-child") == "none"
    # A chip's evidence is also read out to a screen reader, and it can be focused.
    chip = page.locator("#failures-table .failure-chip[data-tag='symmetric']").first
    chip.focus()
    assert "identical" in chip.inner_text() and page.evaluate("() => document.activeElement.dataset.tag") == "symmetric"

    page.wait_for_function("() => document.getElementById('failures-matrix').classList.contains('js-plotly-plot')")
    heatmap = page.eval_on_selector("#failures-matrix", "el => ({y: el.data[0].y, tags: el.data[0].meta.tags, z: el.data[0].z})")
    assert heatmap["y"] == ["Zeros", "Ones", "He normal"]
    symmetric = heatmap["tags"].index("symmetric")
    assert [row[symmetric] for row in heatmap["z"]] == [1, 1, 0]
    assert page.watch.errors == [] and page.watch.external() == []
    page.locator("#failures-section").screenshot(path=str(artifacts / "study_failures.png"))


def test_section_appears_while_runs_train_and_follows_them(live_server, data_dir, page):
    study = new_study("Failure modes (live)", ["zeros"])
    page.add_init_script("window.INITLAB_REFRESH_MS = 300")
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function("() => Number(document.getElementById('failures-section').dataset.renders || 0) >= 1")
    assert page.evaluate(SECTION_SHOWN) is False  # nothing measured yet: the section stays out of the way
    train(study, data_dir)
    page.wait_for_function("() => document.querySelector('#failures-table .failure-chip[data-tag=\"symmetric\"]')",
                           timeout=20000)
    assert page.evaluate(SECTION_SHOWN) is True
    assert page.watch.errors == []


def test_a_long_study_lists_its_failing_runs_and_the_rest_on_demand(live_server, data_dir, page):
    """A 512-run study's table was 20,000 px of "none" rows above the curves: past 24 runs only the
    runs with a failure mode are listed until the user asks for all."""
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    study = studies.create_study(StudyCreate(
        name="Many seeds", dataset={"name": "fashion_mnist", "train_samples": 300, "validation_samples": 200},
        model={"hidden_units": [16], "activation": "relu"}, training={"batch_size": 50, "epochs": 1},
        initializers=["zeros", "he_normal"], seeds=list(range(13))))[0]
    train(study, data_dir)
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function(SECTION_SHOWN, timeout=20000)
    page.wait_for_function("() => document.querySelectorAll('#failures-table tbody tr').length === 13")
    assert set(chips(page)) == {"Zeros"}
    toggle = page.locator("#failures-show-all")
    assert toggle.inner_text() == "Show all 26 runs (13 without a failure mode are hidden)"
    toggle.click()
    page.wait_for_function("() => document.querySelectorAll('#failures-table tbody tr').length === 26")
    assert toggle.inner_text() == "Show only the 13 runs with a failure mode (or not measured yet)"
    assert page.watch.errors == []
