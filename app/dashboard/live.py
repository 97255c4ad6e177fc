"""What the study page's live feed says: every run's progress, and whether anything changed.

The payload of app/api/routes/events.py (server-sent events): per run its status, epoch,
batch, fraction done and ETA, and a data version that changes whenever metrics or layer
statistics were written, so the page refetches its charts only then.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from app.analysis.progress import eta_seconds, fraction_done
from app.domain.lifecycle import TERMINAL_STATUSES, study_status
from app.storage import views


def iso(value) -> str | None:
    """ISO 8601 with its zone: SQLite hands back naive datetimes, and every stored time is UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


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
            "data_version": json.dumps(version, separators=(",", ":")), "runs": out}


def changed(previous: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    """Progress worth sending: anything but the ticking clocks (elapsed, ETA)."""
    if previous is None:
        return True
    strip = lambda snap: [{k: v for k, v in run.items() if k not in ("eta_s", "elapsed_s")} for run in snap["runs"]]  # noqa: E731
    return previous["data_version"] != current["data_version"] or strip(previous) != strip(current)


