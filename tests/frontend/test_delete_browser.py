"""The study page's Delete button in a real headless Chromium: hidden while a run is queued or running,
and once nothing runs, a confirmed click deletes the study and goes back to the study list."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.browser
READY = "() => document.getElementById('study').dataset.ready === 'true'"


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_delete_button_follows_the_runs_and_deletes_the_study(live_server, page, artifacts):
    from app.schemas.studies import StudyCreate
    from app.storage import runs, studies

    study = studies.create_study(StudyCreate(name="To delete", initializers=["he_normal"], seeds=[0, 1],
                                             dataset={"name": "mnist", "train_samples": 100},
                                             training={"epochs": 1}))[0]
    run_ids = [run.id for run in study.runs]
    runs.claim_run(run_ids[0], "host:1")
    page.goto(f"{live_server}/studies/{study.id}")
    page.wait_for_function(READY)
    assert not page.locator("#delete-study").is_visible()  # a run is running, another queued

    runs.request_cancel(run_ids)
    runs.finish_run(run_ids[0], "cancelled", owner="host:1")
    page.reload()
    page.wait_for_function(READY)
    button = page.get_by_role("button", name="Delete study")
    assert button.is_visible()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    button.click()
    page.wait_for_url(f"{live_server}/", timeout=10000)
    assert dialogs and "cannot be undone" in dialogs[0]
    assert _status(f"{live_server}/api/studies/{study.id}") == 404
    assert _status(f"{live_server}/api/runs/{run_ids[0]}") == 404
    with urllib.request.urlopen(f"{live_server}/api/studies", timeout=10) as response:
        assert study.id not in [listed["id"] for listed in json.loads(response.read())]
    assert page.watch.errors == []
