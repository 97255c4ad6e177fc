"""Fixtures that start real services: PostgreSQL databases, Redis queues, app processes.

Each test file can run alone. Where PostgreSQL, Redis or Chromium is missing the
tests that need it are skipped, except under CI (INITLAB_REQUIRE_SERVICES=1),
where a missing service is a failure.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import processes  # noqa: E402

PG_ADMIN_URL = os.environ.get("INITLAB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("INITLAB_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} not reachable ({exc.__class__.__name__}: {exc})"
    if os.environ.get("INITLAB_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    configured = os.environ.get("INITLAB_DATA_DIR")
    path = Path(configured) if configured else (ROOT.parent / "shared" / "datasets")
    if not (path / "mnist").is_dir():
        pytest.skip(f"no data sets at {path} (set INITLAB_DATA_DIR)")
    return path.resolve()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh, empty PostgreSQL database for this test session, dropped at the end."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    name = f"initlab_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    """Point this process's Settings at a given environment (cached settings are reset)."""
    from app.settings import get_settings

    def apply(**values: str) -> dict[str, str]:
        env = {"INITLAB_STATE_DIR": str(tmp_path / "state"), **values}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        return env

    yield apply
    get_settings.cache_clear()


@pytest.fixture
def migrated(settings_env):
    """Apply the Alembic migrations to the database the settings name."""

    def apply(**values: str) -> dict[str, str]:
        env = settings_env(**values)
        processes.run_cli(["migrate"], env)
        return env

    return apply


@pytest.fixture
def sqlite_app(migrated):
    """The API in-process on a fresh SQLite database and filesystem broker."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    migrated()
    with TestClient(create_app()) as client:
        yield client


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless; skipped where it is missing (a failure under CI)."""
    from playwright.sync_api import sync_playwright

    from support.browser import launch

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    from support.browser import PageWatch

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.watch = PageWatch(page)
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    from support.browser import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
