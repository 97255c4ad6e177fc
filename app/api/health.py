"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from kombu import Connection
from sqlalchemy import text

from app.settings import get_settings
from worker.celery_app import broker_options

from app.storage.db import get_engine

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


def _database() -> str:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means not ready
        return f"unreachable ({exc.__class__.__name__})"
    return "ok"


def _broker() -> str:
    settings = get_settings()
    try:
        with Connection(settings.broker_url, transport_options=broker_options(settings),
                        connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises transport-specific errors
        return f"unreachable ({exc.__class__.__name__})"
    return "ok"


@router.get("/readyz", responses={503: {"description": "database or broker unreachable"}})
def readyz() -> JSONResponse:
    """The database and the broker answer (503 otherwise)."""
    checks = {"database": _database(), "broker": _broker()}
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ready else "unavailable", **checks}, status_code=200 if ready else 503)
