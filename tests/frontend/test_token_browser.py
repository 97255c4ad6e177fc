"""The dashboard on a server with an API token (INITLAB_API_TOKEN), in a real headless Chromium
against a real uvicorn: a write is refused until the dialog is answered with the right token
(a wrong one is said to be wrong), the token is kept in the browser and can be forgotten, and
when reads need the token too the study page loads its data and its live feed (read with
fetch(), which, unlike EventSource, sends the Authorization header) still delivers events.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support import processes
from app.storage import runs as run_store  # noqa: E402

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-dashboard-token"
READY = "() => document.getElementById('study').dataset.ready === 'true'"


def _request(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """serve(**env) -> base URL of `uvicorn app.main:app` on a fresh SQLite state dir with env added.

    This process's settings point at the same database, so a test can play the worker.
    """
    from app.settings import get_settings

    servers = []

    def start(**extra: str) -> str:
        state = tmp_path / f"state-{len(servers)}"
        state.mkdir()
        for key, value in {"INITLAB_STATE_DIR": str(state), "INITLAB_DATABASE_URL": "", "INITLAB_BROKER_URL": ""}.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        env = {**os.environ, **extra, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        migrate = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert migrate.returncode == 0, migrate.stderr[-2000:]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log = open(state / "uvicorn.log", "w")
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        servers.append((server, log))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (state / "uvicorn.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    return base
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < deadline, "uvicorn did not answer within 60 s"
                time.sleep(0.2)

    yield start
    for server, log in servers:
        processes.stop(server, timeout=10)  # the whole process group, SIGKILL after 10 s
        log.close()
    get_settings.cache_clear()


def _dialog(page):
    return page.get_by_role("dialog", name="API token needed")


def _answer(page, token: str) -> None:
    dialog = _dialog(page)
    dialog.wait_for()
    dialog.get_by_label("API token").fill(token)
    dialog.get_by_role("button", name="Use this token").click()


def _stored(page):
    return page.evaluate("() => localStorage.getItem('initlab.apiToken')")


def _errors(page) -> list[str]:
    # The browser logs each refused request itself ("... status of 401"): that is the point here.
    return [e for e in page.watch.errors if "401" not in e]


def test_create_is_refused_until_the_dialog_gets_the_right_token(serve, page, artifacts):
    base = serve(INITLAB_API_TOKEN=TOKEN)
    posts = []
    page.on("response", lambda r: posts.append((r.status, r.request.headers.get("authorization")))
            if r.request.method == "POST" else None)
    page.goto(f"{base}/")
    page.wait_for_function("() => document.getElementById('study-form').getAttribute('data-ready') === 'true'")
    assert not _dialog(page).is_visible(), "reads are public: nothing asked yet"
    assert page.locator("#forget-token").is_hidden()

    page.get_by_label("Name", exact=True).fill("Guarded study")
    page.get_by_label("He normal", exact=True).check()
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Seeds").fill("0")
    page.get_by_role("button", name="Create study").click()
    _dialog(page).wait_for()
    assert posts == [(401, None)]
    assert _dialog(page).get_by_label("API token").evaluate("el => el === document.activeElement")

    _answer(page, "not-the-token")
    page.wait_for_function("() => document.getElementById('token-error').textContent.includes('refused that token')")
    assert _dialog(page).is_visible() and page.get_by_role("alert").filter(has_text="refused that token").is_visible()
    assert _dialog(page).get_by_label("API token").get_attribute("aria-invalid") == "true"
    assert posts == [(401, None), (401, "Bearer not-the-token")]
    assert _request(f"{base}/api/studies")[1] == [], "nothing was created yet"
    page.screenshot(path=str(artifacts / "token_dialog_wrong.png"))

    _answer(page, TOKEN)
    page.wait_for_url(re.compile(r"/studies/\d+$"), timeout=15000)
    assert posts[-1] == (201, f"Bearer {TOKEN}") and len(posts) == 3
    study_id = int(page.url.rsplit("/", 1)[1])
    assert _request(f"{base}/api/studies/{study_id}")[1]["name"] == "Guarded study"
    assert _stored(page) == TOKEN

    # The token stays in the browser: the study page's cancel is sent with it, nothing asked.
    page.wait_for_function(READY, timeout=20000)
    run_id = _request(f"{base}/api/studies/{study_id}")[1]["runs"][0]["id"]
    page.get_by_role("button", name=re.compile(rf"^Cancel run {run_id}")).click()
    page.wait_for_function(f"() => document.querySelector(\"#runs-table tr[data-run-id='{run_id}']\")"
                           ".dataset.status === 'cancelled'", timeout=10000)
    assert not _dialog(page).is_visible() and posts[-1] == (200, f"Bearer {TOKEN}")

    # Forgotten, the token is asked for again at the next write; Cancel leaves the run alone.
    page.get_by_role("button", name="Forget API token").click()
    assert _stored(page) is None and page.locator("#forget-token").is_hidden()
    assert page.get_by_role("status").filter(has_text="API token forgotten").count() == 1
    page.get_by_role("button", name=re.compile(rf"^Retry run {run_id}")).click()
    _dialog(page).wait_for()
    _dialog(page).get_by_role("button", name="Cancel").click()
    _dialog(page).wait_for(state="hidden")
    assert posts[-1] == (401, None)
    assert _request(f"{base}/api/runs/{run_id}")[1]["status"] == "cancelled"
    assert _errors(page) == [] and page.watch.external() == []


def test_guarded_reads_load_the_study_page_and_its_live_feed(serve, page, artifacts):

    base = serve(INITLAB_API_TOKEN=TOKEN, INITLAB_READ_REQUIRES_TOKEN="true")
    assert _request(f"{base}/api/studies")[0] == 401
    status, study = _request(f"{base}/api/studies", {"name": "Read-guarded", "training": {"epochs": 2},
                                                     "dataset": {"name": "mnist", "train_samples": 100},
                                                     "initializers": ["he_normal", "glorot_uniform"], "seeds": [0]},
                             token=TOKEN)
    assert status == 201, study
    streams = []
    page.on("request", lambda r: streams.append((r.url, r.headers.get("authorization"))) if "/events" in r.url else None)

    page.goto(f"{base}/studies/{study['id']}")
    _answer(page, TOKEN)
    page.wait_for_function(READY, timeout=20000)
    assert page.locator("#runs-table tbody tr[data-status=queued]").count() == 2
    assert page.locator("#study").get_attribute("data-live") == "true"
    page.wait_for_function("() => document.getElementById('live-status').textContent.startsWith('Live')", timeout=10000)
    assert streams and all(url == f"{base}/api/studies/{study['id']}/events" and auth == f"Bearer {TOKEN}"
                           for url, auth in streams), streams

    # A worker takes a run: the live feed (not a reload) brings its progress.
    first = study["runs"][0]["id"]
    run_store.claim_run(first, worker_host="stand-in")
    run_store.heartbeat(first, batch=3, batches=10)
    page.wait_for_function(f"""() => {{ const tr = document.querySelector("#runs-table tr[data-run-id='{first}']");
        return tr && tr.dataset.status === 'running' && tr.innerText.includes('batch 3/10'); }}""", timeout=10000)
    page.screenshot(path=str(artifacts / "token_live_study.png"))

    # Kept in the browser: a reload asks nothing. A stale token is said to be refused.
    page.reload()
    page.wait_for_function(READY, timeout=20000)
    assert not _dialog(page).is_visible()
    page.evaluate("() => localStorage.setItem('initlab.apiToken', 'stale-token')")
    page.reload()
    _dialog(page).wait_for()
    assert "refused that token" in page.locator("#token-error").inner_text()
    _answer(page, TOKEN)
    page.wait_for_function(READY, timeout=20000)
    assert page.locator("#runs-table tbody tr[data-status=running]").count() == 1
    assert _stored(page) == TOKEN
    assert _errors(page) == [] and page.watch.external() == []
