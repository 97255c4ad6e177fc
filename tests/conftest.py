"""Fixtures that start real services: PostgreSQL databases, Redis queues, app processes.

Each test file can run alone. Where PostgreSQL, Redis, Chromium, the data sets or
another dependency is missing the tests that need it are skipped, except under CI
(INITLAB_REQUIRE_SERVICES=1), where a missing dependency is a failure (support/require.py).
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
from support.require import missing, require  # noqa: E402

# In-process TestClient requests carry "Host: testserver": the app answers to it in the test processes
# only (a real server answers to its loopback names; tests/api/test_security.py checks that default).
os.environ.setdefault("INITLAB_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1,::1")

# One TensorFlow thread per test process, as `initlab up` gives each of its workers on 2 cores (the
# parallel run has 3 processes on 2 cores anyway). It is also the condition of the fused-equals-alone
# tests: with 2 threads oneDNN splits a lone run's matmul across them but a group's batched matmul by
# run, a different summation order (a Dense head's kernel gradient 1.7e-7 apart, on an AVX2 AMD EPYC),
# which a normalized CNN grows past 1e-4 in 2 epochs. Set before TensorFlow is imported; a value set
# by the caller wins.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

# The parallel run (-n 3 --dist loadfile) hands out whole files in collection order, so a long file
# collected last runs alone at the end. These (the longest, from `--durations`, each minutes on 2
# cores) start first, then every other file marked slow, then the rest.
LONGEST_FIRST = ("worker/training/test_jax.py", "worker/training/test_jax_families.py",
                 "reliability/test_api_fuzz_postgresql.py", "reliability/test_api_fuzz.py",
                 "worker/training/test_families.py", "worker/training/test_jax_backends.py", "domain/test_memory.py",
                 "reliability/test_worker_killed.py", "reliability/test_two_hosts.py", "e2e/test_embedded_default.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> tuple[int, int]:
        path = Path(str(item.fspath)).relative_to(ROOT / "tests").as_posix()
        if path in LONGEST_FIRST:
            return 0, LONGEST_FIRST.index(path)
        return (1, 0) if item.get_closest_marker("slow") else (2, 0)

    items.sort(key=rank)  # stable: each file keeps its own order


PG_ADMIN_URL = os.environ.get("INITLAB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("INITLAB_TEST_REDIS", "redis://127.0.0.1:6379/0")


DATA_SETS = ("mnist", "fashion_mnist")
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _unavailable(what: str, exc: Exception) -> None:
    missing(f"{what} not reachable ({exc.__class__.__name__}: {exc})")


def find_data_dir() -> tuple[Path, list[str]]:
    """INITLAB_DATA_DIR if set, else the shared folder next to the checkout; and the IDX files it lacks."""
    configured = os.environ.get("INITLAB_DATA_DIR")
    path = Path(configured) if configured else (ROOT.parent / "shared" / "datasets")
    absent = [f"{name}/{file}" for name in DATA_SETS for file in IDX_FILES if not (path / name / file).is_file()]
    return path, absent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data sets (mnist/ and fashion_mnist/ with their IDX .gz files).

    Missing, the tests that need them skip, except under CI (INITLAB_REQUIRE_SERVICES=1),
    where they fail: a missing data folder must not pass a run by skipping its trainings.
    """
    path, absent = find_data_dir()
    source = "from INITLAB_DATA_DIR" if os.environ.get("INITLAB_DATA_DIR") else "the default: INITLAB_DATA_DIR is unset"
    lacks = "no such folder" if not path.is_dir() else f"missing {', '.join(absent)}"
    require(not absent, f"real data sets not found at {path} ({source}): {lacks}; set INITLAB_DATA_DIR to a "
                        "folder holding mnist/ and fashion_mnist/ with their four IDX .gz files each")
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
    """Debian's Chromium, headless; skipped where it is missing (a failure under CI, support/browser.py)."""
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
