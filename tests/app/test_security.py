"""Bearer token on writes, optional on reads; Idempotency-Key; CORS closed by default."""

from __future__ import annotations

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
    ({"dataset": {"name": "mnist", "train_samples": 70000}}, "dataset.train_samples", "INITLAB_MAX_TRAIN_SAMPLES"),
    ({"model": {"hidden_units": [4096, 4096, 4096]}}, "body", "INITLAB_MAX_PARAMETERS"),
    ({"model": {"hidden_units": [8] * 51}}, "model.hidden_units", "INITLAB_MAX_HIDDEN_LAYERS"),
])
def test_limits_name_themselves(sqlite_app, patch, field, rule):
    response = sqlite_app.post("/api/studies", json={**STUDY, **patch})
    assert response.status_code == 422
    assert any(item["field"] == field and rule in item["msg"] for item in response.json()["detail"])
