"""The API in-process with the data sets at hand, for tests that train their studies through it.

test_diagnostics.py keeps a ``client`` of its own (a probe worker's settings), which overrides this one.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def client(migrated, data_dir):
    """sqlite_app (tests/conftest.py) with INITLAB_DATA_DIR set, so execute_group can load the data."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    migrated(INITLAB_DATA_DIR=str(data_dir))
    with TestClient(create_app()) as test_client:
        yield test_client
