"""Schemathesis against the app's own OpenAPI schema, served by a real uvicorn process:
no server errors and no responses that break the schema, over at least 1000
generated cases covering every operation."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from schemathesis.checks import positive_data_acceptance

from support import processes

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 100


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("fuzz")
    env = {"INITLAB_STATE_DIR": str(state), "INITLAB_PORT": str(processes.free_port())}
    processes.run_cli(["migrate"], env)
    api = processes.start(["api", "--port", env["INITLAB_PORT"]], env, state / "api.log")
    base = f"http://127.0.0.1:{env['INITLAB_PORT']}"
    processes.wait_until_up(base)
    yield base
    processes.stop(api)


def _fuzz(operation, mode: GenerationMode, base_url: str, seen: Counter, failures: list[str]) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def exercise(case):
        seen[label] += 1
        seen[mode.value] += 1
        # Every default check runs (server errors, response schema, status codes,
        # content types, negative data accepted ...) except "valid data rejected":
        # cross-field rules (distinct seeds, parameter limits, bias-capable
        # initializers) cannot be said in JSON Schema, so the API rightly 422s them.
        response = case.call_and_validate(base_url=base_url, excluded_checks=[positive_data_acceptance])
        if response.status_code >= 500:
            failures.append(f"{label}: {response.status_code} {response.text[:200]}")

    try:
        exercise()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, label  # an operation without parameters has nothing to break


def test_generated_requests_find_no_server_errors(server):
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    seen: Counter[str] = Counter()
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):  # valid bodies, and broken ones
            _fuzz(operation, mode, server, seen, failures)
    assert failures == []
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    cases = sum(count for label, count in seen.items() if label in labels)
    assert cases >= 1000, seen
    assert labels <= set(seen), labels - set(seen)
    print(f"schemathesis: {cases} cases over {len(labels)} operations "
          f"({seen['positive']} positive, {seen['negative']} negative)")
