"""The study page's read queries on a real PostgreSQL (aggregates, CASE, JSON columns, NaN and Inf)."""

from __future__ import annotations

import pytest

from support.factories import write_study


@pytest.fixture
def pg_client(migrated, postgres_url):
    migrated(INITLAB_DATABASE_URL=postgres_url)
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from app.main import create_app
    from app.storage.db import get_engine

    with get_engine().begin() as connection:  # the session database is shared with other files
        connection.execute(text("TRUNCATE studies, runs, epoch_metrics, layer_stats RESTART IDENTITY CASCADE"))
    with TestClient(create_app()) as client:
        yield client


def test_dashboard_views_on_postgres(pg_client):
    study_id = write_study()
    summary = pg_client.get(f"/api/studies/{study_id}/summary").json()
    small = summary["groups"][1]
    assert small["table"]["diverged"] == 1
    diverged = next(r for r in summary["runs"] if r["diverged"])
    assert diverged["loss"][-1] == "NaN" and diverged["val_loss"][-1] == "Infinity"

    full = pg_client.get(f"/api/studies/{study_id}/histograms?epoch=3").json()
    robust = pg_client.get(f"/api/studies/{study_id}/histograms?epoch=3&range=robust").json()
    assert [layer["layer"] for layer in full["layers"]] == [layer["layer"] for layer in robust["layers"]] == [
        "dense_0", "output"]
    for wide, narrow in zip(full["layers"], robust["layers"]):
        assert wide["edges"][0] <= narrow["edges"][0] < narrow["edges"][-1] <= wide["edges"][-1]
    assert not full["approximate"]
    assert pg_client.get(f"/api/studies/{study_id}/histograms?epoch=1").json()["approximate"]

    gradients = pg_client.get(f"/api/studies/{study_id}/gradients").json()
    assert gradients["groups"][1]["layers"]["dense_0"]["mean"] == [0.0] * 4
    bands = pg_client.get("/api/runs/1/percentiles?layer=output").json()
    assert len(bands["values"]) == 4 and all(len(row) == 9 for row in bands["values"])
    with pg_client.stream("GET", f"/api/studies/{study_id}/events") as response:
        text = response.read().decode()
    assert "event: progress" in text and text.rstrip().splitlines()[-2] == "event: end"
