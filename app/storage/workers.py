"""Workers as they announce themselves: one row per worker process, written by the worker.

A worker registers when it is ready, beats every few seconds (with what it trains now) and
marks itself stopped on a clean shutdown (worker/heartbeat.py). A SIGKILLed worker, or one
cut off from the database, stops beating: three of its intervals without a beat and it is
"lost". Nothing else is inferred; the runs' own leases (app/storage/runs.py) decide what is
trained again.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from app.domain.tasks import probe_queue
from app.schemas.workers import WorkerPublic, WorkerState
from app.storage.db import session_scope
from app.storage.models import Worker, utcnow

# Beats a worker may miss before it shows as lost.
LOST_AFTER_BEATS = 3
# Rows of workers gone (stopped or lost) this long are removed when a worker registers.
FORGET_AFTER = timedelta(days=1)
# What a beat may change besides its time.
BEAT_FIELDS = ("device", "backend", "current_runs", "current_study")


def register_worker(name: str, host: str, pid: int, queues: list[str], interval_s: float) -> None:
    """Announce a worker process; a worker started again under its node name takes that row over."""
    now = utcnow()
    with session_scope() as session:
        session.execute(delete(Worker).where((Worker.name == name) | (Worker.last_heartbeat < now - FORGET_AFTER)))
        session.add(Worker(name=name, host=host, pid=pid, queues=sorted(set(queues)), current_runs=[],
                           interval_s=float(interval_s), started_at=now, last_heartbeat=now))


def beat(name: str, pid: int, **values) -> bool:
    """Record that the worker lives (and what it trains, its device); False if its row is gone or taken over."""
    unknown = set(values) - set(BEAT_FIELDS)
    if unknown:
        raise TypeError(f"not a worker field a beat sets: {sorted(unknown)}")
    with session_scope() as session:
        return session.execute(
            update(Worker).where(Worker.name == name, Worker.pid == pid)
            .values(last_heartbeat=utcnow(), stopped_at=None, **values)
        ).rowcount == 1


def mark_stopped(name: str, pid: int) -> None:
    """A clean shutdown: the worker trains nothing and takes nothing any more."""
    with session_scope() as session:
        session.execute(update(Worker).where(Worker.name == name, Worker.pid == pid)
                        .values(stopped_at=utcnow(), current_runs=[], current_study=None))


def _state(worker: Worker, age_s: float) -> WorkerState:
    if worker.stopped_at is not None:
        return "stopped"
    if age_s > LOST_AFTER_BEATS * worker.interval_s:
        return "lost"
    return "training" if worker.current_runs else "idle"


def list_workers() -> list[WorkerPublic]:
    """Every known worker, live ones first, then by host and name."""
    now = utcnow()
    with session_scope() as session:
        rows = session.scalars(select(Worker).order_by(Worker.host, Worker.name)).all()
        answer = []
        for row in rows:
            beat_at = row.last_heartbeat if row.last_heartbeat.tzinfo else row.last_heartbeat.replace(tzinfo=now.tzinfo)
            age = max(0.0, (now - beat_at).total_seconds())
            answer.append(WorkerPublic(
                name=row.name, host=row.host, pid=row.pid, queues=list(row.queues), device=row.device,
                backend=row.backend, state=_state(row, age), current_runs=list(row.current_runs),
                current_study=row.current_study, started_at=row.started_at, last_heartbeat=row.last_heartbeat,
                heartbeat_age_s=round(age, 3), interval_s=row.interval_s))
    return sorted(answer, key=lambda worker: worker.state in ("lost", "stopped"))


def served_queues(listed: list[WorkerPublic] | None = None) -> list[str]:
    """The training queues some live worker consumes (probe queues left out), sorted; of ``listed``
    (``list_workers()``'s answer) when given."""
    suffix = probe_queue("")
    return sorted({queue for worker in (list_workers() if listed is None else listed)
                   if worker.state in ("training", "idle")
                   for queue in worker.queues if not queue.endswith(suffix)})


def queue_refusal(queue: str | None, default_queue: str) -> str | None:
    """Why a study may not be sent to ``queue``, or None when it may.

    The default queue is always accepted, served or not: its studies wait in the broker until a
    worker starts (as ever). Any other queue must be consumed by a live worker now, or its runs
    would wait for a worker that may never come, behind a typo.
    """
    if queue is None or queue == default_queue:
        return None
    served = served_queues()
    if queue in served:
        return None
    listed = ", ".join(f'"{name}"' for name in sorted({*served, default_queue}))
    return (f'no live worker serves the queue "{queue}": a study\'s queue must be one that a running worker '
            f"consumes (`initlab worker --queues` or INITLAB_QUEUE); served now: {listed}")
