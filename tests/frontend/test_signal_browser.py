"""The signal-propagation page in a real headless Chromium against a real uvicorn server and a
real worker process on the probe queue that probes real MNIST images: the seed-002 preset draws the three charts, and a request the server
refuses comes back next to the field. Asserts on Plotly's own DOM; screenshots in tests/artifacts/.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.browser

PAGE = "/diagnostics/signal-propagation"
CHARTS = ("chart-activation", "chart-gradient", "chart-dead")
PROBE_URL = "**/api/diagnostics/signal-propagation"
# The API waits up to INITLAB_PROBE_WAIT_S (30 s) for the worker, then answers 202 and the page
# polls: a slow machine may take that path, so the test waits longer than the API does.
ANSWER_MS = 60_000
ANSWERED = (200, 202)


@pytest.fixture(scope="module")
def server(data_dir, request, tmp_path_factory):
    """live_server with INITLAB_DATA_DIR pointing at the real data sets, and a probe worker beside it."""
    from support import processes

    saved = os.environ.get("INITLAB_DATA_DIR")
    os.environ["INITLAB_DATA_DIR"] = str(data_dir)
    worker = None
    try:
        url = request.getfixturevalue("live_server")
        env = {key: os.environ[key] for key in ("INITLAB_STATE_DIR", "INITLAB_DATA_DIR")}
        worker = processes.start(["worker", "--name", "probe-browser", "--queues", "initlab.probe"],
                                 {**env, "INITLAB_WORKER_THREADS": "1"}, tmp_path_factory.mktemp("probe") / "worker.log")
        yield url
    finally:
        if worker is not None:
            processes.stop(worker)
        if saved is None:
            os.environ.pop("INITLAB_DATA_DIR", None)
        else:
            os.environ["INITLAB_DATA_DIR"] = saved


def _open(page, server):
    page.goto(f"{server}{PAGE}")
    page.wait_for_function("() => document.getElementById('signal-form').getAttribute('data-ready') === 'true'")


def _figure(page, chart: str) -> dict:
    return page.eval_on_selector(f"#{chart}", """el => ({
        names: el.data.map(t => t.name), colours: el.data.map(t => t.line.color), x: el.data.map(t => t.x),
        y: el.data.map(t => t.y), yaxis: el._fullLayout.yaxis.type, title: el.layout.title.text})""")


def test_seed_002_preset_draws_three_charts(server, page, artifacts):
    _open(page, server)
    catalog = page.evaluate("() => fetch('/api/initializers').then(r => r.json())")
    assert page.locator("#s-initializer-list input[type=checkbox]").count() == len(catalog)  # one per registry entry
    with page.expect_response(PROBE_URL, timeout=ANSWER_MS) as answer:
        page.get_by_role("button", name="Seed 002: ReLU, 20 layers, He normal vs uniform ±1/√fan_in").click()
    assert answer.value.status in ANSWERED
    assert sorted(answer.value.request.post_data_json["initializers"]) == ["he_normal", "uniform_fan_in"]
    page.wait_for_function("() => document.getElementById('signal-results').dataset.ready === 'true'", timeout=60000)
    assert page.get_by_label("Hidden layers", exact=True).input_value() == "20"
    assert page.get_by_label("He normal", exact=True).is_checked()

    figures = {chart: _figure(page, chart) for chart in CHARTS}
    names = figures["chart-activation"]["names"]
    assert sorted(names) == ["He normal", "Uniform ±1/√fan_in"]
    for chart in CHARTS[:2]:
        assert figures[chart]["names"] == names, chart
    # Dead ReLU units (solid) and constant units (dotted) for each initializer, named as such.
    assert figures["chart-dead"]["names"] == [f"{name}: {what}" for name in names
                                               for what in ("dead (ReLU)", "constant")]
    for chart, figure in figures.items():
        assert all(x == list(range(1, 22)) for x in figure["x"]), chart
    assert [figures[chart]["yaxis"] for chart in CHARTS] == ["log", "log", "linear"]
    colours = {tuple(figure["colours"]) for figure in figures.values() if len(figure["colours"]) == 2}
    assert len(colours) == 1 and len(set(next(iter(colours)))) == 2  # one colour per initializer, on every chart
    assert figures["chart-dead"]["colours"] == [c for c in figures["chart-activation"]["colours"] for _ in (0, 1)]

    # The charts carry seed 002's argument: He's line stays flat, the uniform rule's falls away.
    series = dict(zip(names, figures["chart-activation"]["y"]))
    he, uniform = (np.array(series[name][:20], dtype=float) for name in ("He normal", "Uniform ±1/√fan_in"))
    assert np.all((he / he[0] >= 1 / 4) & (he / he[0] <= 4))
    assert uniform[-1] < uniform[0] / 100
    dead = np.array(figures["chart-dead"]["y"][0][:20], dtype=float)
    assert np.all((dead >= 0) & (dead < 1))
    summary = page.locator("#signal-summary").inner_text()
    assert "He normal: layer 20 keeps" in summary and "Uniform ±1/√fan_in: layer 20 keeps" in summary
    page.screenshot(path=str(artifacts / "signal_seed_002.png"), full_page=True)
    assert page.watch.errors == [] and page.watch.external() == []


def test_batchnorm_preset_keeps_both_lines_flat(server, page):
    """Seed 002's nets with BatchNorm: normalizing each layer on the batch's statistics keeps the
    uniform rule's signal as flat as He's (the question "does normalization make the initializer
    irrelevant?", answered for the signal at init)."""
    _open(page, server)
    with page.expect_response(PROBE_URL, timeout=ANSWER_MS) as answer:
        page.get_by_role("button", name="The same 20 layers with BatchNorm").click()
    assert answer.value.status in ANSWERED
    assert answer.value.request.post_data_json["model"]["normalization"] == "batchnorm"
    page.wait_for_function("() => document.getElementById('signal-results').dataset.ready === 'true'", timeout=60000)
    assert page.get_by_label("Normalization", exact=True).input_value() == "batchnorm"
    figure = _figure(page, "chart-activation")
    for name, values in zip(figure["names"], figure["y"]):
        hidden = np.array(values[:20], dtype=float)
        assert np.all((hidden / hidden[0] >= 1 / 4) & (hidden / hidden[0] <= 4)), (name, hidden / hidden[0])
    assert page.watch.errors == []


def test_a_cnn_with_batchnorm_is_probed_from_the_form(server, page, artifacts):
    _open(page, server)
    assert page.get_by_label("Conv channels", exact=True).is_hidden()  # an MLP has none
    page.get_by_label("Model", exact=True).select_option("cnn")
    page.get_by_label("Conv channels", exact=True).fill("4, 8")
    page.get_by_label("Pooling", exact=True).select_option("max")
    page.get_by_label("Hidden layers", exact=True).fill("1")
    page.get_by_label("Units per layer", exact=True).fill("16")
    page.get_by_label("Normalization", exact=True).select_option("batchnorm")
    page.get_by_label("Probe samples", exact=True).fill("64")
    for box in page.locator("#s-initializer-list input[type=checkbox]").all():
        box.set_checked(box.get_attribute("value") in ("he_normal", "delta_orthogonal"))
    page.locator("#s-param-delta_orthogonal-gain").fill("2")  # parameters as on the new-study form
    with page.expect_response(PROBE_URL, timeout=ANSWER_MS) as answer:
        page.get_by_role("button", name="Probe the untrained network").click()
    assert answer.value.status in ANSWERED, answer.value.text()
    assert answer.value.request.post_data_json["initializers"] == ["he_normal", {"id": "delta_orthogonal",
                                                                                "params": {"gain": 2}}]
    assert answer.value.request.post_data_json["model"] == {
        "hidden_units": [16], "activation": "relu", "family": "cnn", "normalization": "batchnorm", "residual": False,
        "conv_channels": [4, 8], "pooling": "max"}
    page.wait_for_function("() => document.getElementById('signal-results').dataset.ready === 'true'", timeout=60000)
    layers = page.eval_on_selector("#chart-activation", "el => el.data.map(t => t.customdata.map(c => c[0]))")
    assert layers == [["conv_0", "conv_1", "dense_0", "output"]] * 2
    assert "of 3 hidden layers" in page.locator("#signal-status").inner_text()
    page.screenshot(path=str(artifacts / "signal_cnn_batchnorm.png"), full_page=True)

    # A shape the server refuses comes back next to its field.
    page.get_by_label("Residual blocks", exact=True).select_option("yes")
    with page.expect_response(PROBE_URL, timeout=ANSWER_MS) as answer:
        page.get_by_role("button", name="Probe the untrained network").click()
    assert answer.value.status == 422
    page.locator("#err-model-conv_channels:not(:empty)").wait_for()
    assert "odd number of layers" in page.locator("#err-model-conv_channels").inner_text()
    assert [e for e in page.watch.errors if "422" not in e] == []


def test_server_refusal_lands_by_the_field(server, page):
    _open(page, server)
    page.get_by_label("Hidden layers", exact=True).fill("3")
    page.get_by_label("Units per layer", exact=True).fill("4096")  # 784·4096 + 2·4096² weights: past INITLAB_MAX_PARAMETERS
    with page.expect_response(PROBE_URL, timeout=ANSWER_MS) as answer:
        page.get_by_role("button", name="Probe the untrained network").click()
    assert answer.value.status == 422
    page.locator("#err-model-hidden_units:not(:empty)").wait_for()
    assert "INITLAB_MAX_PARAMETERS" in page.locator("#err-model-hidden_units").inner_text()
    assert page.get_by_label("Units per layer", exact=True).get_attribute("aria-invalid") == "true"
    assert "rejected" in page.locator("#signal-error").inner_text()
    assert page.locator("#signal-results").is_hidden()

    # Checked in the page before asking: no initializer ticked.
    for box in page.locator("#s-initializer-list input[type=checkbox]").all():
        box.uncheck()
    page.get_by_label("Units per layer", exact=True).fill("16")
    page.get_by_role("button", name="Probe the untrained network").click()
    assert "at least one" in page.locator("#err-initializers").inner_text()
    errors = [e for e in page.watch.errors if "422" not in e]  # the browser's own log line for the refused POST
    assert errors == []
