"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app import queue
from app.storage import db

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database or broker unreachable, or the database file "
                                                      "this process opened was removed or replaced"}})
def readyz() -> JSONResponse:
    """The database and the broker answer (503 otherwise). An embedded SQLite file that was removed
    (``rm -rf`` of INITLAB_STATE_DIR) or replaced since the API opened it is not ready either: its
    open connections would still answer, from a deleted file (app/storage/db.py)."""
    checks = {"database": db.ping(), "broker": queue.ping()}
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", **checks}, status_code=200 if ready else 503)
