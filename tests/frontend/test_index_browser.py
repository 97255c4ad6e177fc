"""The studies page in a real Chromium: the form checks what the API would refuse before
sending (with the API's own limits), shows the server's 422 next to the field when only the
server can tell, and the study list filters by name and opens the compare view.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from app.storage import runs as run_store  # noqa: E402

pytestmark = pytest.mark.browser


def _open_form(page, live_server):
    page.goto(f"{live_server}/")
    page.wait_for_function("() => document.getElementById('study-form').getAttribute('data-ready') === 'true'")


def test_form_checks_before_sending_and_shows_server_errors(live_server, page, artifacts):
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    _open_form(page, live_server)
    from app.domain.registry import REGISTRY

    assert page.locator("#initializer-list input[type=checkbox]").count() == len(REGISTRY)
    assert "N(0, 1/fan_in)" in page.locator("#initializer-list").inner_text()  # each initializer's formula
    page.get_by_label("Name", exact=True).fill("Invalid study")
    page.get_by_label("He normal", exact=True).check()
    page.get_by_label("Epochs").fill("501")  # INITLAB_MAX_EPOCHS defaults to 500
    page.get_by_label("Seeds").fill("3, 3")
    page.get_by_label("Hidden layer widths").fill("128,wide")
    page.get_by_label("Dropout").fill("1")
    page.get_by_role("button", name="Create study").click()
    page.locator("#err-training-epochs").wait_for()
    assert posts == [], "the form refused the study itself"
    assert "less than or equal to 500" in page.locator("#err-training-epochs").inner_text()
    assert "distinct" in page.locator("#err-seeds").inner_text()
    assert "item 2" in page.locator("#err-model-hidden_units").inner_text()
    assert "less than 1" in page.locator("#err-model-dropout").inner_text()
    assert page.get_by_label("Epochs").get_attribute("aria-invalid") == "true"
    assert "before creating the study" in page.locator("#form-error").inner_text()
    page.screenshot(path=str(artifacts / "index_checks.png"), full_page=True)

    # Only the server knows a rule between two parameters (minval < maxval): its 422 lands by the list.
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Seeds").fill("7")
    page.get_by_label("Hidden layer widths").fill("16")
    page.get_by_label("Dropout").fill("0")
    page.get_by_label("Random uniform", exact=True).check()
    page.get_by_label("minval of Random uniform").fill("0.5")
    with page.expect_response(lambda r: r.url.endswith("/api/studies") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create study").click()
    assert answer.value.status == 422
    # The response arrives before the page has drawn it: wait for the text, then read it.
    expect(page.locator("#err-initializers")).to_contain_text("minval")
    expect(page.locator("#form-error")).to_contain_text("server rejected")
    page.get_by_label("minval of Random uniform").fill("-0.05")
    # Bias variances without weight variances are no sweep: the server says so at that field.
    page.get_by_label("Bias variances σ_b²").fill("0.05")
    with page.expect_response(lambda r: r.url.endswith("/api/studies") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create study").click()
    assert answer.value.status == 422
    expect(page.locator("#err-bias_variances")).to_contain_text("applies only with weight_variances")
    page.get_by_label("Bias variances σ_b²").fill("")
    page.get_by_role("button", name="Create study").click()
    page.wait_for_url(re.compile(r"/studies/\d+$"), timeout=15000)
    errors = [e for e in page.watch.errors if "422" not in e]  # the browser's own log line for the refused POST
    assert errors == [] and page.watch.external() == []


def test_study_list_filters_by_name_and_compares(live_server, finished_study, page, artifacts):
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    other = studies.create_study(StudyCreate(name="Second look", initializers=["he_normal", "ones"], seeds=[0],
                                             training={"epochs": 2}))[0]
    for run in other.runs:
        run_store.claim_run(run.id)
        for epoch in (1, 2):
            records.record_epoch(run.id, epoch, {"loss": 1 / epoch, "accuracy": 0.5, "val_loss": 1 / epoch,
                                                 "val_accuracy": 0.4 + 0.1 * epoch, "seconds": 1.0})
        run_store.finish_run(run.id, "succeeded")
    from app.storage import workers

    workers.register_worker("initlab@hostA", "hostA", 4242, ["initlab", "initlab.probe"], 5.0)
    workers.beat("initlab@hostA", 4242, device="CPU", current_runs=[other.runs[0].id], current_study=other.id)
    page.goto(f"{live_server}/")
    page.get_by_role("link", name="Second look").wait_for()
    # The workers panel: the worker's host, device and what it trains, from GET /api/workers.
    worker_row = page.locator('#workers-table tr[data-worker="initlab@hostA"]')
    worker_row.wait_for()
    assert "hostA" in worker_row.inner_text() and "CPU" in worker_row.inner_text()
    assert worker_row.get_attribute("data-state") == "training"
    assert worker_row.get_by_role("link", name=f"study {other.id}").is_visible()
    page.get_by_label("Filter by name").fill("glorot")
    page.wait_for_function("() => document.querySelectorAll('#studies-table tbody tr').length === 1")
    row = page.locator("#studies-table tbody tr")
    assert "He vs Glorot (fixture)" in row.inner_text() and "1 failed" in row.inner_text()
    row.get_by_role("checkbox").check()
    page.get_by_label("Filter by name").fill("")
    page.wait_for_function("() => document.querySelectorAll('#studies-table tbody tr').length >= 2")
    assert page.get_by_role("button", name=re.compile("Compare selected")).is_disabled()
    page.get_by_label("Select Second look for comparison").check()
    page.get_by_role("button", name="Compare selected studies (2)").click()
    page.wait_for_url(re.compile(r"/compare\?ids="))
    page.wait_for_function("() => document.getElementById('compare').dataset.ready === 'true'", timeout=20000)
    columns = page.locator("#compare-grid > section")
    assert columns.count() == 2
    assert page.locator(".compare-grid .js-plotly-plot").count() == 4
    # He normal has one colour in both studies' charts.
    colours = page.evaluate("""() => [...document.querySelectorAll('.compare-grid .js-plotly-plot')].flatMap(el =>
        el.data.filter(t => t.legendgroup === 'he_normal').map(t => t.line.color))""")
    assert len(colours) >= 4 and len(set(colours)) == 1
    page.screenshot(path=str(artifacts / "compare.png"), full_page=True)
    # Columns that do not fit the window wrap to the next row instead of scrolling sideways.
    page.set_viewport_size({"width": 800, "height": 900})
    page.wait_for_function("() => document.documentElement.scrollWidth <= window.innerWidth")
    tops = page.evaluate("() => [...document.querySelectorAll('#compare-grid > section')].map(s => s.offsetTop)")
    assert tops[1] > tops[0], tops
    assert page.watch.errors == [] and page.watch.external() == []


def test_form_builds_lsuv_and_a_custom_clipped_normal(live_server, page, artifacts):
    import json
    import urllib.request

    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    _open_form(page, live_server)
    page.get_by_label("Name", exact=True).fill("LSUV and a clipped normal")
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Seeds").fill("0")
    for name in ("He normal", "Uniform ±1/√fan_in", "LSUV (layer-sequential unit variance)",
                 "Custom"):
        page.get_by_label(name, exact=True).check()
    distribution = page.get_by_label("distribution of Custom")
    clip = page.get_by_label("clip_sigma of Custom")
    scale = page.get_by_label("scale of Custom")
    # clip σ belongs to a truncated normal only: off for the others, as the API's rule says.
    distribution.select_option("uniform")
    assert clip.is_disabled()
    distribution.select_option("truncated_normal")
    assert clip.is_enabled()
    clip.fill("1.5")
    scale.fill("-1")  # refused by the form itself, with the registry's rule, before any POST
    page.get_by_role("button", name="Create study").click()
    page.locator("#err-initializers").wait_for()
    assert "for custom, scale" in page.locator("#err-initializers").inner_text()
    assert "positive" in page.locator("#err-initializers").inner_text()
    assert posts == []
    page.locator("#initializers-fieldset").screenshot(path=str(artifacts / "index_custom_initializer.png"))
    scale.fill("2")
    with page.expect_response(lambda r: r.url.endswith("/api/studies") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create study").click()
    assert answer.value.status == 201, answer.value.text()
    sent = json.loads(answer.value.request.post_data)
    assert sent["initializers"] == ["uniform_fan_in", "he_normal", "lsuv", {"id": "custom", "params": {
        "distribution": "truncated_normal", "mode": "fan_in", "scale": 2, "clip_sigma": 1.5}}]
    page.wait_for_url(re.compile(r"/studies/\d+$"), timeout=15000)
    with urllib.request.urlopen(f"{live_server}/api/studies/{page.url.rsplit('/', 1)[1]}") as response:
        study = json.load(response)
    assert [(run["initializer"], run["initializer_params"].get("clip_sigma")) for run in study["runs"]] == [
        ("uniform_fan_in", None), ("he_normal", None), ("lsuv", None), ("custom", 1.5)]


def test_the_form_sends_a_cnn_with_batchnorm_and_fills_it_back(live_server, page):
    _open_form(page, live_server)
    page.get_by_label("Name", exact=True).fill("A small CNN")
    page.get_by_label("He normal", exact=True).check()
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Family").select_option("cnn")
    page.get_by_label("Conv channels (CNN)").fill("8, 16")
    page.get_by_label("Pooling after each conv block (CNN)").select_option("avg")
    page.get_by_label("Normalization").select_option("batchnorm")
    page.get_by_label("Hidden layer widths").fill("")
    with page.expect_response(lambda r: r.url.endswith("/api/studies") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Create study").click()
    assert answer.value.status == 201
    sent = answer.value.request.post_data_json["model"]
    assert {key: sent.get(key) for key in ("family", "conv_channels", "pooling", "normalization", "hidden_units")} \
        == {"family": "cnn", "conv_channels": [8, 16], "pooling": "avg", "normalization": "batchnorm", "hidden_units": []}
    assert "residual" not in sent  # defaults are left out, so an MLP's body is what it always was
    page.wait_for_url(re.compile(r"/studies/\d+$"), timeout=15000)
    study_id = int(page.url.rsplit("/", 1)[1])
    model = page.request.get(f"{live_server}/api/studies/{study_id}").json()["spec"]["model"]
    assert (model["family"], model["conv_channels"], model["pooling"], model["residual"]) == ("cnn", [8, 16], "avg", False)
    # Filled back from that body (as a preset is), the form sends the same model again.
    _open_form(page, live_server)
    body = page.evaluate("""async (model) => {
        const { fillForm, readForm } = await import('/static/study_form.js');
        const form = document.getElementById('study-form');
        fillForm(form, { name: 'again', model, initializers: ['he_normal'] });
        return readForm(form, []).model;
    }""", model)
    assert (body["family"], body["conv_channels"], body["pooling"], body["normalization"]) == ("cnn", [8, 16], "avg",
                                                                                              "batchnorm")
    # Zero-init residual is the third choice of "Residual blocks", and comes back as it went.
    zeroed = {**model, "conv_channels": [8, 8, 8], "residual": True, "zero_init_residual": True}
    body = page.evaluate("""async (model) => {
        const { fillForm, readForm } = await import('/static/study_form.js');
        const form = document.getElementById('study-form');
        fillForm(form, { name: 'zero-init', model, initializers: ['he_normal'] });
        return [readForm(form, []).model, document.getElementById('f-residual').value];
    }""", zeroed)
    assert (body[0]["residual"], body[0]["zero_init_residual"], body[1]) == (True, True, "zero")


def test_a_linked_preset_creates_one_study_per_variant_and_compares_them(live_server, page, artifacts):
    _open_form(page, live_server)
    page.get_by_role("button", name="Does BatchNorm rescue a bad initializer?").click()
    assert page.is_visible("#linked") and page.is_checked("#f-linked")
    assert "without BatchNorm / with BatchNorm" in page.inner_text("#linked-label")
    assert page.inner_text("#run-count").endswith("× 2 linked studies = 24 run(s)")
    posted = []
    page.on("request", lambda r: posted.append(r.post_data_json) if r.url.endswith("/api/studies") and r.method == "POST"
            else None)
    page.get_by_role("button", name="Create study").click()
    page.wait_for_url(re.compile(r"/compare\?ids=\d+,\d+$"), timeout=15000)
    assert [body["name"] for body in posted] == ["BatchNorm rescue — without BatchNorm", "BatchNorm rescue — with BatchNorm"]
    assert [body["model"]["normalization"] for body in posted] == ["none", "batchnorm"]
    assert all(body["model"]["hidden_units"] == [128, 64] and len(body["initializers"]) == 4 for body in posted)
    page.wait_for_function("() => document.getElementById('compare').dataset.ready === 'true'", timeout=20000)
    assert page.locator("#compare-grid > section").count() == 2
    page.screenshot(path=str(artifacts / "linked_preset_compare.png"), full_page=True)

    # Unticked, the same preset is one study, as the form shows it.
    _open_form(page, live_server)
    page.get_by_role("button", name="Deep residual net: zero-init residual vs He").click()
    page.uncheck("#f-linked")
    assert page.inner_text("#run-count").endswith("= 3 run(s)")
    page.get_by_role("button", name="Create study").click()
    page.wait_for_url(re.compile(r"/studies/\d+$"), timeout=15000)
    assert page.watch.errors == []


def test_a_long_history_pages_on_and_the_compare_button_keeps_to_twelve(live_server, page):
    """With 1,003 studies the list showed the newest 500 and said nothing of the rest; ticking 13
    studies led to an unexplained 422 on the compare page."""
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    before = len(studies.list_studies(limit=500))
    for number in range(505 - before):
        studies.create_study(StudyCreate(name=f"history {number:03d}", initializers=["he_normal"], seeds=[0]))
    page.goto(f"{live_server}/")
    page.wait_for_function("() => document.querySelectorAll('#studies-table tbody tr').length === 500")
    more = page.get_by_role("button", name="Show 500 more")
    expect(more).to_be_visible()
    expect(page.locator("#studies-more-note")).to_contain_text("The newest 500 studies")
    more.click()
    page.wait_for_function("() => document.querySelectorAll('#studies-table tbody tr').length === 505")
    expect(more).to_be_hidden()
    boxes = page.locator("#studies-table tbody input[type=checkbox]")
    for index in range(13):
        boxes.nth(index).check()
    button = page.get_by_role("button", name="Compare selected studies (13)")
    expect(button).to_be_disabled()
    expect(page.locator("#compare-hint")).to_have_text("At most 12 studies side by side: untick 1.")
    boxes.nth(0).uncheck()
    expect(page.get_by_role("button", name="Compare selected studies (12)")).to_be_enabled()
    assert page.watch.errors == []
