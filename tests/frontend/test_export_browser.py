"""The study page's Export section in a real headless Chromium against a real uvicorn server.

Each button downloads its file through the browser; the files are read back (csv, json, zip).
On a server whose reads need the API token, the download carries the Authorization header the
page keeps in localStorage (a plain link could not), and still arrives under the server's name.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import processes

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "export-token"
READY = "() => document.getElementById('study').dataset.ready === 'true'"


def _download(page, selector: str, folder: Path) -> tuple[str, Path]:
    with page.expect_download(timeout=20000) as info:
        page.click(selector)
    download = info.value
    target = folder / download.suggested_filename
    download.save_as(target)
    return download.suggested_filename, target


def test_buttons_download_every_format(live_server, finished_study, page, tmp_path):
    study_id = finished_study["id"]
    page.goto(f"{live_server}/studies/{study_id}")
    page.wait_for_function(READY, timeout=20000)
    section = page.locator("#export-section")
    assert section.is_visible() and section.get_by_role("heading", name="Export").is_visible()
    links = {fmt: page.locator(f"#export-{fmt}") for fmt in ("csv", "json", "tensorboard")}
    assert [link.inner_text() for link in links.values()] == ["CSV", "JSON", "TensorBoard (zip)"]
    base = f"initlab-study-{study_id}-he-vs-glorot-fixture"

    name, path = _download(page, "#export-csv", tmp_path)
    assert name == f"{base}.csv"
    rows = list(csv.DictReader(path.open()))
    diverged = next(run for run in finished_study["runs"] if run["initializer"] == "glorot_uniform" and run["seed"] == 0)
    last = {r["statistic"]: r["value"] for r in rows if r["run_id"] == str(diverged["id"]) and r["table"] == "metrics"
            and r["epoch"] == "3"}
    assert last["loss"] == "NaN" and last["val_loss"] == "Infinity"
    assert {r["table"] for r in rows} == {"metrics", "layer_stats", "histogram"}

    name, path = _download(page, "#export-json", tmp_path)
    document = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert name == f"{base}.json" and len(document["runs"]) == 4

    name, path = _download(page, "#export-tensorboard", tmp_path)
    with zipfile.ZipFile(path) as archive:
        runs = {Path(entry).parent.name for entry in archive.namelist() if "tfevents" in entry}
    assert name == f"{base}.zip" and len(runs) == 4

    page.get_by_label("Include histograms").uncheck()
    assert links["csv"].get_attribute("href").endswith("format=csv&histograms=false")
    _name, path = _download(page, "#export-csv", tmp_path)
    assert {r["table"] for r in csv.DictReader(path.open())} == {"metrics", "layer_stats"}
    assert page.watch.errors == [] and page.watch.external() == []


@pytest.fixture
def guarded_server(live_server, tmp_path):
    """A second uvicorn on the live server's database whose reads need the token."""
    port = processes.free_port()
    env = {**os.environ, "INITLAB_API_TOKEN": TOKEN, "INITLAB_READ_REQUIRES_TOKEN": "true", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "guarded.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until_up(base)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_download_sends_the_token_when_reads_need_it(guarded_server, finished_study, page, tmp_path):
    study_id = finished_study["id"]
    sent = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization")) if "/export" in r.url else None)
    page.goto(f"{guarded_server}/studies/{study_id}")
    dialog = page.get_by_role("dialog", name="API token needed")
    dialog.wait_for()
    dialog.get_by_label("API token").fill(TOKEN)
    dialog.get_by_role("button", name="Use this token").click()
    page.wait_for_function(READY, timeout=20000)

    name, path = _download(page, "#export-json", tmp_path)
    assert sent == [f"Bearer {TOKEN}"]
    assert name == f"initlab-study-{study_id}-he-vs-glorot-fixture.json"
    assert json.loads(path.read_text())["study"]["id"] == study_id
    page.wait_for_function("() => document.getElementById('export-status').textContent.startsWith('Saved')")
