"""Engine and the one session scope every storage call goes through.

The scope commits on success, rolls back on error, and turns "the database is
not there" into ``StorageUnavailable`` so the API can answer 503 instead of 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.settings import get_settings


class StorageUnavailable(RuntimeError):
    """The database could not be reached; the caller may retry later."""


def _json_loads(text: str | bytes):
    """The JSON columns hold the histograms' float arrays: the study page reads hundreds per
    request, and orjson decodes them about 4x faster than json (half of a histogram request
    went to json.loads). It refuses the bare NaN Python's json may write; json reads those."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


@lru_cache
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               json_deserializer=_json_loads)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
            # WAL lets the API read while the worker writes; busy_timeout makes
            # writers queue instead of failing with "database is locked".
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, json_deserializer=_json_loads)


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


@lru_cache
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    session = _session_factory(get_settings().database_url)()
    try:
        yield session
        session.commit()
    except (OperationalError, DBAPIError) as exc:
        session.rollback()
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            raise StorageUnavailable(f"database unavailable: {exc.orig.__class__.__name__}") from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
