"""Worker routes: who is there to train, and what each is training."""

from __future__ import annotations

from fastapi import APIRouter

from app.schemas.common import COMMON_RESPONSES
from app.schemas.workers import WorkerList
from app.settings import get_settings
from app.storage import workers

router = APIRouter(prefix="/api/workers", tags=["workers"], responses=COMMON_RESPONSES)


@router.get("", response_model=WorkerList)
def list_workers() -> WorkerList:
    """Every worker process: host, queues, device, what it trains, last heartbeat (lost after three missed)."""
    listed = workers.list_workers()
    return WorkerList(default_queue=get_settings().queue, queues=workers.served_queues(listed), workers=listed)
