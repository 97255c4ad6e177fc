"""Signal-propagation probes: a request stored once per distinct question, answered by a worker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.storage.db import session_scope
from app.storage.models import SignalProbe, utcnow

COLUMNS = (SignalProbe.id, SignalProbe.key, SignalProbe.request, SignalProbe.status, SignalProbe.result,
           SignalProbe.error, SignalProbe.created_at, SignalProbe.started_at, SignalProbe.finished_at)


def _row(session, where) -> dict[str, Any] | None:
    row = session.execute(select(*COLUMNS).where(where)).first()
    return None if row is None else row._asdict()


def probe_for(key: str, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The probe of this request; (probe, to_send): True when a worker must be asked (new, or
    an earlier attempt failed and the question is asked again)."""
    with session_scope() as session:
        found = _row(session, SignalProbe.key == key)
        if found is not None and found["status"] != "failed":
            return found, False
        if found is not None:
            session.execute(update(SignalProbe).where(SignalProbe.id == found["id"]).values(
                status="queued", error=None, result=None, created_at=utcnow(), started_at=None, finished_at=None))
            return _row(session, SignalProbe.id == found["id"]), True
    try:
        with session_scope() as session:
            probe = SignalProbe(key=key, request=request, status="queued", created_at=utcnow())
            session.add(probe)
            session.flush()
            return _row(session, SignalProbe.id == probe.id), True
    except IntegrityError:  # the same question raced in from another request
        with session_scope() as session:
            return _row(session, SignalProbe.key == key), False


def get_probe(probe_id: int) -> dict[str, Any] | None:
    with session_scope() as session:
        return _row(session, SignalProbe.id == probe_id)


def claim_probe(probe_id: int) -> dict[str, Any] | None:
    """queued → running, atomically; None when another worker has it or it is done."""
    with session_scope() as session:
        claimed = session.execute(update(SignalProbe).where(SignalProbe.id == probe_id, SignalProbe.status == "queued")
                                  .values(status="running", started_at=utcnow())).rowcount
        return _row(session, SignalProbe.id == probe_id) if claimed == 1 else None


def finish_probe(probe_id: int, result: dict[str, Any] | None = None, error: str | None = None) -> None:
    with session_scope() as session:
        session.execute(update(SignalProbe).where(SignalProbe.id == probe_id).values(
            status="failed" if error is not None else "succeeded", result=result, error=error, finished_at=utcnow()))


def fail_stale_probes(older_than: timedelta) -> list[int]:
    """Probes no worker finished in time (none took it, or its worker died) end as failed, so
    no request waits forever; asking again sends a fresh one."""
    cutoff = utcnow() - older_than
    with session_scope() as session:
        stale = list(session.scalars(select(SignalProbe.id).where(
            SignalProbe.status.in_(("queued", "running")), SignalProbe.created_at < cutoff)))
        if stale:
            session.execute(update(SignalProbe).where(SignalProbe.id.in_(stale), SignalProbe.status.in_(("queued", "running")))
                            .values(status="failed", finished_at=utcnow(),
                                    error=f"no worker finished this probe within {older_than.total_seconds():.0f} s "
                                          "(is a worker consuming the probe queue?); ask again to retry"))
        return stale
