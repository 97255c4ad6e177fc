"""The live feed's bytes on a many-run study: the first event of a stream is the whole study,
later ones carry only the runs that changed and the running ones (app/api/routes/events.py).
"""

from __future__ import annotations

import json
import re
import threading

from app.storage import runs as run_store

RUN_FIELDS = {"id", "status", "epoch", "epochs", "batch", "batches", "fraction", "eta_s", "elapsed_s", "started_at",
              "finished_at", "cancel_requested", "attempts", "error", "layer_epoch"}
ENVIRONMENT = {"backend": "tensorflow", "keras": "3.0.0", "tensorflow": "2.0.0", "onednn": False, "threads": 1}


def _many_runs() -> tuple[int, list[int]]:
    """4 initializers x 50 seeds = 200 runs, all queued."""
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    study = studies.create_study(StudyCreate(
        name="many", initializers=["he_normal", "glorot_uniform", "he_uniform", "glorot_normal"],
        seeds=list(range(50)), training={"epochs": 3}))[0]
    return study.id, [run.id for run in study.runs]


def _read(response, first_seen: threading.Event) -> tuple[list[tuple[str, dict, int]], int]:
    """[(event name, payload, bytes of its data line)] and every byte the stream sent."""
    found, name, total = [], None, 0
    for line in response.iter_lines():
        total += len(line.encode()) + 1
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            found.append((name, json.loads(line[6:]), len(line.encode())))
            first_seen.set()
    return found, total


def test_later_events_carry_only_what_changed(sqlite_app, monkeypatch):
    from app.api.routes import events as feed

    monkeypatch.setattr(feed, "STREAM_SECONDS", 5.0)
    study_id, ids = _many_runs()
    running, finishing = ids[0], ids[150]
    run_store.claim_run(running, worker_host="stand-in")
    run_store.heartbeat(running, batch=1, batches=100)
    first_seen = threading.Event()

    def worker():
        assert first_seen.wait(10)
        run_store.heartbeat(running, batch=2, batches=100)
        run_store.claim_run(finishing, worker_host="stand-in")
        run_store.set_device(finishing, "CPU:0", ENVIRONMENT)
        run_store.finish_run(finishing, "succeeded")

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        with sqlite_app.stream("GET", f"/api/studies/{study_id}/events") as response:
            events, total = _read(response, first_seen)
    finally:
        thread.join()

    progress = [(payload, size) for name, payload, size in events if name == "progress"]
    (full, full_size), later = progress[0], progress[1:]
    # Each later event is the running run alone, or it and the one that finished: well under 1 kB,
    # where every event used to be the whole study (over 20 kB for 200 runs).
    assert full_size > 20_000
    assert later and all(size < 1_000 for _, size in later)
    assert all({run["id"] for run in payload["runs"]} <= {running, finishing} for payload, _ in later)
    assert total < full_size + 1_500 * len(later)
    assert full["partial"] is False and len(full["runs"]) == 200
    assert all(set(run) == RUN_FIELDS for run in full["runs"])
    assert re.fullmatch(r"[0-9a-f]{16}", full["data_version"]) and full["environments"] == []
    assert full["run_counts"] == {"queued": 199, "running": 1}

    change = next(payload for payload, _ in later if payload["run_counts"].get("succeeded"))
    assert change["partial"] is True
    assert {run["id"] for run in change["runs"]} == {running, finishing}
    assert next(run for run in change["runs"] if run["id"] == finishing)["status"] == "succeeded"
    assert change["run_counts"] == {"queued": 198, "running": 1, "succeeded": 1}
    assert change["data_version"] != full["data_version"] and re.fullmatch(r"[0-9a-f]{16}", change["data_version"])
    # Sent when it changes, which the poll may have seen between set_device and finish_run.
    environments = [payload["environments"] for payload, _ in later if "environments" in payload]
    assert environments[-1] == [["Keras 3.0.0 on TensorFlow 2.0.0 (oneDNN off, 1 thread)", 1]]
    assert {"study_id", "status", "server_time"} <= set(change)
