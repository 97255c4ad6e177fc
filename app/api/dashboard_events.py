"""The study page's live feed: server-sent events from SQL, one poll a second.

GET /api/studies/{id}/events answers ``text/event-stream``. Each message is an event
named ``progress`` whose data is the JSON below; one is sent at once, then one whenever
something a viewer could see changed (a run's status, epoch, batch, a new metric or layer
row). The stream ends with an ``end`` event once every run is finished, cancelled or
failed. A stream also closes by itself after ``STREAM_SECONDS`` (the browser's EventSource
reconnects on its own, after the ``retry`` delay) so that an open tab never keeps a
stopping server waiting for long.

    {"study_id", "status", "run_counts": {status: n}, "server_time",
     "data_version": str,  # changes when metrics or layer statistics were written
     "runs": [{"id", "status", "epoch", "epochs", "batch", "batches", "fraction",
               "eta_s", "elapsed_s", "started_at", "finished_at", "cancel_requested",
               "attempts", "error", "layer_epoch"}]}

Polling SQL (rather than a broker's pub/sub) keeps the worker's write path untouched and
works the same on SQLite and PostgreSQL; at one query pair a second per open page it is cheap.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timezone
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.analysis.progress import eta_seconds, fraction_done
from app.schemas import TERMINAL_STATUSES, EntityId
from app.storage import views
from app.storage.db import StorageUnavailable
from app.storage.models import utcnow
from app.storage.studies import study_status

router = APIRouter()

POLL_SECONDS = 1.0
STREAM_SECONDS = 15.0
KEEPALIVE_SECONDS = 10.0
RETRY_MS = 1000


def _iso(value) -> str | None:
    """ISO 8601 with its zone: SQLite hands back naive datetimes, and every stored time is UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def snapshot(study_id: int) -> dict[str, Any]:
    """What the page shows of the study's progress right now (see the module docstring)."""
    runs = views.study_runs(study_id)
    active = [run["id"] for run in runs if run["status"] not in TERMINAL_STATUSES]
    marks = views.data_marks(active)
    now = utcnow()
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
            "started_at": _iso(run["started_at"]), "finished_at": _iso(run["finished_at"]),
            "cancel_requested": bool(run["cancel_requested"]), "attempts": run["attempts"], "error": run["error"],
            "layer_epoch": marks.get(run["id"], (0, 0, None, 0))[2],
        })
    counts = dict(Counter(run["status"] for run in runs))
    version = [(run["id"], run["status"], run["attempts"], run["epoch"], marks.get(run["id"])) for run in runs]
    return {"study_id": study_id, "status": study_status(counts), "run_counts": counts,
            "data_version": json.dumps(version, separators=(",", ":")), "runs": out}


def _changed(previous: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    """Progress worth sending: anything but the ticking clocks (elapsed, ETA)."""
    if previous is None:
        return True
    strip = lambda snap: [{k: v for k, v in run.items() if k not in ("eta_s", "elapsed_s")} for run in snap["runs"]]  # noqa: E731
    return previous["data_version"] != current["data_version"] or strip(previous) != strip(current)


def _event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def _stream(request: Request, study_id: int) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    loop = asyncio.get_running_loop()
    opened = last_sent = loop.time()
    previous = None
    while True:
        try:
            current = await run_in_threadpool(snapshot, study_id)
        except StorageUnavailable as exc:
            yield _event("unavailable", {"detail": str(exc)})
            return
        current["server_time"] = _iso(utcnow())
        done = all(run["status"] in TERMINAL_STATUSES for run in current["runs"])
        if _changed(previous, current) or done:
            yield _event("progress", current)
            previous, last_sent = current, loop.time()
        if done:
            yield _event("end", {"study_id": study_id, "status": current["status"]})
            return
        if loop.time() - last_sent > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = loop.time()
        if loop.time() - opened > STREAM_SECONDS or await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)


# Left out of the OpenAPI schema: a stream that stays open while runs train is no JSON
# operation, and a schema-driven client (or fuzzer) would sit on it. README documents it.
@router.get("/studies/{study_id}/events", response_class=StreamingResponse, include_in_schema=False)
async def study_events(request: Request, study_id: EntityId) -> StreamingResponse:
    """Server-sent events: every run's progress as it changes; ends when the study does."""
    if await run_in_threadpool(views.study_header, study_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"study {study_id} not found")
    return StreamingResponse(_stream(request, study_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
