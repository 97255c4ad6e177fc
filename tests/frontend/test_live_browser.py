"""Create a study through the form, then watch it live in a real Chromium while a stand-in
worker writes progress, epochs and statistics through the storage layer: progress bars and
charts move without a reload (server-sent events), a run is cancelled and retried from its
buttons, and the live feed ends when the study does.
"""

from __future__ import annotations

import re

import pytest
from app.storage import runs as run_store  # noqa: E402

pytestmark = pytest.mark.browser


def _row(page, run_id: int):
    return page.locator(f"#runs-table tbody tr[data-run-id='{run_id}']")


def _wait_row(page, run_id: int, condition: str, timeout: int = 10000) -> None:
    page.wait_for_function(f"() => {{ const tr = document.querySelector(\"#runs-table tr[data-run-id='{run_id}']\");"
                           f" return tr && ({condition}); }}", timeout=timeout)


def test_form_preset_to_live_study_with_cancel_and_retry(live_server, page, artifacts, fake_layers):
    from app.storage import records, studies

    page.goto(f"{live_server}/")
    page.wait_for_function("() => document.getElementById('study-form').getAttribute('data-ready') === 'true'")
    page.get_by_role("button", name="seed 001: MNIST, Dense 128-64 ReLU, four initializers").click()
    assert page.get_by_label("Data set").input_value() == "mnist"
    assert page.get_by_label("Hidden layer widths").input_value() == "128,64"
    assert page.get_by_label("Output layer initializer").input_value() == "glorot_uniform"
    assert page.get_by_label("stddev of Random normal").input_value() == "0.01"
    assert "4 initializer(s) × 3 seed(s) = 12 run(s)" in page.locator("#run-count").inner_text()
    page.screenshot(path=str(artifacts / "index_preset.png"), full_page=True)

    page.get_by_label("Name", exact=True).fill("Live study")
    page.get_by_label("Zeros", exact=True).uncheck()
    page.get_by_label("Random normal", exact=True).uncheck()
    page.get_by_label("Training subset size").fill("500")
    page.get_by_label("Epochs").fill("2")
    page.get_by_label("Seeds").fill("0, 1")
    page.get_by_role("button", name="Create study").click()
    page.wait_for_url(re.compile(r"/studies/\d+$"), timeout=15000)
    study_id = int(page.url.rsplit("/", 1)[1])
    spec = studies.get_study(study_id).spec
    assert spec["model"]["output_initializer"] == {"id": "glorot_uniform", "params": {}}
    assert [ref["id"] for ref in spec["initializers"]] == ["glorot_uniform", "he_uniform"] and spec["seeds"] == [0, 1]
    page.wait_for_function("() => document.getElementById('study').dataset.ready === 'true'", timeout=20000)
    assert page.locator("#study").get_attribute("data-live") == "true"
    assert page.locator("#runs-table tbody tr[data-status=queued]").count() == 4
    runs = [run.id for run in studies.get_study(study_id).runs]

    # A worker takes the first run: the bar moves with each heartbeat, pushed by the server.
    first = runs[0]
    run_store.claim_run(first, worker_host="stand-in")
    run_store.set_device(first, "CPU:0")
    run_store.heartbeat(first, batch=3, batches=10)
    _wait_row(page, first, "tr.dataset.status === 'running' && tr.innerText.includes('batch 3/10')")
    assert float(_row(page, first).locator("progress").get_attribute("value")) == pytest.approx(0.15)
    assert page.locator("#overall-progress").is_visible()
    records.record_layers(first, 0, fake_layers(first, 0))
    records.record_epoch(first, 1, {"loss": 0.9, "accuracy": 0.7, "val_loss": 1.0, "val_accuracy": 0.68, "seconds": 2})
    records.record_layers(first, 1, fake_layers(first, 1))
    run_store.heartbeat(first, batch=5, batches=10)
    # The charts grow without a reload: the first epoch's point, and histograms at epoch 1.
    page.wait_for_function("""() => document.getElementById('chart-val-accuracy').data
        .some(t => t.meta.role === 'mean' && t.y.length === 1 && t.y[0] === 0.68)""", timeout=10000)
    page.wait_for_function("() => document.getElementById('chart-hist').layout.meta.epoch === 1", timeout=10000)
    _wait_row(page, first, "tr.innerText.includes('batch 5/10') && tr.innerText.includes('left')")
    assert _row(page, first).locator("progress").get_attribute("value") == "0.75"
    page.screenshot(path=str(artifacts / "study_running.png"), full_page=True)

    # Cancel the running run: it says "stopping…" until the worker, at its next check, stops.
    _row(page, first).get_by_role("button", name=re.compile(r"^Cancel run")).click()
    _wait_row(page, first, "tr.innerText.includes('stopping')")
    assert run_store.heartbeat(first) is True, "the worker's next heartbeat is told to stop"
    run_store.finish_run(first, "cancelled")
    _wait_row(page, first, "tr.dataset.status === 'cancelled'")
    # A queued run cancels at once; Retry puts it back in the queue.
    second = runs[1]
    _row(page, second).get_by_role("button", name=re.compile(r"^Cancel run")).click()
    _wait_row(page, second, "tr.dataset.status === 'cancelled'")
    _row(page, second).get_by_role("button", name=re.compile(r"^Retry run")).click()
    _wait_row(page, second, "tr.dataset.status === 'queued'")
    assert run_store.get_run(second).status == "queued"

    # The rest train and finish: the live feed ends with the study.
    for run_id in runs[1:]:
        run_store.claim_run(run_id)
        records.record_epoch(run_id, 1, {"loss": 0.8, "accuracy": 0.75, "val_loss": 0.9, "val_accuracy": 0.7, "seconds": 2})
        run_store.finish_run(run_id, "succeeded")
    page.wait_for_function("() => document.getElementById('study').dataset.live === 'false'", timeout=15000)
    assert "no longer live" in page.locator("#live-status").inner_text()
    assert page.locator("#runs-table tbody tr[data-status=succeeded]").count() == 3
    assert page.locator("#retry-study").is_visible()  # the cancelled run can be retried with the study's button
    page.screenshot(path=str(artifacts / "study_live_finished.png"), full_page=True)
    assert page.watch.errors == [] and page.watch.external() == []
