"""docker-compose.yml and the Dockerfile say exactly what the app needs, and nothing else.

No Docker engine runs here, so Debian's docker-compose validates the file
(`docker-compose config`) and the test compares the parsed services with the
expected values below; the Dockerfile is parsed into its instructions. Every check
compares whole values (commands, images, ports, healthchecks, mounts, instructions):
a port that disappears or appears, a changed tag or a dropped COPY fails a test.

Changing docker-compose.yml or the Dockerfile? Change the expected values in this
block with it, and nothing else in this file.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from support.require import require_program

ROOT = Path(__file__).resolve().parents[2]

# ---- expected: docker-compose.yml -------------------------------------------------------------

INITLAB_ENV = {
    "INITLAB_DATABASE_URL": "postgresql+psycopg://initlab:initlab@postgres:5432/initlab",
    "INITLAB_BROKER_URL": "redis://redis:6379/0",
    "INITLAB_DATA_DIR": "/data",
    "INITLAB_WORKER_CONCURRENCY": "1",  # one worker container: the API splits a cell over one worker
    "INITLAB_FUSE_MAX": "auto",  # each worker sizes its groups to its device
}
# One Dockerfile, two targets: the slim CPU image (API, migrations, CPU workers) and the GPU worker's.
CPU_BUILD = {"context": ".", "dockerfile": "Dockerfile", "target": "cpu"}
GPU_BUILD = {"context": ".", "dockerfile": "Dockerfile", "target": "gpu"}
CUDA_JAX = "jax[cuda12]"  # JAX's CUDA 12 wheels (CUDA and cuDNN as pip packages), the GPU image's one addition
API_PORT = 8000
DATA_MOUNT = ("bind", "./datasets", "/data", True)  # (type, source, target, read-only)

# Per service, every key it sets (a key not listed here is a failure too):
#   ports:       (host_ip, published, target, protocol), all bound to loopback
#   volumes:     (type, source, target, read-only); bind sources relative to the repository
#   healthcheck: the exact `test` command
#   depends_on:  {service: condition}
SERVICES = {
    "postgres": {
        "image": "postgres:16",
        "environment": {"POSTGRES_USER": "initlab", "POSTGRES_PASSWORD": "initlab", "POSTGRES_DB": "initlab"},
        "volumes": [("volume", "pgdata", "/var/lib/postgresql/data", False)],
        "healthcheck": ["CMD-SHELL", "pg_isready -U initlab -d initlab"],
    },
    "redis": {
        "image": "redis:7",
        "command": ["redis-server", "--appendonly", "yes"],
        "healthcheck": ["CMD", "redis-cli", "ping"],
    },
    "migrate": {
        "build": CPU_BUILD,
        "command": ["initlab", "migrate"],
        "environment": INITLAB_ENV,
        "depends_on": {"postgres": "service_healthy"},
        "restart": "no",
    },
    "api": {
        "build": CPU_BUILD,
        "command": ["initlab", "api", "--host", "0.0.0.0", "--port", str(API_PORT)],
        "environment": INITLAB_ENV,
        "restart": "unless-stopped",
        "volumes": [DATA_MOUNT],  # the signal-propagation diagnostic reads the real data sets
        "ports": [("127.0.0.1", API_PORT, API_PORT, "tcp")],
        "depends_on": {"migrate": "service_completed_successfully", "redis": "service_healthy"},
        "healthcheck": ["CMD", "python", "-c",
                        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{API_PORT}/readyz')"],
    },
    "worker": {
        "build": GPU_BUILD,
        "command": ["initlab", "worker", "--gpus", "0"],  # the one reserved GPU, seen as device 0
        "environment": {**INITLAB_ENV, "INITLAB_KERAS_BACKEND": "jax"},
        "restart": "unless-stopped",  # the watchdog's exit 75 is answered with a fresh worker
        "volumes": [DATA_MOUNT],
        "depends_on": {"migrate": "service_completed_successfully", "redis": "service_healthy"},
        "deploy": {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]}}},
    },
    "worker-cpu": {  # machines without a GPU: --profile worker-cpu up -d --scale worker=0
        "profiles": ["worker-cpu"],
        "build": CPU_BUILD,
        "command": ["initlab", "worker"],
        "environment": {**INITLAB_ENV, "INITLAB_KERAS_BACKEND": "tensorflow"},
        "restart": "unless-stopped",
        "volumes": [DATA_MOUNT],
        "depends_on": {"migrate": "service_completed_successfully", "redis": "service_healthy"},
    },
}
NAMED_VOLUMES = {"pgdata"}

# ---- expected: Dockerfile, instruction by instruction -----------------------------------------

DOCKERFILE = [
    ("FROM", "python:3.11-slim AS cpu"),
    ("ENV", {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
             "TF_CPP_MIN_LOG_LEVEL": "2", "INITLAB_STATE_DIR": "/var/lib/initlab", "INITLAB_DATA_DIR": "/data"}),
    ("WORKDIR", "/app"),
    ("COPY", ["pyproject.toml", "README.md", "alembic.ini", "./"]),
    ("COPY", ["app", "./app"]),
    ("COPY", ["worker", "./worker"]),
    ("COPY", ["frontend", "./frontend"]),
    ("COPY", ["migrations", "./migrations"]),
    ("RUN", "pip install --no-cache-dir -e . && mkdir -p /var/lib/initlab /data"),
    ("EXPOSE", str(API_PORT)),
    ("CMD", ["initlab", "api", "--host", "0.0.0.0", "--port", str(API_PORT)]),
    ("FROM", "cpu AS gpu"),
    ("ENV", {"INITLAB_KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
    ("RUN", f'pip install --no-cache-dir "{CUDA_JAX}>=0.4.30"'),
    ("COPY", ["bench", "./bench"]),  # bench/gpu_check.py, run in the GPU image
    ("CMD", ["initlab", "worker", "--gpus", "0"]),
]
# What the installed app reads from its working directory at run time (a COPY must bring each).
RUNTIME_PATHS = {"pyproject.toml", "README.md", "alembic.ini", "app", "worker", "frontend", "migrations"}

# ---- reading the files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    docker_compose = require_program("docker-compose")
    result = subprocess.run([docker_compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _port(entry) -> tuple[str | None, int, int, str]:
    """docker-compose v1 writes "127.0.0.1:8000:8000/tcp", v2 a mapping: both as (host_ip, published, target, protocol)."""
    if isinstance(entry, dict):
        return (entry.get("host_ip"), int(entry["published"]), int(entry["target"]), entry.get("protocol", "tcp"))
    spec, _, protocol = str(entry).partition("/")
    parts = spec.rsplit(":", 2)
    host_ip = parts[0] if len(parts) == 3 else None
    return (host_ip, int(parts[-2]), int(parts[-1]), protocol or "tcp")


def _source(source: str) -> str:
    """docker-compose resolves relative paths against the file's folder: give them back as the file spells them."""
    path = Path(source)
    if not path.is_absolute():
        return source
    if path == ROOT:
        return "."
    return "./" + path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else source


def _volume(entry) -> tuple[str, str, str, bool]:
    """v1 writes "source:target:mode", v2 a mapping: both as (type, source, target, read-only)."""
    if isinstance(entry, dict):
        return (entry["type"], _source(entry["source"]), entry["target"], bool(entry.get("read_only", False)))
    source, target, *mode = str(entry).split(":")
    kind = "bind" if source.startswith(("/", ".")) else "volume"
    return (kind, _source(source), target, "ro" in mode)


def _build(build) -> dict:
    if isinstance(build, str):
        build = {"context": build}
    return {"context": _source(build["context"]), "dockerfile": build.get("dockerfile", "Dockerfile"),
            "target": build.get("target")}


def _normalized(service: dict) -> dict:
    """The keys SERVICES speaks of, in its shape; `networks` (added by docker compose v2) left out."""
    out = {}
    for key, value in service.items():
        if key == "networks":
            continue
        if key == "ports":
            value = [_port(port) for port in value]
        elif key == "volumes":
            value = [_volume(volume) for volume in value]
        elif key == "healthcheck":
            value = value["test"]
        elif key == "depends_on":
            value = {name: condition["condition"] for name, condition in value.items()}
        elif key == "build":
            value = _build(value)
        out[key] = value
    return out


def parse_dockerfile(text: str) -> list[tuple[str, object]]:
    """Instructions in order, continuation lines joined, comments dropped: ENV as a dict,
    COPY as its words, CMD/ENTRYPOINT in exec form as the list, anything else as its text."""
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), " ".join(rest.split())
        if word == "ENV":
            value: object = dict(item.split("=", 1) for item in shlex.split(rest))
        elif word == "COPY":
            value = rest.split()
        elif word in ("CMD", "ENTRYPOINT") and rest.startswith("["):
            value = json.loads(rest)
        else:
            value = rest
        instructions.append((word, value))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, object]]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def stages(instructions: list[tuple[str, object]]) -> dict[str, list[tuple[str, object]]]:
    """The instructions of each build stage, by its name (``FROM image AS name``)."""
    named: dict[str, list[tuple[str, object]]] = {}
    current: list[tuple[str, object]] = []
    for word, value in instructions:
        if word == "FROM":
            current = named.setdefault(str(value).split()[-1] if " AS " in f" {str(value).upper()} " else "", [])
        current.append((word, value))
    return named


# ---- docker-compose.yml ----------------------------------------------------------------------


def test_exactly_the_expected_services_and_volumes(compose):
    assert sorted(compose["services"]) == sorted(SERVICES)
    assert set(compose.get("volumes") or {}) == NAMED_VOLUMES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_is_exactly_as_expected(compose, name):
    # Whole values per key: image tags, commands, environments, mounts, ports, healthchecks,
    # depends_on conditions, restart policies, GPU reservations; and no key beyond these.
    assert _normalized(compose["services"][name]) == SERVICES[name]


def test_only_the_api_publishes_a_port_and_only_on_loopback(compose):
    published = {name: [_port(port) for port in service.get("ports", [])]
                 for name, service in compose["services"].items()}
    assert published == {"postgres": [], "redis": [], "migrate": [], "api": [("127.0.0.1", API_PORT, API_PORT, "tcp")],
                         "worker": [], "worker-cpu": []}


def test_port_and_volume_readers_see_every_spelling():
    # The normalizers above must not turn a changed file into an equal one.
    assert _port("127.0.0.1:8000:8000/tcp") == ("127.0.0.1", 8000, 8000, "tcp")
    assert _port("8000:8000") == (None, 8000, 8000, "tcp")
    assert _port("0.0.0.0:8080:8000/udp") == ("0.0.0.0", 8080, 8000, "udp")
    assert _port({"mode": "ingress", "host_ip": "127.0.0.1", "target": 8000, "published": "8000",
                  "protocol": "tcp"}) == ("127.0.0.1", 8000, 8000, "tcp")
    assert _volume(f"{ROOT}/datasets:/data:ro") == ("bind", "./datasets", "/data", True)
    assert _volume(f"{ROOT}/datasets:/data:rw") == ("bind", "./datasets", "/data", False)
    assert _volume("pgdata:/var/lib/postgresql/data:rw") == ("volume", "pgdata", "/var/lib/postgresql/data", False)
    assert _volume("/srv/data:/data:ro") == ("bind", "/srv/data", "/data", True)
    assert _volume({"type": "bind", "source": f"{ROOT}/datasets", "target": "/data", "read_only": True}) == DATA_MOUNT


def test_services_run_the_commands_the_tests_run(compose):
    from typer.main import get_command

    from app.cli import cli
    from support import processes

    services = compose["services"]
    assert Path(processes.INITLAB[0]).name == "initlab"  # the tests start the same console script
    commands = get_command(cli).commands
    assert {"migrate", "api", "worker", "up"} <= set(commands)
    for name in ("migrate", "api", "worker", "worker-cpu"):
        program, subcommand, *options = services[name]["command"]
        assert (program, subcommand) == ("initlab", name.removesuffix("-cpu"))
        known = {opt for param in commands[subcommand].params for opt in param.opts}
        flags = [word for word in options if word.startswith("--")]
        assert set(flags) <= known, (name, set(flags) - known)
    assert services["api"]["command"][-4:] == ["--host", "0.0.0.0", "--port", str(API_PORT)]


def test_the_api_healthcheck_asks_a_route_the_app_serves(compose):
    from app.main import create_app

    test = compose["services"]["api"]["healthcheck"]["test"]
    url = re.fullmatch(r"import urllib\.request; urllib\.request\.urlopen\('(.+)'\)", test[-1]).group(1)
    assert url == f"http://127.0.0.1:{API_PORT}/readyz"
    assert "get" in create_app().openapi()["paths"]["/readyz"]


# ---- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_is_exactly_the_expected_instructions(dockerfile):
    assert dockerfile == DOCKERFILE


def test_dockerfile_copies_what_the_app_reads_and_each_source_exists(dockerfile):
    cpu = stages(dockerfile)["cpu"]
    sources = [source for word, value in cpu if word == "COPY" for source in value[:-1]]
    assert sorted(sources) == sorted(RUNTIME_PATHS)
    for source in [source for word, value in dockerfile if word == "COPY" for source in value[:-1]]:
        assert (ROOT / source).exists(), source
    # The package is installed from what was copied, under the WORKDIR the copies land in.
    assert [value for word, value in dockerfile if word == "WORKDIR"] == ["/app"]
    (run,) = [value for word, value in cpu if word == "RUN"]
    assert run.split(" && ")[0] == "pip install --no-cache-dir -e ."


def test_the_gpu_target_adds_cuda_jax_to_the_cpu_image(dockerfile):
    # The GPU image is the CPU one (same app, same install) plus JAX's CUDA wheels, on JAX.
    gpu = stages(dockerfile)["gpu"]
    assert gpu[0] == ("FROM", "cpu AS gpu")
    (install,) = [value for word, value in gpu if word == "RUN"]
    words = shlex.split(install)
    assert words[:3] == ["pip", "install", "--no-cache-dir"]
    assert [word for word in words[3:] if word.startswith("jax[")] == [f"{CUDA_JAX}>=0.4.30"]
    assert dict(gpu)["ENV"]["INITLAB_KERAS_BACKEND"] == "jax"
    # The cpu image installs no CUDA wheel: the API and CPU workers stay slim.
    assert not any("cuda" in str(value) for word, value in stages(dockerfile)["cpu"] if word == "RUN")


def test_every_build_target_is_a_dockerfile_stage_and_the_gpu_worker_reserves_its_gpus(compose, dockerfile):
    names = set(stages(dockerfile))
    targets = {name: service["build"]["target"] for name, service in compose["services"].items() if "build" in service}
    assert targets == {"migrate": "cpu", "api": "cpu", "worker": "gpu", "worker-cpu": "cpu"}
    assert set(targets.values()) <= names
    worker = compose["services"]["worker"]
    (reservation,) = worker["deploy"]["resources"]["reservations"]["devices"]
    gpus = worker["command"][worker["command"].index("--gpus") + 1].split(",")
    assert len(gpus) == reservation["count"]  # one worker process per reserved GPU, ids 0..count-1 inside
    assert gpus == [str(index) for index in range(reservation["count"])]
    assert "deploy" not in compose["services"]["worker-cpu"]


def test_dockerfile_agrees_with_compose(compose, dockerfile):
    instructions = dict((word, value) for word, value in stages(dockerfile)["cpu"] if word in ("CMD", "EXPOSE", "ENV"))
    api = compose["services"]["api"]
    assert instructions["CMD"] == api["command"]  # `docker run` of the image alone starts the same API
    assert instructions["EXPOSE"] == str(_port(api["ports"][0])[2])
    assert instructions["ENV"]["INITLAB_DATA_DIR"] == INITLAB_ENV["INITLAB_DATA_DIR"] == DATA_MOUNT[2]
    # `docker run` of the GPU image alone starts the GPU worker the compose file runs.
    assert dict(stages(dockerfile)["gpu"])["CMD"] == compose["services"]["worker"]["command"]


def test_dockerfile_parser_reads_what_it_must():
    text = ("# comment\nFROM python:3.11-slim\nENV A=1 \\\n    B=\"two words\"\nCOPY a b ./\n"
            "RUN pip install x \\\n  # inside\n  && echo y\nCMD [\"initlab\", \"api\"]\n")
    assert parse_dockerfile(text) == [("FROM", "python:3.11-slim"), ("ENV", {"A": "1", "B": "two words"}),
                                      ("COPY", ["a", "b", "./"]), ("RUN", "pip install x && echo y"),
                                      ("CMD", ["initlab", "api"])]
