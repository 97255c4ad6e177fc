"""The phase diagram in a real headless Chromium: a weight-variance sweep written through storage
(as a worker writes it), its heatmap with the theory's critical line and trainable-depth curve,
and the measured-vs-predicted correlation chart, on the phase page and in the study page's section."""

from __future__ import annotations

import pytest

from app.storage import runs as run_store

pytestmark = pytest.mark.browser

SWEEP = {"name": "phase (browser)", "dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 100},
         "model": {"hidden_units": [16], "activation": "tanh"}, "training": {"optimizer": "sgd", "epochs": 1},
         "weight_variances": [0.5, 1.75, 4.0], "bias_variances": [0.05], "depths": [3, 12], "seeds": [0, 1]}


def write_sweep(accuracy_of) -> int:
    """SWEEP written as a worker writes it, each run's final accuracy ``accuracy_of(run)``."""
    from app.domain.spec import StudySpec
    from app.storage import diagnostics, records, studies

    study, _ = studies.create_study(StudySpec.model_validate(SWEEP))
    for run in study.runs:
        run_store.claim_run(run.id, worker_host="fixture")
        trained = accuracy_of(run)
        records.record_epoch(run.id, 1, {"loss": 1.0, "accuracy": trained, "val_loss": 1.0, "val_accuracy": trained - 0.05,
                                         "seconds": 1.0})
        step = 0.04 if run.weight_variance < 1.75 else -0.04
        rows = [{"layer": f"dense_{i}", "index": i, "activation": "tanh", "units": 16, "dead_fraction": None,
                 "saturated_fraction": 0.0, "mean": 0.0, "std": 1.0, "unit_spread": 1.0, "units_identical": False,
                 "preact_length": 0.5, "preact_correlation": min(1.0, 0.6 + step * i)} for i in range(run.depth + 1)]
        diagnostics.record_diagnostics(run.id, 0, rows)
        run_store.finish_run(run.id, "succeeded")
    return study.id


@pytest.fixture(scope="module")
def sweep(live_server) -> int:
    return write_sweep(lambda run: 0.9 if run.weight_variance == 1.75 or run.depth == 3 else 0.2)


@pytest.fixture(scope="module")
def chance_sweep(live_server) -> int:
    """Nothing trained: every cell between 9 and 15 %, the best at σ_w² 4, depth 12."""
    return write_sweep(lambda run: 0.15 if (run.weight_variance, run.depth) == (4.0, 12)
                       else 0.09 + 0.01 * run.seed + 0.01 * (run.weight_variance == 1.75))


def traces(page, chart: str) -> list[str]:
    return page.evaluate(f"() => document.getElementById('{chart}').data.map(t => t.name)")


def test_the_phase_page_draws_the_heatmap_with_the_edge_of_chaos(live_server, sweep, page, artifacts):
    page.goto(f"{live_server}/studies/{sweep}/phase")
    page.wait_for_function("() => document.getElementById('phase').dataset.ready === 'true'", timeout=30000)
    assert traces(page, "chart-phase") == ["measured", "6·ξ_c (theory)", "6·ξ_c", "σ_w* = 1.761 (χ₁ = 1)",
                                           "deepest trainable (measured)", "measured σ_w* ≈ 1.75"]
    # The theory curve is cut where it leaves the plot, never drawn flat along the top edge.
    top, curve = page.evaluate("""() => { const chart = document.getElementById('chart-phase');
        return [chart.layout.yaxis.range[1], chart.data[2].y]; }""")
    assert None in curve and max(d for d in curve if d is not None) <= top
    z = page.evaluate("() => document.getElementById('chart-phase').data[0].z")
    assert z == [[0.9, 0.9, 0.9], [0.2, 0.9, 0.2]]  # depths 3 and 12 (rows) × σ_w² 0.5, 1.75, 4 (columns)
    # a cell trains at ≥ 0.5 (halfway from chance 0.1 to the best 0.9): only σ_w² 1.75 trains at depth 12
    assert page.evaluate("() => document.getElementById('chart-phase').data[4].y") == [3, 12, 3]
    note = page.locator("#phase-theory-note").inner_text()
    assert "edge of chaos at σ_w* = 1.761" in note and "trains deepest is 1.75" in note
    names = traces(page, "chart-correlation")
    assert names == ["σ_w² 0.5", "σ_w² 0.5 (theory)", "σ_w² 1.75", "σ_w² 1.75 (theory)", "σ_w² 4", "σ_w² 4 (theory)"]
    page.fill("#phase-c", "3")
    page.locator("#phase-c").dispatch_event("change")
    page.wait_for_function("() => document.getElementById('chart-phase').data[1].name.startsWith('3·')")
    page.locator("#phase").screenshot(path=str(artifacts / "phase_page.png"))
    assert page.watch.errors == [] and page.watch.external() == []
    page.fill("#phase-c", "-5")  # the server's reason is shown and the control marked
    page.locator("#phase-c").dispatch_event("change")
    page.wait_for_function("() => document.getElementById('phase-c').getAttribute('aria-invalid') === 'true'")
    assert "c: Input should be greater than 0" in page.locator("#phase-status").inner_text()


def test_a_diagram_where_nothing_trained_states_no_measured_edge(live_server, chance_sweep, page):
    page.goto(f"{live_server}/studies/{chance_sweep}/phase")
    page.wait_for_function("() => document.getElementById('phase').dataset.ready === 'true'", timeout=30000)
    assert traces(page, "chart-phase") == ["measured", "6·ξ_c (theory)", "6·ξ_c", "σ_w* = 1.761 (χ₁ = 1)"]
    note = page.locator("#phase-theory-note").inner_text()
    assert "edge of chaos at σ_w* = 1.761" in note
    assert "nothing trained: the best cell reaches 15 %, less than 10 points above chance (10 %)" in note
    assert "trains deepest" not in note and "a cell trains at" not in note
    assert page.watch.errors == []


def test_the_study_page_has_the_phase_section(live_server, sweep, page):
    page.goto(f"{live_server}/studies/{sweep}")
    page.wait_for_function("() => document.getElementById('study').dataset.ready === 'true'", timeout=30000)
    page.wait_for_function("() => Number(document.getElementById('phase').dataset.rendered) >= 1", timeout=30000)
    assert traces(page, "chart-phase")[0] == "measured"
    assert page.watch.errors == []


def test_the_edge_of_chaos_preset_goes_from_the_form_to_a_sweep(live_server, page):
    import json
    import re
    from pathlib import Path

    from app.storage import studies

    page.goto(f"{live_server}/")
    page.wait_for_function("() => document.getElementById('study-form').getAttribute('data-ready') === 'true'")
    page.locator("button[data-preset='edge-of-chaos']").click()
    assert "= 144 run(s)" in page.locator("#run-count").inner_text()  # 9 σ_w² × 8 depths × 2 seeds
    page.get_by_role("button", name="Create study").click()
    page.wait_for_url(re.compile(r"/studies/\d+$"), timeout=15000)
    study = studies.get_study(int(page.url.rsplit("/", 1)[1]))
    example = json.loads((Path(__file__).resolve().parents[2] / "examples" / "edge-of-chaos.json").read_text())
    for field in ("weight_variances", "bias_variances", "depths", "seeds", "scaled_initializer"):
        assert study.spec[field] == example[field], field  # the form sends what curl sends
    assert study.spec["model"]["activation"] == "tanh" and len(study.runs) == 144
    assert page.watch.errors == []
