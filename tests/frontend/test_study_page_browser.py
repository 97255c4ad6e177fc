"""A finished study's page in a real headless Chromium against a real uvicorn server.

Asserts on Plotly's own DOM (each figure's data and layout): every chart is drawn with the
expected traces, colours follow the initializer everywhere, the controls (band, seeds, log
scale, isolation, epoch slider, tensor, run and layer pickers) change the figures, the
verdict table is right and sortable, nothing is fetched from another host and nothing is
logged as an error. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.browser

CHARTS = ["chart-val-accuracy", "chart-val-loss", "chart-accuracy", "chart-loss", "chart-gradients", "chart-hist",
          "chart-overlay", "chart-heatmap", "chart-percentiles"]
READY = "() => document.getElementById('study').dataset.ready === 'true'"


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read()


def _figure(page, chart: str) -> dict:
    return page.eval_on_selector(f"#{chart}", """el => ({
        n: el.data.length, layout: {title: el.layout.title && el.layout.title.text, meta: el.layout.meta || null},
        traces: el.data.map(t => ({type: t.type, name: t.name, group: t.legendgroup || (t.meta && t.meta.group) || null,
          role: t.meta && t.meta.role, theory: !!(t.meta && t.meta.theory), colour: t.line && t.line.color, visible: t.visible, y: t.y, z: t.z,
          yaxis: t.yaxis || 'y'})),
        axes: Object.keys(el._fullLayout).filter(k => /^yaxis\\d*$/.test(k)).map(k => el._fullLayout[k].type)})""")


def _wait(page, condition: str, timeout: int = 10000) -> None:
    page.wait_for_function(condition, timeout=timeout)


def test_plotly_is_served_locally_and_unknown_study_is_404(live_server):
    status, kind, body = _get(f"{live_server}/static/vendor/plotly-initlab.min.js")  # the custom bundle
    assert status == 200 and "javascript" in kind and b"(core + heatmap" in body[:400]
    for missing in ("999999", "not-a-number"):
        status, kind, body = _get(f"{live_server}/studies/{missing}")
        assert status == 404 and "text/html" in kind and b"Not found" in body


def test_finished_study_draws_every_chart(live_server, finished_study, page, artifacts):
    page.goto(f"{live_server}/studies/{finished_study['id']}")
    page.wait_for_function(READY, timeout=20000)
    drawn = page.evaluate(f"() => {CHARTS!r}.map(id => document.getElementById(id).classList.contains('js-plotly-plot'))")
    assert drawn == [True] * len(CHARTS)
    page.screenshot(path=str(artifacts / "study_finished.png"), full_page=True)
    # No chart offers to upload its data (plotly.js 4's "Share chart" goes to cloud.plotly.com).
    assert page.locator(".modebar-btn").count() > 0
    assert page.locator('.modebar-btn[data-attr="sendChartToCloud"], .modebar-btn[data-title*="Share"], '
                        '.modebar-btn[data-title*="Chart Studio"]').count() == 0

    # Verdict: He normal leads; Glorot's seed 0 diverged and is flagged.
    assert "He normal leads" in page.locator("#verdict-text").inner_text()
    assert "Diverged (NaN/∞ loss): Glorot (Xavier) uniform (1)" in page.locator("#verdict-text").inner_text()
    rows = page.locator("#summary-table tbody tr")
    assert rows.count() == 2 and "leads" in rows.nth(0).inner_text()
    assert "1 of 2" in page.locator("#summary-table tr[data-group=glorot_uniform] td.diverged").inner_text()
    # Fused runs share their group's epoch time: the heading says so.
    assert "runs fused into one model share it" in page.locator("#summary-table th[data-key=seconds_per_epoch]").get_attribute("title")
    page.get_by_role("button", name="Final val. loss").click()  # lowest first
    assert page.locator("#summary-table th[data-key=final_val_loss]").get_attribute("aria-sort") == "ascending"
    assert page.locator("#summary-table tbody tr").nth(0).get_attribute("data-group") == "he_normal"
    page.get_by_role("button", name="Initializer").click()
    assert page.locator("#summary-table tbody tr").nth(0).get_attribute("data-group") == "he_normal"  # Z..A: He before Glorot

    # Curves: per initializer a band (two traces) and a mean line; one colour per initializer on every chart.
    colours = {}
    for chart in CHARTS[:4]:
        figure = _figure(page, chart)
        assert figure["n"] == 6 and [t["role"] for t in figure["traces"]].count("mean") == 2
        for trace in figure["traces"]:
            colours.setdefault(trace["group"], set()).add(trace["colour"])
    gradients = _figure(page, "chart-gradients")
    assert gradients["n"] == 3 * 2 * 3 and set(gradients["axes"]) == {"log"}
    for trace in gradients["traces"]:
        colours[trace["group"]].add(trace["colour"])
    assert {group: len(found) for group, found in colours.items()} == {"he_normal": 1, "glorot_uniform": 1}
    assert colours["he_normal"] != colours["glorot_uniform"]
    # NaN / Infinity never reach Plotly as numbers: the diverged run is out of the mean at epoch 3.
    loss = _figure(page, "chart-val-loss")
    assert all(v is None or isinstance(v, (int, float)) for t in loss["traces"] for v in t["y"])

    page.get_by_label("Show each seed").check()
    _wait(page, "() => document.getElementById('chart-val-accuracy').data.length === 10")
    page.get_by_label("Band over seeds").select_option("none")
    _wait(page, "() => document.getElementById('chart-loss').data.length === 6")
    page.get_by_label("Loss on a log scale").check()
    _wait(page, "() => document.getElementById('chart-loss').layout.yaxis.type === 'log'")
    assert page.eval_on_selector("#chart-val-accuracy", "el => el.layout.yaxis.type") != "log"

    # Isolation: the chip (keyboard) and a legend click both show one initializer alone, on every chart.
    chip = page.locator("#init-chips button[data-group=glorot_uniform]")
    chip.focus()
    page.keyboard.press("Enter")
    assert chip.get_attribute("aria-pressed") == "true"
    _wait(page, """() => ['chart-val-accuracy', 'chart-gradients', 'chart-overlay'].every(id =>
        document.getElementById(id).data.every(t => (t.legendgroup === 'glorot_uniform') === (t.visible === true)))""")
    page.locator("#chart-val-loss .legend .traces").first.click()  # He normal's entry
    _wait(page, "() => document.querySelector('#init-chips [data-group=he_normal]').getAttribute('aria-pressed') === 'true'")
    page.locator("#init-chips button[data-group=he_normal]").click()
    _wait(page, "() => document.getElementById('chart-accuracy').data.every(t => t.visible === true)")

    # Histograms on shared edges: 3 layers x 2 initializers x (epoch 0, latest epoch).
    hist = _figure(page, "chart-hist")
    assert sum(not t["theory"] for t in hist["traces"]) == 12 and hist["layout"]["meta"]["epoch"] == 3
    # ... and each initializer's promised density over epoch 0, with the KS statistic per cell.
    assert sum(t["theory"] for t in hist["traces"]) == 6
    assert page.evaluate("""() => document.getElementById('chart-hist').layout.annotations
        .filter(a => a.text.includes('KS ')).length""") == 6
    assert _figure(page, "chart-overlay")["n"] == 2
    slider = page.get_by_label("Epoch", exact=True)
    slider.focus()
    page.keyboard.press("ArrowLeft")
    _wait(page, "() => document.getElementById('chart-hist').layout.meta.epoch === 2")
    _wait(page, "() => document.getElementById('chart-overlay').layout.meta.epoch === 2")
    assert page.locator("#hist-epoch-value").inner_text() == "2"
    assert _figure(page, "chart-hist")["traces"] != hist["traces"]
    page.get_by_label("Tensor").select_option("gradient")
    _wait(page, "() => document.getElementById('chart-hist').layout.title.text.startsWith('Gradient')")
    page.get_by_label("Tensor").select_option("kernel")
    page.get_by_label("Range").select_option("robust")
    _wait(page, "() => document.getElementById('chart-hist').layout.title.text.startsWith('Weight')")

    # One run over every epoch: a heatmap row per epoch and TensorBoard's percentile bands.
    heat = _figure(page, "chart-heatmap")
    assert heat["traces"][0]["type"] == "heatmap" and len(heat["traces"][0]["z"]) == 4
    assert _figure(page, "chart-percentiles")["n"] == 9
    page.get_by_label("Run", exact=True).select_option(label="Glorot (Xavier) uniform · seed 1")
    page.get_by_label("Layer of this run").select_option("output")
    _wait(page, "() => document.getElementById('chart-percentiles').layout.meta.layer === 'output'")

    # Runs table: the failure, NaN shown as text, a Retry button for the failed run.
    failed = page.locator("#runs-table tbody tr[data-status=failed]")
    assert failed.count() == 1 and "NaN (diverged)" in failed.inner_text() and "loss became NaN" in failed.inner_text()
    assert failed.get_by_role("button", name="Retry run").count() == 1
    assert page.locator("#study").get_attribute("data-live") == "false"
    page.screenshot(path=str(artifacts / "study_controls.png"), full_page=True)
    assert page.watch.errors == [] and page.watch.external() == []
