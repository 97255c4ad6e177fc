"""One JSON line per worker event, each naming its run: what a log shipper indexes.

Celery's own log lines are prose for people; ``initlab.events`` lines are for ``jq``,
Loki or CloudWatch: ``{"ts", "level", "event", "run_id", "worker", ...}`` on one line.
A worker started by Celery prints them bare on stderr (``configure``, hooked to Celery's
``after_setup_logger`` in worker/tasks.py); elsewhere (tests, scripts) they go through
normal logging. Fields are ids, counts and metrics only: never URLs, tokens or passwords.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from datetime import datetime, timezone
from typing import Any

from app.domain.numbers import json_safe

logger = logging.getLogger("initlab.events")


def event(name: str, run_id: int | None = None, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event as a JSON object; ``run_id`` None for events about no single run."""
    if not logger.isEnabledFor(level):
        return
    record = {
        "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "level": logging.getLevelName(level).lower(),
        "event": name,
        "run_id": run_id,
        "worker": f"{socket.gethostname()}:{os.getpid()}",  # as worker_identity(): the run's owner
        **json_safe(fields),
    }
    logger.log(level, json.dumps(record, default=str, separators=(",", ":")))


def configure(stream=None) -> None:
    """Print events bare (no prefix), once, and keep them out of Celery's prose format."""
    if any(getattr(handler, "_initlab_events", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._initlab_events = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
