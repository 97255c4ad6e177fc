"""Workers: what GET /api/workers answers, and the name a study's ``queue`` may take."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.schemas.common import UtcDatetime

# A broker queue a study's runs may be sent to: what `initlab worker --queues` and INITLAB_QUEUE
# accept (letters, digits, ".", "_", "-", ":"), never anything a Redis key or file name would mangle.
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
QueueName = Annotated[str, Field(min_length=1, max_length=100, pattern=QUEUE_PATTERN)]

WorkerState = Literal["training", "idle", "lost", "stopped"]


class WorkerPublic(BaseModel):
    name: str = Field(description="Celery node name, name@host")
    host: str
    pid: int
    queues: list[str] = Field(description="the queues it consumes")
    device: str | None = Field(description='"CPU" or the accelerator\'s name; null until the worker has looked')
    backend: str | None = Field(description="Keras backend (tensorflow, jax, torch)")
    state: WorkerState = Field(description="lost: no heartbeat for three of its intervals (killed, or cut off)")
    current_runs: list[int] = Field(description="the runs it trains now")
    current_study: int | None
    started_at: UtcDatetime
    last_heartbeat: UtcDatetime
    heartbeat_age_s: float = Field(ge=0, description="seconds since its last heartbeat")
    interval_s: float = Field(description="its heartbeat period")


class WorkerList(BaseModel):
    default_queue: str = Field(description="INITLAB_QUEUE: where a study without a queue goes, served or not")
    queues: list[str] = Field(description="the training queues live workers serve: what a study's queue may name")
    workers: list[WorkerPublic]
