"""With the broker unreachable (a Redis URL where nothing listens), what is stored stays right:
a retried run is queued (a 200, sent later by a reconciler), and a signal probe that could not be
sent is failed at once, so asking again once the broker is back sends it (QA pass: a 503 told the
client to retry a retry that had happened; a probe stayed queued with no message for 5 minutes)."""

from __future__ import annotations

import pytest

from support import processes

STUDY = {"dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 100}, "training": {"epochs": 1},
         "initializers": ["he_normal"], "seeds": [0]}
PROBE = {"model": {"hidden_units": [8]}, "initializers": ["he_normal"], "probe_samples": 8}


@pytest.fixture
def broker_down(settings_env, migrated):
    from fastapi.testclient import TestClient

    from app.main import create_app

    migrated()
    settings_env(INITLAB_BROKER_URL=f"redis://127.0.0.1:{processes.free_port()}/0")
    with TestClient(create_app()) as client:
        yield client


def test_a_retry_is_queued_and_a_probe_fails_fast_while_the_broker_is_down(broker_down, settings_env):
    from app.schemas.diagnostics import SignalRequest
    from app.storage import probes, runs

    study = broker_down.post("/api/studies", json=STUDY)
    assert study.status_code == 201, study.text  # stored; sent once the broker is back
    run_id = study.json()["runs"][0]["id"]
    assert runs.claim_run(run_id) is not None
    runs.finish_run(run_id, "cancelled")
    retried = broker_down.post(f"/api/runs/{run_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued", retried.text

    refused = broker_down.post("/api/diagnostics/signal-propagation", json=PROBE)
    assert refused.status_code == 503 and "the probe was not sent" in refused.json()["detail"]
    assert refused.headers["retry-after"] == "5"
    (probe,) = [probes.get_probe(probe_id) for probe_id in range(1, 4) if probes.get_probe(probe_id)]
    assert probe["status"] == "failed" and probe["error"].startswith("not sent: broker unavailable")
    assert probe["key"] == SignalRequest.model_validate(PROBE).key()

    settings_env(INITLAB_BROKER_URL="")  # the broker is back (the embedded one: no worker answers here)
    settings_env(INITLAB_PROBE_WAIT_S="0.2")
    again = broker_down.post("/api/diagnostics/signal-propagation", json=PROBE)
    assert again.status_code == 202 and probes.get_probe(probe["id"])["status"] == "queued"  # sent afresh
