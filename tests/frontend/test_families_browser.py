"""A really trained CNN study with BatchNorm, opened in a real headless Chromium.

The study (conv 4-8 + max pooling, BatchNorm, a Dense head of 16; He normal and Glorot
uniform; 300 Fashion-MNIST images, 2 epochs) is POSTed through the storage layer and trained
in this process by ``worker.execution.execute_group``, as a worker's task would, into the
live server's SQLite. The page must draw every chart for it: curves, gradients, histograms
of conv kernels with the theory overlay, the normalization layers' own gamma and beta, the
per-run epoch views and the failure tags.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHARTS = ["chart-val-accuracy", "chart-val-loss", "chart-accuracy", "chart-loss", "chart-gradients", "chart-hist",
          "chart-overlay", "chart-heatmap", "chart-percentiles"]
READY = "() => document.getElementById('study').dataset.ready === 'true'"
GRID_LAYERS = """() => document.getElementById('chart-hist').layout.annotations
    .map(a => a.text).filter(t => /^(conv|dense|bn|output)/.test(t))"""


@pytest.fixture(scope="module")
def cnn_study(live_server, data_dir) -> dict:
    from app.schemas.studies import StudyCreate
    from app.storage import studies
    from worker.execution import execute_group

    study = studies.create_study(StudyCreate(
        name="CNN with BatchNorm (trained)",
        dataset={"name": "fashion_mnist", "train_samples": 300, "validation_samples": 200},
        model={"family": "cnn", "conv_channels": [4, 8], "hidden_units": [16], "normalization": "batchnorm"},
        training={"epochs": 2, "batch_size": 32, "learning_rate": 0.01},
        initializers=["he_normal", "glorot_uniform"], seeds=[0],
    ))[0]
    outcomes = execute_group([run.id for run in study.runs])
    assert set(outcomes.values()) == {"succeeded"}, outcomes
    return studies.get_study(study.id).model_dump(mode="json")


def test_a_trained_cnn_study_page_draws_every_view(live_server, cnn_study, page, artifacts):
    page.goto(f"{live_server}/studies/{cnn_study['id']}")
    page.wait_for_function(READY, timeout=30000)
    assert "conv 4–8 (3×3, max pooling), dense 16, relu, batchnorm" in page.inner_text("body")
    drawn = page.evaluate(f"() => {CHARTS!r}.map(id => document.getElementById(id).classList.contains('js-plotly-plot'))")
    assert drawn == [True] * len(CHARTS)

    # Curves: one line per initializer, two epochs each.
    curves = page.eval_on_selector("#chart-val-accuracy", "el => el.data.filter(t => t.x && t.x.length === 2).length")
    assert curves >= 2
    # Gradient norms per layer over epochs, for every conv and Dense layer.
    gradient_names = page.eval_on_selector("#chart-gradients", "el => el.layout.xaxis && el.data.length")
    assert gradient_names >= 2

    # Kernel histograms of every weighted layer, each with its initializer's theory at epoch 0.
    page.wait_for_function(f"() => ({GRID_LAYERS})().length === 4", timeout=15000)
    assert page.evaluate(GRID_LAYERS) == ["conv_0", "conv_1", "dense_0", "output"]
    theory = page.eval_on_selector("#chart-hist", "el => el.data.filter(t => t.meta && t.meta.theory).length")
    assert theory == 4 * 2  # 4 layers x 2 initializers
    assert page.evaluate("""() => document.getElementById('chart-hist').layout.annotations
        .filter(a => a.text.includes('KS ')).length""") == 8

    # The normalization layers' own parameters, listed only because the study has BatchNorm.
    options = page.eval_on_selector("#hist-tensor", "el => [...el.options].map(o => o.value)")
    assert options == ["kernel", "bias", "gradient", "gamma", "beta", "moving_mean", "moving_variance"]
    page.get_by_label("Tensor").select_option("gamma")
    page.wait_for_function("() => document.getElementById('chart-hist').layout.title.text.startsWith('Normalization scale')")
    assert page.evaluate(GRID_LAYERS) == ["bn_0", "bn_1", "bn_2"]
    page.get_by_label("Layer of this run").select_option("bn_1")
    page.wait_for_function("() => (document.getElementById('chart-heatmap').layout.meta || {}).layer === 'bn_1'")
    heatmap_epochs = page.eval_on_selector("#chart-heatmap", "el => el.data[0].y")
    assert heatmap_epochs == [0, 1, 2]

    # Failure tags: the section answers for a CNN (a row per run, tags or "none").
    page.wait_for_function("() => document.querySelectorAll('#failures-table tbody tr').length === 2", timeout=15000)
    page.screenshot(path=str(artifacts / "study_cnn_batchnorm.png"), full_page=True)
    assert page.watch.errors == [] and page.watch.external() == []


def test_a_deep_nets_histogram_grid_spreads_its_layers_until_asked_for_all(live_server, page):
    """12 weighted layers: the grid shows 8 rows (first and last kept) and says so; "all" shows 12."""
    from app.schemas.studies import StudyCreate
    from app.storage import studies
    from worker.execution import execute_group

    study = studies.create_study(StudyCreate(
        name="deep residual (trained)",
        dataset={"name": "mnist", "train_samples": 300, "validation_samples": 200},
        model={"hidden_units": [8] * 11, "residual": True},
        training={"epochs": 1, "batch_size": 64}, initializers=["he_normal"], seeds=[0],
    ))[0]
    assert set(execute_group([run.id for run in study.runs]).values()) == {"succeeded"}
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function(READY, timeout=30000)
    spread = page.evaluate(GRID_LAYERS)
    assert len(spread) == 8 and spread[0] == "dense_0" and spread[-1] == "output"
    assert "Showing 8 of 12 layers" in page.inner_text("#hist-note")
    height = page.eval_on_selector("#chart-hist", "el => el.layout.height")
    page.get_by_label("Layers", exact=True).select_option("all")
    page.wait_for_function(f"() => ({GRID_LAYERS})().length === 12")
    assert page.evaluate(GRID_LAYERS) == [f"dense_{i}" for i in range(11)] + ["output"]
    assert page.eval_on_selector("#chart-hist", "el => el.layout.height") > height
    assert "Showing" not in page.inner_text("#hist-note")
    assert page.watch.errors == []
