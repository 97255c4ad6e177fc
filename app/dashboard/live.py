"""What the study page's live feed says: every run's progress, and what changed since the last event.

The payload of app/api/routes/events.py (server-sent events): per run its status, epoch,
batch, fraction done and ETA, a data version that changes whenever metrics or layer
statistics were written, so the page refetches its charts only then, and the environments
the runs trained in (the header's "Trained with" line). A stream's first event is the whole
``snapshot``; later ones are its ``delta``: only the runs that changed, and the running ones.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from app.analysis.progress import eta_seconds, fraction_done
from app.dashboard.environment import environments
from app.domain.lifecycle import TERMINAL_STATUSES, study_status
from app.storage import studies, views

CLOCKS = ("eta_s", "elapsed_s")  # tick every second while a run trains; not a change worth an event
STUDY_FIELDS = ("study_id", "status", "run_counts", "data_version", "server_time")


def iso(value) -> str | None:
    """ISO 8601 with its zone: SQLite hands back naive datetimes, and every stored time is UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def version_digest(version: list) -> str:
    """16 hex characters that change with the list: the page compares it, never reads it."""
    return hashlib.blake2b(json.dumps(version, separators=(",", ":")).encode(), digest_size=8).hexdigest()


def snapshot(study_id: int) -> dict[str, Any]:
    """What the page shows of the study's progress right now (see the module docstring)."""
    runs = views.study_runs(study_id)
    active = [run["id"] for run in runs if run["status"] not in TERMINAL_STATUSES]
    marks = views.data_marks(active)
    now = datetime.now(timezone.utc)
    out = []
    for run in runs:
        started = run["started_at"]
        if started is not None and started.tzinfo is None:  # SQLite gives naive UTC
            started = started.replace(tzinfo=timezone.utc)
        fraction = fraction_done(run["status"], run["epoch"], run["epochs"], run["batch"], run["batches"])
        running = run["status"] == "running"
        out.append({
            "id": run["id"], "status": run["status"], "epoch": run["epoch"], "epochs": run["epochs"],
            "batch": run["batch"], "batches": run["batches"], "fraction": round(fraction, 4),
            "eta_s": eta_seconds(started, now, fraction) if running else None,
            "elapsed_s": (now - started).total_seconds() if running and started else None,
            "started_at": iso(run["started_at"]), "finished_at": iso(run["finished_at"]),
            "cancel_requested": bool(run["cancel_requested"]), "attempts": run["attempts"], "error": run["error"],
            "layer_epoch": marks.get(run["id"], (0, 0, None, 0))[2],
        })
    counts = dict(Counter(run["status"] for run in runs))
    version = [(run["id"], run["status"], run["attempts"], run["epoch"], marks.get(run["id"])) for run in runs]
    return {"study_id": study_id, "status": study_status(counts), "run_counts": counts,
            "data_version": version_digest(version), "runs": out}


def study_environments(study_id: int) -> list[list]:
    """[[description, runs], ...] as the header lists them (app/dashboard/environment.py); [] for no study.

    Read again only when the data version moves: a run's environment is written as it starts
    training, before anything it records."""
    study = studies.get_study(study_id)
    return [[text, count] for text, count in environments(study.runs)] if study else []


def _steady(run: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in run.items() if key not in CLOCKS}


def changed(previous: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    """Progress worth sending: anything but the ticking clocks (elapsed, ETA)."""
    if previous is None:
        return True
    return (previous["data_version"] != current["data_version"]
            or previous.get("environments") != current.get("environments")
            or [_steady(run) for run in previous["runs"]] != [_steady(run) for run in current["runs"]])


def delta(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A later event of a stream: the study's fields, the runs that changed since ``previous`` (the
    last one sent) and the running ones (their ETA ticks), and the environments if they changed."""
    before = {run["id"]: _steady(run) for run in previous["runs"]}
    out: dict[str, Any] = {key: current[key] for key in STUDY_FIELDS if key in current}
    out["partial"] = True
    if current.get("environments") != previous.get("environments"):
        out["environments"] = current.get("environments")
    out["runs"] = [run for run in current["runs"] if run["status"] == "running" or before.get(run["id"]) != _steady(run)]
    return out
