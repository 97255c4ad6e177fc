"""Workers as they announce themselves: one row per worker process, written by the worker.

A worker registers when it is ready, beats every few seconds (with what it trains now) and
marks itself stopped on a clean shutdown (worker/heartbeat.py). A SIGKILLed worker, or one
cut off from the database, stops beating: three of its intervals without a beat and it is
"lost". Nothing else is inferred; the runs' own leases (app/storage/runs.py) decide what is
trained again. Two live processes under one Celery node name (plain `initlab worker` twice on
one host) each keep a row: a row is one process, not one name (see ``register_worker``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
    """Announce a worker process; one started again under its node name takes its rows over.

    The rows its earlier processes left (stopped, lost, or of its own pid) go. A row still live is
    another process under the same name (plain `initlab worker` twice on one host, or one killed a
    moment ago): it keeps its row, and this one gets a row of its own, so the panel shows both.
    Names are unique in the table, so that row's key is ``name#pid`` (``_node_of`` reads the name
    back); the beats prune a killed one once it is lost, and ``namesakes`` tells the two apart.
    """
    now = utcnow()
    with session_scope() as session:
        rows = session.scalars(select(Worker)).all()
        gone = [row.id for row in rows if _beat_at(row, now) < now - FORGET_AFTER
                or (_node_of(row) == name and (row.pid == pid or not _live(row, now)))]
        session.execute(delete(Worker).where(Worker.id.in_(gone)))
        taken = any(row.name == name and row.id not in gone for row in rows)
        session.add(Worker(name=f"{name}#{pid}" if taken else name, host=host, pid=pid, queues=sorted(set(queues)),
                           current_runs=[], interval_s=float(interval_s), started_at=now, last_heartbeat=now))


def _keys(name: str, pid: int) -> tuple[str, str]:
    """The row keys the process ``pid`` of node ``name`` may have (see register_worker)."""
    return name, f"{name}#{pid}"


def _node_of(row: Worker) -> str:
    """The Celery node name of a row, whatever its key."""
    return row.name.removesuffix(f"#{row.pid}")


def _aware(moment: datetime, now: datetime) -> datetime:
    """A stored time, aware: SQLite hands back naive UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


def _beat_at(row: Worker, now: datetime) -> datetime:
    return _aware(row.last_heartbeat, now)


def _age_s(row: Worker, now: datetime) -> float:
    """Seconds since the row's last beat."""
    return max(0.0, (now - _beat_at(row, now)).total_seconds())


def _live(row: Worker, now: datetime) -> bool:
    return _state(row, _age_s(row, now)) in ("training", "idle")


def beat(name: str, pid: int, **values) -> bool:
    """Record that the worker lives (and what it trains, its device); False if its row is gone or taken over."""
    unknown = set(values) - set(BEAT_FIELDS)
    if unknown:
        raise TypeError(f"not a worker field a beat sets: {sorted(unknown)}")
    with session_scope() as session:
        return session.execute(
            update(Worker).where(Worker.name.in_(_keys(name, pid)), Worker.pid == pid)
            .values(last_heartbeat=utcnow(), stopped_at=None, **values)
        ).rowcount == 1


def namesakes(name: str, pid: int) -> list[int]:
    """The pids of other processes under node name ``name`` that beat since this one registered.

    Those are alive now, next to it: a worker killed before this one started beats no more, so a
    restart is not taken for a duplicate. Rows of others under the name that are stopped or lost
    are deleted here, at each beat: a worker killed a moment before its successor registered still
    looked live then, and would otherwise stay listed as "lost" for a day.
    """
    now = utcnow()
    with session_scope() as session:
        rows = [row for row in session.scalars(select(Worker)).all() if _node_of(row) == name]
        others = [row for row in rows if row.pid != pid]
        session.execute(delete(Worker).where(Worker.id.in_([row.id for row in others if not _live(row, now)])))
        since = next((_aware(row.started_at, now) for row in rows if row.pid == pid), None)
        if since is None:
            return []
        return sorted(row.pid for row in others if _live(row, now) and _beat_at(row, now) > since)


def mark_stopped(name: str, pid: int) -> None:
    """A clean shutdown: the worker trains nothing and takes nothing any more."""
    with session_scope() as session:
        session.execute(update(Worker).where(Worker.name.in_(_keys(name, pid)), Worker.pid == pid)
                        .values(stopped_at=utcnow(), current_runs=[], current_study=None))


def _state(worker: Worker, age_s: float) -> WorkerState:
    if worker.stopped_at is not None:
        return "stopped"
    if age_s > LOST_AFTER_BEATS * worker.interval_s:
        return "lost"
    return "training" if worker.current_runs else "idle"


def list_workers() -> list[WorkerPublic]:
    """Every known worker, live ones first, then by host, name and pid (two processes may share a name)."""
    now = utcnow()
    with session_scope() as session:
        rows = session.scalars(select(Worker)).all()
        answer = []
        for row in rows:
            age = _age_s(row, now)
            answer.append(WorkerPublic(
                name=_node_of(row), host=row.host, pid=row.pid, queues=list(row.queues), device=row.device,
                backend=row.backend, state=_state(row, age), current_runs=list(row.current_runs),
                current_study=row.current_study, started_at=row.started_at, last_heartbeat=row.last_heartbeat,
                heartbeat_age_s=round(age, 3), interval_s=row.interval_s))
    return sorted(answer, key=lambda worker: (worker.state in ("lost", "stopped"), worker.host, worker.name,
                                              worker.pid))


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
    return (f'no live worker serves the queue "{queue}": a study\'s queue must be one that a running worker '
            f"consumes (`initlab worker --queues` or INITLAB_QUEUE); {_served_now(served, default_queue)}")


def _served_now(served: list[str], default_queue: str) -> str:
    """What the refusal says is served: only what a live worker consumes, and the default queue as what
    it is (accepted even with no worker: its runs wait for one), never "served" when it is not."""
    listed = ", ".join(f'"{name}"' for name in served) or "none"
    if default_queue in served:
        return f"queues served now: {listed}"
    return (f'queues served now: {listed}; the default queue "{default_queue}" is always accepted '
            "(its runs wait for a worker)")
