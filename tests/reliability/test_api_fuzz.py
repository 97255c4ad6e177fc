"""Schemathesis against the app's own OpenAPI schema, served by a real uvicorn process, on SQLite and on
PostgreSQL (this file: SQLite; test_api_fuzz_postgresql.py: PostgreSQL; the work is in
support/fuzz.py): ``st run --checks all`` (every phase: coverage, fuzzing and stateful; every check: server
errors, status codes, content types, response headers and bodies against the schema, schema-invalid
data refused, schema-valid data accepted, missing headers, undeclared methods and the ``Allow``
header, auth that is not ignored, resources after use) must end with 0 failures and 0 errors.

The server runs with an API token (the schema then marks the writes, and ``ignored_auth`` checks that
they are refused without it), and with INITLAB_PROBE_WAIT_S=0.2: no worker answers the signal probe, so
its POST answers 202 with a URL to poll, as the schema says. ``schemathesis_hooks.py`` replaces
``positive_data_acceptance`` with the same check that lets pass a 422 for the few rules JSON Schema
cannot express (named there, and in the schema's descriptions); every other 422 to a schema-valid
request is still a failure. Counts go to tests/artifacts/schemathesis_counts.json and README.md.
"""

from __future__ import annotations

import pytest

from support import fuzz

pytestmark = pytest.mark.slow


def test_schemathesis_checks_all_find_nothing_on_sqlite(tmp_path):
    with fuzz.server(tmp_path) as base:
        fuzz.check_all_find_nothing("sqlite", base, tmp_path)
