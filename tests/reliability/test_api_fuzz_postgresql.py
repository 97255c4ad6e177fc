"""Schemathesis ``--checks all`` against the app on PostgreSQL; test_api_fuzz.py says what it checks."""

from __future__ import annotations

import pytest

from support import fuzz

pytestmark = pytest.mark.slow


def test_schemathesis_checks_all_find_nothing_on_postgresql(tmp_path, postgres_url):
    with fuzz.server(tmp_path, postgres_url) as base:
        fuzz.check_all_find_nothing("postgresql", base, tmp_path)
