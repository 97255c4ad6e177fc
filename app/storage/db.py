"""Engine and the one session scope every storage call goes through.

The scope commits on success, rolls back on error, and turns "the database is
not there" into ``StorageUnavailable`` so the API can answer 503 instead of 500.

An embedded SQLite file is remembered by its identity (device and inode) when this process
first opens it. If the file is then removed (``rm -rf`` of INITLAB_STATE_DIR) or replaced,
SQLite would go on reading and writing the deleted file through its open connections, and
everything stored from then on would be lost at the next start: every session and ``ping``
(``/readyz``) checks the identity first and refuses with ``DatabaseFileGone``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.settings import get_settings


class StorageUnavailable(RuntimeError):
    """The database could not be reached; the caller may retry later."""


class RowLocked(StorageUnavailable):
    """A row stayed locked by another connection past INITLAB_LOCK_TIMEOUT_S."""


class DatabaseFileGone(StorageUnavailable):
    """The SQLite file this process opened was removed or replaced: nothing can be stored safely."""


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, absolute; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return Path(os.path.abspath(parsed.database))


class _FileIdentity:
    """(st_dev, st_ino) of a SQLite file, taken the first time this process sees the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self.check()

    def check(self) -> None:
        """DatabaseFileGone if the file seen before is no longer the file at its path."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self.identity is None:
                return  # never seen: SQLite creates it (migrations) or reports its own error
            raise DatabaseFileGone(
                f"the database file {self.path} was removed while initlab was running (is INITLAB_STATE_DIR "
                f"{self.path.parent} gone?); nothing more is accepted: restore it, or restart initlab") from None
        except OSError as exc:
            raise DatabaseFileGone(f"the database file {self.path} cannot be checked ({exc.strerror})") from None
        current = (stat.st_dev, stat.st_ino)
        with self._lock:
            if self.identity is None:
                self.identity = current
                return
        if current != self.identity:
            raise DatabaseFileGone(
                f"the database file {self.path} was replaced by another file while initlab was running; "
                "nothing more is accepted: restart initlab to use the new one")


@lru_cache
def _identity(url: str) -> _FileIdentity | None:
    path = sqlite_path(url)
    return None if path is None else _FileIdentity(path)


def check_database_file(url: str | None = None) -> None:
    """Raise DatabaseFileGone if the configured SQLite file vanished or was replaced since this
    process opened it; nothing for other databases."""
    identity = _identity(url or get_settings().database_url)
    if identity is not None:
        identity.check()


def _json_loads(text: str | bytes):
    """The JSON columns hold the histograms' float arrays: the study page reads hundreds per
    request, and orjson decodes them about 4x faster than json (half of a histogram request
    went to json.loads). It refuses the bare NaN Python's json may write; json reads those."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def engine_for(url: str) -> Engine:
    settings = get_settings()
    return _engine(url, settings.lock_timeout_s, settings.idle_transaction_s)


@lru_cache
def _engine(url: str, lock_timeout_s: float, idle_transaction_s: float) -> Engine:
    busy_ms = max(1, round(lock_timeout_s * 1000))
    if url.startswith("sqlite"):
        _identity(url)  # remember the file as it is now
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": lock_timeout_s},
                               json_deserializer=_json_loads)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
            # WAL lets the API read while the worker writes; busy_timeout makes
            # writers queue instead of failing with "database is locked".
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Deleting a 512-run study wrote a 1 GB WAL that stayed that size: after each checkpoint
            # SQLite now cuts the file back to 64 MiB.
            cursor.execute("PRAGMA journal_size_limit=67108864")
            cursor.close()
            # SQLite's lower() (and so ILIKE, which SQLAlchemy writes as lower() LIKE lower()) folds
            # ASCII only: "étude" did not find "Étude". Python's folds every letter, as PostgreSQL does.
            dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

        return engine
    connect_args = {}
    if make_url(url).get_backend_name() == "postgresql":
        idle_ms = max(1, round(idle_transaction_s * 1000))
        connect_args["options"] = f"-c lock_timeout={busy_ms} -c idle_in_transaction_session_timeout={idle_ms}"
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, json_deserializer=_json_loads,
                         connect_args=connect_args)


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


@lru_cache
def _session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    url = get_settings().database_url
    check_database_file(url)
    session = _session_factory(engine_for(url))()
    try:
        yield session
        session.commit()
    except (OperationalError, DBAPIError) as exc:
        session.rollback()
        if _lock_timed_out(exc):
            raise RowLocked(f"the data is being written by another process (a worker stuck mid-write?) and stayed "
                            f"locked for {get_settings().lock_timeout_s:g} s (INITLAB_LOCK_TIMEOUT_S); nothing "
                            "was changed: retry") from exc
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            raise StorageUnavailable(f"database unavailable: {exc.orig.__class__.__name__}") from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _lock_timed_out(exc: DBAPIError) -> bool:
    """PostgreSQL's lock_timeout (SQLSTATE 55P03), or SQLite still busy after its timeout."""
    if getattr(exc.orig, "sqlstate", None) == "55P03":
        return True
    return "database is locked" in str(exc.orig)


def ping() -> str:
    """"ok", or why the database cannot be reached (for /readyz)."""
    from sqlalchemy import text

    try:
        check_database_file()
    except DatabaseFileGone as exc:
        return f"gone: {exc}"
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means not ready
        return f"unreachable ({exc.__class__.__name__})"
    return "ok"
