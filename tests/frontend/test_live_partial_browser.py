"""The study page in a real Chromium follows the live feed's partial events: a run's new epoch,
batch and status, and the header's "Trained with" line when a run finishes in another
environment, all shown while the page's own refetch of the study is held back, so they can
only have come from the feed (app/api/routes/events.py, frontend/static/study.js).
"""

from __future__ import annotations

import pytest

from app.storage import runs as run_store

pytestmark = pytest.mark.browser

OLD = {"backend": "tensorflow", "keras": "3.0.0", "tensorflow": "2.0.0", "onednn": False, "threads": 1}
NEW = {**OLD, "tensorflow": "2.1.0", "onednn": True}
OLD_TEXT = "Keras 3.0.0 on TensorFlow 2.0.0 (oneDNN off, 1 thread)"
NEW_TEXT = "Keras 3.0.0 on TensorFlow 2.1.0 (oneDNN on, 1 thread)"

# Copies what the feed sends into window.__feed, so the test can see which events carried what.
RECORD_FEED = """
window.__feed = [];
const realFetch = window.fetch;
window.fetch = async (input, init) => {
  const response = await realFetch(input, init);
  if (!String(input).includes("/events") || !response.body) return response;
  const [mine, theirs] = response.body.tee();
  (async () => {
    const reader = theirs.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ done: true }));
      if (done) return;
      buffer += value;
      const lines = buffer.split("\\n");
      buffer = lines.pop();
      for (const line of lines) {
        if (!line.startsWith("data: ")) continue;
        const event = JSON.parse(line.slice(6));
        if (event.runs) window.__feed.push({ partial: event.partial, environments: event.environments ?? null,
                                             runs: event.runs.map((r) => ({ id: r.id, status: r.status, epoch: r.epoch })) });
      }
    }
  })();
  return new Response(mine, { status: response.status, statusText: response.statusText, headers: response.headers });
};
"""


def _row_has(page, run_id: int, condition: str) -> None:
    page.wait_for_function(f"() => {{ const tr = document.querySelector(\"#runs-table tr[data-run-id='{run_id}']\");"
                           f" return tr && ({condition}); }}", timeout=10000)


def test_partial_events_move_rows_and_the_environment_line(live_server, page):
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    study = studies.create_study(StudyCreate(
        name="partial feed", initializers=["he_normal", "glorot_uniform"], seeds=list(range(10)),
        dataset={"name": "mnist", "train_samples": 500, "validation_samples": 200}, training={"epochs": 3}))[0]
    done, training, finishing = (run.id for run in study.runs[:3])
    run_store.claim_run(done, worker_host="old-host")
    run_store.set_device(done, "CPU:0", OLD)
    for epoch in (1, 2, 3):
        records.record_epoch(done, epoch, {"loss": 1 / epoch, "accuracy": 0.8, "val_loss": 1 / epoch, "val_accuracy": 0.8,
                                           "seconds": 1})
    run_store.finish_run(done, "succeeded")
    run_store.claim_run(training, worker_host="old-host")
    run_store.set_device(training, "CPU:0", OLD)
    run_store.heartbeat(training, batch=1, batches=10)

    page.add_init_script(RECORD_FEED)
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function("() => document.getElementById('study').dataset.ready === 'true'", timeout=20000)
    assert page.locator("#study").get_attribute("data-live") == "true"
    assert page.locator("#spec-environment dd").inner_text() == OLD_TEXT
    page.wait_for_function("() => window.__feed.length >= 1", timeout=10000)

    held = []  # the page's refetches of the study, answered only at the end
    page.route(f"**/api/studies/{study.id}", lambda route: held.append(route))

    records.record_epoch(training, 1, {"loss": 0.9, "accuracy": 0.7, "val_loss": 1.0, "val_accuracy": 0.7, "seconds": 1})
    run_store.heartbeat(training, epoch=1, batch=4, batches=10)
    run_store.claim_run(finishing, worker_host="new-host")
    run_store.set_device(finishing, "CPU:0", NEW)
    run_store.finish_run(finishing, "succeeded")

    _row_has(page, training, "tr.innerText.includes('epoch 1 of 3') && tr.innerText.includes('batch 4/10')")
    _row_has(page, finishing, "tr.dataset.status === 'succeeded'")
    page.wait_for_function("() => document.querySelector('#spec-environment dd').innerText.includes('2 environments')",
                           timeout=10000)
    assert page.locator("#spec-environment dd").inner_text() == (
        f"2 environments, whose numbers differ: {OLD_TEXT} (2 runs); {NEW_TEXT} (1 run)")
    assert page.locator("#study-status").inner_text() == "running"
    assert "18 run(s) unfinished" in page.locator("#overall-text").inner_text()
    for _ in range(50):  # the new data version makes the page refetch the study (held back here)
        if held:
            break
        page.wait_for_timeout(100)
    assert held

    feed = page.evaluate("window.__feed")
    assert feed[0]["partial"] is False and len(feed[0]["runs"]) == 20
    carried = next(event for event in feed if any(r["id"] == finishing and r["status"] == "succeeded" for r in event["runs"]))
    assert carried["partial"] is True and {r["id"] for r in carried["runs"]} <= {training, finishing}

    # Let the refetch through: the page's own data agrees with what the feed said.
    refreshes = int(page.locator("#study").get_attribute("data-refreshes"))
    for route in held:
        route.continue_()
    page.unroute(f"**/api/studies/{study.id}")
    page.wait_for_function(f"() => Number(document.getElementById('study').dataset.refreshes) > {refreshes}",
                           timeout=10000)
    _row_has(page, finishing, "tr.dataset.status === 'succeeded'")
    _row_has(page, training, "tr.innerText.includes('epoch 1 of 3')")
    assert "2 environments" in page.locator("#spec-environment dd").inner_text()
    assert page.watch.errors == [] and page.watch.external() == []
