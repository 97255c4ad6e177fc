"""docker-compose.yml is valid and its services run the commands the tests run.

No Docker engine runs here, so Debian's docker-compose validates the file
(`docker-compose config`) and the test compares the parsed services.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    if shutil.which("docker-compose") is None:
        if os.environ.get("INITLAB_REQUIRE_SERVICES") == "1":
            pytest.fail("docker-compose is not installed (make system-deps installs it)")
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_services_and_health(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_ports_bind_to_loopback(compose):
    for service in compose["services"].values():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", port


def test_services_run_the_commands_the_tests_run(compose):
    from typer.main import get_command

    from app.cli import cli
    from support import processes

    services = compose["services"]
    assert services["migrate"]["command"] == ["initlab", "migrate"]
    assert services["worker"]["command"] == ["initlab", "worker"]
    assert services["api"]["command"][:2] == ["initlab", "api"]
    assert Path(processes.INITLAB[0]).name == "initlab"  # the tests start the same console script
    commands = get_command(cli).commands
    assert {"migrate", "api", "worker", "up"} <= set(commands)
    api_options = {opt for param in commands["api"].params for opt in param.opts}
    assert {"--host", "--port"} <= api_options
    env = services["worker"]["environment"]
    assert env["INITLAB_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["INITLAB_BROKER_URL"].startswith("redis://")


def test_dockerfile_copies_what_the_app_needs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("app", "worker", "frontend", "migrations", "alembic.ini", "pyproject.toml"):
        assert folder in dockerfile
