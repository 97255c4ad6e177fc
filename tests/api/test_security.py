"""Bearer token on writes, optional on reads; Host, Origin and content type checked before the body; security
headers; Idempotency-Key (the same key with another study is a 422); no control character reaches the database."""

from __future__ import annotations

import json

import pytest

STUDY = {"name": "secure", "dataset": {"name": "mnist", "train_samples": 100}, "training": {"epochs": 1},
         "initializers": ["he_normal"], "seeds": [0]}


@pytest.fixture
def guarded(migrated, monkeypatch):
    from fastapi.testclient import TestClient

    from app.main import create_app

    migrated(INITLAB_API_TOKEN="s3cret-token")
    with TestClient(create_app()) as client:
        yield client


def test_writes_need_the_token_and_are_refused_before_validation(guarded):
    assert guarded.post("/api/studies", json=STUDY).status_code == 401
    # A body that would be a 422 is still a 401: the token is checked first.
    response = guarded.post("/api/studies", content=b"{broken", headers={"content-type": "application/json"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert guarded.post("/api/studies", json=STUDY, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.post("/api/studies", json=STUDY, headers={"Authorization": "Basic s3cret-token"}).status_code == 401
    ok = guarded.post("/api/studies", json=STUDY, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 201
    run_id = ok.json()["runs"][0]["id"]
    assert guarded.post(f"/api/runs/{run_id}/cancel").status_code == 401
    assert guarded.get("/api/studies").status_code == 200  # reads stay public by default
    assert guarded.get(f"/api/runs/{run_id}").json()["status"] == "queued"


def test_reads_can_require_the_token(migrated, monkeypatch):
    from fastapi.testclient import TestClient

    from app.main import create_app

    migrated(INITLAB_API_TOKEN="s3cret-token", INITLAB_READ_REQUIRES_TOKEN="true")
    with TestClient(create_app()) as client:
        assert client.get("/api/studies").status_code == 401
        assert client.get("/api/studies", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert client.get("/healthz").status_code == 200  # health stays open for probes


def test_idempotency_key_returns_the_first_study(sqlite_app):
    first = sqlite_app.post("/api/studies", json=STUDY, headers={"Idempotency-Key": "abc-1"})
    again = sqlite_app.post("/api/studies", json=STUDY, headers={"Idempotency-Key": "abc-1"})
    other = sqlite_app.post("/api/studies", json=STUDY, headers={"Idempotency-Key": "abc-2"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert len(sqlite_app.get("/api/studies").json()) == 2


def test_cors_is_closed_by_default(sqlite_app):
    response = sqlite_app.options("/api/studies", headers={"Origin": "http://evil.example",
                                                           "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(("patch", "field", "rule"), [
    ({"dataset": {"name": "mnist", "train_samples": 50000}}, "dataset.train_samples", "INITLAB_MAX_TRAIN_SAMPLES"),
    ({"dataset": {"name": "mnist", "train_samples": 70000}}, "dataset.train_samples", "MNIST has 60000 training images"),
    ({"model": {"hidden_units": [4096, 4096, 4096]}}, "model.hidden_units", "INITLAB_MAX_PARAMETERS"),
    ({"model": {"hidden_units": [8] * 101}}, "model.hidden_units", "INITLAB_MAX_HIDDEN_LAYERS"),
])
def test_limits_name_themselves(sqlite_app, settings_env, patch, field, rule):
    settings_env(INITLAB_MAX_TRAIN_SAMPLES="40000")
    response = sqlite_app.post("/api/studies", json={**STUDY, **patch})
    assert response.status_code == 422
    assert any(item["field"] == field and rule in item["msg"] for item in response.json()["detail"])


# ---- cross-site requests (issue 11, item 4) -------------------------------------------------------

@pytest.fixture
def loopback(migrated, monkeypatch):
    """The app with its default Host check (the loopback names), reached as http://127.0.0.1:8000."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    monkeypatch.delenv("INITLAB_ALLOWED_HOSTS", raising=False)
    migrated()
    with TestClient(create_app(), base_url="http://127.0.0.1:8000") as client:
        yield client


def _queued_run(client) -> tuple[int, int]:
    created = client.post("/api/studies", json=STUDY)  # curl-like: no Origin, no Sec-Fetch-Site
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["runs"][0]["id"]


def test_a_page_on_another_local_port_cannot_cancel_runs(loopback):
    study_id, run_id = _queued_run(loopback)
    attacks = {
        # <form method=post action=http://127.0.0.1:8000/api/runs/1/cancel> on http://localhost:3000
        "html form": {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site",
                      "Content-Type": "application/x-www-form-urlencoded"},
        # fetch(url, {method: "POST", mode: "no-cors", body: "x"}) on http://127.0.0.1:5173
        "no-cors fetch": {"Origin": "http://127.0.0.1:5173", "Sec-Fetch-Site": "same-site",
                          "Content-Type": "text/plain;charset=UTF-8"},
        "no-cors fetch without a body": {"Origin": "http://127.0.0.1:5173", "Sec-Fetch-Site": "same-site"},
        "a sandboxed page": {"Origin": "null", "Content-Type": "application/json"},
        "another site, JSON": {"Origin": "https://evil.example", "Content-Type": "application/json"},
        "Sec-Fetch-Site alone": {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
    }
    for what, headers in attacks.items():
        for path in (f"/api/runs/{run_id}/cancel", f"/api/studies/{study_id}/cancel"):
            response = loopback.post(path, headers=headers, content=b"x=1" if "Content-Type" in headers else b"")
            assert response.status_code == 403, (what, path, response.status_code)
            assert "cross-origin" in response.json()["detail"]
        assert loopback.get(f"/api/runs/{run_id}").json()["status"] == "queued", what
    assert loopback.post("/api/studies", json=STUDY, headers={"Origin": "http://localhost:3000"}).status_code == 403

    # The dashboard itself: same origin, as a browser sends it.
    own = {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    assert loopback.post(f"/api/runs/{run_id}/cancel", headers=own).status_code == 200
    assert loopback.get(f"/api/runs/{run_id}").json()["status"] == "cancelled"


def test_dns_rebinding_cannot_read_or_write(loopback, settings_env):
    from fastapi.testclient import TestClient

    from app.main import create_app

    study_id, run_id = _queued_run(loopback)
    rebound = {"Host": "evil.example:8000"}  # evil.example now resolves to 127.0.0.1: same origin to the browser
    for method, path in (("GET", "/api/studies"), ("GET", f"/api/studies/{study_id}"), ("GET", "/"),
                         ("POST", f"/api/runs/{run_id}/cancel"), ("OPTIONS", "/api/studies")):
        response = loopback.request(method, path, headers={**rebound, "Content-Type": "application/json"})
        assert response.status_code == 400, (method, path, response.status_code)
        assert "INITLAB_ALLOWED_HOSTS" in response.json()["detail"]
    assert loopback.get(f"/api/runs/{run_id}").json()["status"] == "queued"
    assert loopback.get("/healthz", headers=rebound).status_code == 200  # liveness probes reach it by any name
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST:8000"):
        assert loopback.get("/api/studies", headers={"Host": host}).status_code == 200, host

    settings_env(INITLAB_HOST="lab.internal")  # a server listening on a real name answers to it too
    with TestClient(create_app(), base_url="http://lab.internal:8000") as client:
        assert client.get("/api/studies").status_code == 200
        assert client.get("/api/studies", headers={"Host": "evil.example"}).status_code == 400
    settings_env(INITLAB_HOST="0.0.0.0", INITLAB_ALLOWED_HOSTS="lab.example, lab2.example")
    with TestClient(create_app(), base_url="http://lab.example") as client:
        assert client.get("/api/studies").status_code == 200
        assert client.get("/api/studies", headers={"Host": "LAB2.example:8000"}).status_code == 200
        assert client.get("/api/studies", headers={"Host": "localhost:8000"}).status_code == 400
        # An address is never rebound by DNS: the LAN address a server on 0.0.0.0 is reached by answers.
        for address in ("10.0.0.5:8000", "0.0.0.0:8000", "[fe80::1]:8000", "127.0.0.1"):
            assert client.get("/api/studies", headers={"Host": address}).status_code == 200, address
        assert client.get("/api/studies", headers={"Host": "10.0.0.5.evil.example"}).status_code == 400


def test_writes_are_accepted_as_json_only(loopback):
    body = json.dumps(STUDY)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = loopback.post("/api/studies", content=body.encode(), headers=headers)
        assert response.status_code == 415, (content_type, response.status_code)
        assert "application/json" in response.json()["detail"]
    assert loopback.get("/api/studies").headers["x-total-count"] == "0"
    ok = loopback.post("/api/studies", content=body.encode(), headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 201
    run_id = ok.json()["runs"][0]["id"]
    # Cancel and retry take no body: without one they need no content type (curl -X POST, the OpenAPI schema).
    assert loopback.post(f"/api/runs/{run_id}/cancel").status_code == 200
    assert loopback.post(f"/api/runs/{run_id}/retry", headers={"Content-Type": "text/plain"}).status_code == 415
    assert loopback.post(f"/api/runs/{run_id}/retry", headers={"Content-Type": "application/json"}).status_code == 200


def test_an_origin_listed_in_cors_origins_may_write(migrated, monkeypatch):
    from fastapi.testclient import TestClient

    from app.main import create_app

    migrated(INITLAB_CORS_ORIGINS='["http://app.example"]')
    with TestClient(create_app()) as client:
        listed = {"Origin": "http://app.example", "Sec-Fetch-Site": "cross-site"}
        preflight = client.options("/api/studies", headers={**listed, "Access-Control-Request-Method": "POST",
                                                            "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "http://app.example"
        created = client.post("/api/studies", json=STUDY, headers=listed)
        assert created.status_code == 201 and created.headers["access-control-allow-origin"] == "http://app.example"
        assert client.post("/api/studies", json=STUDY, headers={"Origin": "http://other.example"}).status_code == 403


def test_every_answer_carries_the_security_headers(sqlite_app):
    study_id = sqlite_app.post("/api/studies", json=STUDY).json()["id"]
    for path in ("/", f"/studies/{study_id}", "/compare?ids=1,2", "/diagnostics/signal-propagation", "/studies/999",
                 "/api/studies", "/api/nothing", "/static/style.css"):
        response = sqlite_app.get(path)
        policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
        assert policy["script-src"] == "'self'", path  # no inline script, no eval
        assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["x-content-type-options"] == "nosniff", path
    refused = sqlite_app.post("/api/studies", content=b"x", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415 and refused.headers["x-frame-options"] == "DENY"


# ---- Idempotency-Key with another body (issue 11, item 9) -----------------------------------------

def test_the_same_idempotency_key_with_another_study_is_a_422(sqlite_app):
    from sqlalchemy import text

    from app.storage.db import get_engine

    first = sqlite_app.post("/api/studies", json=STUDY, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    # The same study written another way (an id as an object, a default spelled out, 1.0 for 1) is the same request.
    same = {**STUDY, "initializers": [{"id": "he_normal"}], "bias_initializer": "zeros", "training": {"epochs": 1.0}}
    again = sqlite_app.post("/api/studies", json=same, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = sqlite_app.post("/api/studies", json={**STUDY, "seeds": [0, 1]}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422, other.text
    (error,) = other.json()["detail"]
    assert error["field"] == "Idempotency-Key" and error["type"] == "idempotency_key_reused"
    assert f"study {first.json()['id']}" in error["msg"]
    assert sqlite_app.get("/api/studies").headers["x-total-count"] == "1"

    # A study stored before the hash existed (migration 0007) is compared by its stored spec.
    with get_engine().begin() as connection:
        connection.execute(text("UPDATE studies SET request_hash = NULL"))
    assert sqlite_app.post("/api/studies", json=same, headers={"Idempotency-Key": "k-1"}).status_code == 200
    assert sqlite_app.post("/api/studies", json={**STUDY, "name": "other"},
                           headers={"Idempotency-Key": "k-1"}).status_code == 422


def test_over_long_text_is_counted_in_characters(sqlite_app):
    """Each free-text field's 422 counts characters (pydantic said "items" for a rule placed after its check)."""
    too_long = [
        ("POST", "/api/studies", {"json": STUDY, "headers": {"Idempotency-Key": "k" * 201}}, "Idempotency-Key", 200),
        ("POST", "/api/studies", {"json": {**STUDY, "name": "n" * 201}}, "name", 200),
        ("GET", "/api/studies?name=" + "n" * 201, {}, "name", 200),
        ("GET", "/api/runs/1/percentiles?layer=" + "l" * 65, {}, "layer", 64),
    ]
    for method, path, options, field, limit in too_long:
        (error,) = sqlite_app.request(method, path, **options).json()["detail"]
        assert error["field"] == field and error["msg"] == f"String should have at most {limit} characters", error


def test_a_name_of_spaces_alone_is_refused(sqlite_app):
    """It was accepted: an empty-looking link in the list (0×0 px, unclickable) and a page titled "· initlab"."""
    for blank in (" ", "   ", "\u00a0\u2003"):
        (error,) = sqlite_app.post("/api/studies", json={**STUDY, "name": blank}).json()["detail"]
        assert error["field"] == "name" and "visible character" in error["msg"], error
    assert sqlite_app.post("/api/studies", json={**STUDY, "name": " spaced out "}).status_code == 201


# ---- control characters (issue 11, item 5) ---------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def any_backend(request, migrated):
    """The API in-process on SQLite, then on PostgreSQL (where a NUL in a bound string is an error)."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    if request.param == "postgresql":
        migrated(INITLAB_DATABASE_URL=request.getfixturevalue("postgres_url"))
    else:
        migrated()
    with TestClient(create_app()) as client:
        yield client


def test_control_characters_are_a_422_and_never_reach_the_database(any_backend):
    client = any_backend
    refused = [
        ("POST", "/api/studies", {"json": {**STUDY, "name": "a\u0000b"}}, "name"),
        ("POST", "/api/studies", {"json": {**STUDY, "name": "line\nbreak"}}, "name"),
        ("POST", "/api/studies", {"json": {**STUDY, "initializers": [{"id": "custom", "params": {"mode\u0000": 1}}]}},
         "initializers.0.params.mode\u0000"),
        ("POST", "/api/studies", {"json": {**STUDY, "initializers": ["he_normal\u0000"]}}, "initializers.0"),
        ("GET", "/api/studies?name=%00", {}, "name"),
        ("GET", "/api/studies?name=a%1Fb", {}, "name"),
        ("GET", "/api/studies/1/summary?baseline=he_normal(%00)", {}, "baseline"),
        ("GET", "/api/runs/1/histograms?layer=dense_0%00", {}, "layer"),
        ("GET", "/api/runs/1/percentiles?layer=%00", {}, "layer"),
        ("POST", "/api/diagnostics/signal-propagation", {"json": {"initializers": ["he_normal\u0000"]}}, "initializers.0"),
        ("POST", "/api/studies", {"json": STUDY, "headers": {"Idempotency-Key": "key\x7f"}}, "Idempotency-Key"),
    ]
    for method, path, options, field in refused:
        response = client.request(method, path, **options)
        assert response.status_code == 422, (path, options, response.status_code, response.text[:200])
        assert field in [error["field"] for error in response.json()["detail"]], (path, response.json())
        assert client.get("/api/studies").status_code == 200  # the next request is answered as usual
    created = client.post("/api/studies", json={**STUDY, "name": "Ünïcode ✓ names, tabs\u00a0aside"})
    assert created.status_code == 201 and created.json()["name"] == "Ünïcode ✓ names, tabs\u00a0aside"
    listed = client.get("/api/studies", params={"name": "NïCODE"})  # ASCII letters fold on both backends
    assert [study["id"] for study in listed.json()] == [created.json()["id"]]


def test_a_body_over_the_limit_is_a_413_before_it_is_parsed(loopback):
    from app.settings import get_settings

    limit = get_settings().max_body_bytes
    huge = json.dumps({**STUDY, "seeds": list(range(limit // 4))}).encode()
    assert len(huge) > limit
    declared = loopback.post("/api/studies", content=huge, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and "INITLAB_MAX_BODY_BYTES" in declared.json()["detail"]

    def chunks(body: bytes):  # no Content-Length: sent chunked
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    chunked = loopback.post("/api/studies", content=chunks(huge), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert loopback.get("/api/studies").headers["x-total-count"] == "0"
    # A chunked body within the limit reaches the app whole.
    small = loopback.post("/api/studies", content=chunks(json.dumps(STUDY).encode()),
                          headers={"Content-Type": "application/json"})
    assert small.status_code == 201, small.text
