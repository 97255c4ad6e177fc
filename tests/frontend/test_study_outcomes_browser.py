"""The study page of finished studies that have little or nothing to show, and of grid studies, in a real
headless Chromium: diverged runs count as done, a study whose runs all failed says so instead of "yet",
NaN-only curves say why they are empty, a depth grid's header lists its depths, its histogram grid tells
the cells apart and marks layers a network does not have, and the failure table and matrix keep the
cells apart (a tag's evidence is shown on focus, not only in a hover tooltip).
"""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest

from app.storage import runs as run_store  # noqa: E402
from support.factories import record_run

pytestmark = pytest.mark.browser

READY = "() => document.getElementById('study').dataset.ready === 'true'"


def _create(name: str, **spec):
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    return studies.create_study(StudyCreate(
        name=name, dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        training={"epochs": 2, **spec.pop("training", {})}, seeds=spec.pop("seeds", [0]), **spec))[0]


def _annotations(page, chart: str) -> list[str]:
    return page.evaluate(f"() => (document.getElementById('{chart}').layout.annotations || []).map(a => a.text)")


def _layer_rows(names: list[str], epoch: int, rng) -> list[dict]:
    from worker.training.stats import tensor_summary

    rows = []
    for index, name in enumerate(names):
        kernel = rng.normal(0.0, 0.3 * (1 + epoch), size=(16, 16))
        for kind, values in (("kernel", kernel), ("bias", np.zeros(16)), ("gradient", kernel * 1e-3)):
            rows.append({"layer": name, "index": index, "kind": kind, **tensor_summary(values)})
    return rows


def test_all_diverged_runs_are_done_and_nan_curves_say_why(live_server, page):
    study = _create("all NaN", model={"hidden_units": [16], "activation": "linear"},
                    initializers=["he_normal", "glorot_uniform"], seeds=[0, 1])
    for run in study.runs:
        record_run(run, [0.098, 0.098], status="diverged", nan_from=1)
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function(READY, timeout=20000)
    runs_cell = page.locator("#summary-table tr[data-group='he_normal'] td").nth(1).inner_text()
    assert runs_cell == "2 of 2 done", runs_cell
    for chart in ("chart-loss", "chart-val-loss"):
        notes = " ".join(_annotations(page, chart))
        assert "NaN or infinite" in notes and "the runs diverged" in notes and "yet" not in notes, notes
    # The accuracies are finite: those charts draw and carry no note.
    assert _annotations(page, "chart-val-accuracy") == []
    # A diverged tag's evidence is written out on focus (a title tooltip shows on hover only).
    page.wait_for_function("() => !document.getElementById('failures-section').hidden", timeout=20000)
    chip = page.locator("#failures-table .failure-chip[data-tag='diverged']").first
    assert chip.get_attribute("aria-describedby") == "failures-evidence"
    chip.focus()
    evidence = page.locator("#failures-evidence")
    assert evidence.get_attribute("aria-live") == "polite"
    page.wait_for_function("() => document.getElementById('failures-evidence').textContent.includes('loss = nan')")
    assert evidence.inner_text().startswith("He normal · seed 0: diverged: loss = nan in epoch 1")
    page.locator("#failures-table .failure-chip[data-tag='diverged']").nth(3).click()
    assert evidence.inner_text().startswith("Glorot (Xavier) uniform · seed 1: diverged")
    assert page.watch.errors == [] and page.watch.external() == []


def test_all_failed_study_says_what_happened_instead_of_yet(live_server, page):
    study = _create("all failed", model={"hidden_units": [16], "activation": "relu"},
                    initializers=["he_normal", "glorot_uniform"])
    for run in study.runs:
        run_store.claim_run(run.id, worker_host="test")
        run_store.finish_run(run.id, "failed", error="out of memory")
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function(READY, timeout=20000)
    verdict = page.locator("#verdict-text").inner_text()
    assert verdict == "No epoch was recorded: every run failed (see the runs table).", verdict
    assert "1 of 1 done" in page.locator("#summary-table tr[data-group='he_normal']").inner_text()
    for chart in ("chart-val-accuracy", "chart-val-loss", "chart-accuracy", "chart-loss"):
        notes = " ".join(_annotations(page, chart))
        assert "every run failed" in notes and "yet" not in notes, (chart, notes)
    page.wait_for_function("() => document.getElementById('chart-overlay').classList.contains('js-plotly-plot')")
    title = page.evaluate("() => document.getElementById('chart-overlay').layout.title.text")
    assert "of  " not in title and title.startswith("Weights at epoch 0"), title
    assert "No layer statistics were recorded" in " ".join(_annotations(page, "chart-overlay"))
    assert "No layer statistics were recorded" in " ".join(_annotations(page, "chart-hist"))
    # The per-run views draw a note instead of staying blank boxes.
    page.wait_for_function("""() => ['chart-heatmap', 'chart-percentiles'].every(id =>
        (document.getElementById(id).layout?.annotations || []).some(a => a.text.includes('No layer statistics were recorded')))""",
                           timeout=10000)
    assert page.watch.errors == [] and page.watch.external() == []


def test_depth_grid_header_histograms_and_failures_keep_the_cells_apart(live_server, page):
    study = _create("residual depth grid", model={"hidden_units": [32], "activation": "relu", "residual": True},
                    initializers=["he_normal", "glorot_uniform"], depths=[2, 4])
    rng = np.random.default_rng(0)
    for run in study.runs:
        from app.storage import records

        names = [f"dense_{i}" for i in range(run.depth)] + ["output"]
        record_run(run, [0.5, 0.6])
        for epoch in (0, 2):
            records.record_layers(run.id, epoch, _layer_rows(names, epoch, rng))
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function(READY, timeout=20000)
    # The header: the grid's depths with their unit, not the model's own stack.
    model = page.locator("dl.spec").inner_text()
    assert "Depths\n2, 4 blocks" in model and "32 units per layer and block" in model, model
    # Histogram grid: full column headings (wrapped, never cut) and no "no data yet" for layers a network lacks.
    page.select_option("#hist-layers", "all")
    page.wait_for_function("""() => (document.getElementById('chart-hist').layout?.annotations || [])
        .some(a => a.text === 'no such layer in this network')""", timeout=10000)
    annotations = page.evaluate("() => document.getElementById('chart-hist').layout.annotations")
    headings = [a["meta"]["heading"] for a in annotations if (a.get("meta") or {}).get("heading")]
    assert headings == ["He normal · 2 blocks", "Glorot (Xavier) uniform · 2 blocks", "He normal · 4 blocks",
                        "Glorot (Xavier) uniform · 4 blocks"], headings
    texts = [a["text"] for a in annotations if (a.get("meta") or {}).get("heading")]
    assert all("…" not in text for text in texts) and "4 blocks" in texts[3].replace("<b>", "").replace("</b>", "")
    empty = [(a["meta"]["group"], a["meta"]["layer"], a["text"]) for a in annotations if (a.get("meta") or {}).get("note")]
    assert {layer for _, layer, _ in empty} == {"dense_2", "dense_3"}
    assert {text for *_, text in empty} == {"no such layer in this network"}
    # Failure modes: a Cell column, and one matrix row per initializer and cell.
    page.wait_for_function("() => !document.getElementById('failures-section').hidden", timeout=20000)
    heads = page.eval_on_selector_all("#failures-table thead th", "ths => ths.map(th => th.textContent)")
    assert heads[:2] == ["Initializer", "Cell"], heads
    cells = page.eval_on_selector_all("#failures-table tbody tr", "rows => rows.map(r => r.cells[1].textContent)")
    assert cells == ["2 blocks", "2 blocks", "4 blocks", "4 blocks"], cells
    page.wait_for_function("() => document.getElementById('failures-matrix').classList.contains('js-plotly-plot')")
    rows = page.eval_on_selector("#failures-matrix", "el => el.data[0].y")
    assert rows == ["He normal · 2 blocks", "Glorot (Xavier) uniform · 2 blocks", "He normal · 4 blocks",
                    "Glorot (Xavier) uniform · 4 blocks"], rows
    assert page.watch.errors == [] and page.watch.external() == []


def test_sweep_header_lists_the_variances(live_server):
    study = _create("sweep header", model={"hidden_units": [16, 16], "activation": "tanh"},
                    weight_variances=[1.0, 2.5], bias_variances=[0.0, 0.05])
    with urllib.request.urlopen(f"{live_server}/studies/{study.id}", timeout=10) as response:
        html = response.read().decode()
    assert "variance σ<sub>w</sub>² ∈ 1, 2.5" in html and "variance σ<sub>b</sub>² ∈ 0, 0.05" in html
