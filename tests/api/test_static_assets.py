"""Page speed (issue 14): hashed static URLs, long caching, the partial plotly.js bundle and gzip.

In-process, on one migrated SQLite database for the module (one study, never trained). The live
feed is driven at the ASGI level, so the test sees each message as the server sends it: a gzip
layer that buffered the stream would hold back its first event.
"""

from __future__ import annotations

import asyncio
import gzip
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from support import processes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
HASHED = re.compile(r"^/static/[\w/.-]+\?v=[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client, study id): the app on a fresh SQLite database with one queued study."""
    from app.main import create_app
    from app.schemas.studies import StudyCreate
    from app.settings import get_settings
    from app.storage import studies

    with pytest.MonkeyPatch.context() as patch:
        env = {"INITLAB_STATE_DIR": str(tmp_path_factory.mktemp("state")), "INITLAB_BROKER_URL": ""}
        for key, value in env.items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        processes.run_cli(["migrate"], env)
        study = studies.create_study(StudyCreate(name="assets", initializers=["he_normal"], seeds=[0]))[0]
        app = create_app()
        yield TestClient(app), app, study.id
    get_settings.cache_clear()


def _page_urls(html: str) -> list[str]:
    return re.findall(r'<(?:script|link)\b[^>]*?(?:src|href)="([^"]+)"', html)


def test_study_page_references_only_hashed_local_assets_and_the_partial_bundle(served):
    client, _, study_id = served
    html = client.get(f"/studies/{study_id}").text
    urls = [url for url in _page_urls(html) if not url.startswith("data:")]
    assert urls and all(HASHED.match(url) for url in urls), urls
    assert any(url.startswith("/static/vendor/plotly-initlab.min.js?v=") for url in urls)
    assert "plotly.min.js" not in html and "://" not in "".join(urls)
    # Classic scripts are deferred (no parser-blocking script); the controller is a module (deferred too).
    scripts = re.findall(r"<script\b(?![^>]*application/json)[^>]*>", html)
    assert scripts and all(" defer" in tag or 'type="module"' in tag for tag in scripts), scripts
    plotly = client.get(next(url for url in urls if "plotly" in url), headers={"Accept-Encoding": "identity"})
    assert b"plotly.js v4.1.1 (core + heatmap" in plotly.content[:200] and len(plotly.content) < 1_300_000
    # The modules import each other by versioned URL too, so the whole graph is cached alike.
    study_js = client.get(next(url for url in urls if "study.js" in url)).text
    imports = re.findall(r'from "(\./[^"]+)"', study_js)
    assert imports and all(re.fullmatch(r"\./[\w/-]+\.js\?v=[0-9a-f]{12}", spec) for spec in imports), imports


def test_hashed_urls_are_immutable_and_plain_ones_revalidate(served):
    client, _, study_id = served
    hashed = next(url for url in _page_urls(client.get(f"/studies/{study_id}").text) if "charts" in url or "study.js" in url)
    answer = client.get(hashed)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert answer.headers["content-type"].startswith("text/javascript")
    plain = client.get(hashed.split("?")[0])
    assert plain.status_code == 200 and plain.content == answer.content
    assert "max-age=31536000" not in plain.headers["cache-control"] and "no-cache" in plain.headers["cache-control"]
    stale = client.get(hashed.split("?")[0] + "?v=000000000000")  # an older page's URL: served, not cached for long
    assert stale.status_code == 200 and "immutable" not in stale.headers["cache-control"]
    again = client.get(hashed.split("?")[0], headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304 and again.headers["content-security-policy"]
    assert client.get("/static/no-such-file.js").status_code == 404
    assert client.get("/static/../app/settings.py").status_code == 404


@pytest.mark.parametrize("path", ["/openapi.json", "/compare", "/static/vendor/plotly-initlab.min.js",
                                  "/static/study.js"])
def test_large_answers_are_gzipped_when_the_client_accepts_it(served, path):
    client = served[0]
    zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200 and zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"] and zipped.headers["x-content-type-options"] == "nosniff"
    assert int(zipped.headers["content-length"]) < len(zipped.content)  # httpx decoded the smaller body
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == zipped.content
    small = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under 1 KB: not worth it


def test_the_live_feed_streams_uncompressed_with_the_guard_headers(served):
    """The first event arrives on its own while the stream stays open, even when the client accepts gzip."""
    _, app, study_id = served
    sent: list[dict] = []

    async def drive() -> None:
        first_body = asyncio.Event()

        async def receive() -> dict:
            if not hasattr(receive, "asked"):
                receive.asked = True  # type: ignore[attr-defined]
                return {"type": "http.request", "body": b"", "more_body": False}
            await first_body.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                first_body.set()

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": f"/api/studies/{study_id}/events", "raw_path": b"",
                 "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1), "server": ("localhost", 80),
                 "headers": [(b"host", b"localhost"), (b"accept", b"text/event-stream"),
                             (b"accept-encoding", b"gzip, deflate")]}
        await asyncio.wait_for(app(scope, receive, send), timeout=10)

    # In a thread of its own: after the browser tests, Playwright's loop is running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, drive()).result()
    start = sent[0]
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert headers["content-type"].startswith("text/event-stream") and "content-encoding" not in headers
    assert "content-security-policy" in headers and headers["x-frame-options"] == "DENY"
    first = next(message for message in sent[1:] if message.get("body"))
    assert first["body"].startswith(b"retry: ") and first.get("more_body") is True  # plain text, the stream still open
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(first["body"])


def test_the_pages_tensor_kinds_are_the_recorders(served):
    """frontend/static/tensor_kinds.js words every kind app/domain/layers.py records, in its order, and no other."""
    from app.domain.layers import NORMALIZATION_KINDS, TENSOR_KINDS

    script = served[0].get("/static/tensor_kinds.js").text
    table = script[script.index("export const TENSOR_KINDS"):script.index("};")]
    entries = re.split(r"^\s+(\w+): \{", table, flags=re.MULTILINE)[1:]
    words = dict(zip(entries[::2], entries[1::2]))
    assert list(words) == list(TENSOR_KINDS)
    assert [kind for kind, text in words.items() if "norms:" in text] == list(NORMALIZATION_KINDS)
