"""`initlab worker --gpus 0,1`: one worker process per GPU, each pinned to its own device.

No GPU is needed: the pinning is the environment each process starts with, so the tests
read it back from the processes themselves, started by the real command with a stand-in
for Celery (a child that writes what it sees and sleeps), over a fake device list.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.launch import gpu_workers, up_workers, worker_env
from app.settings import Settings, parse_gpus

ROOT = Path(__file__).resolve().parents[2]

# The real `initlab worker`, with Celery's command line swapped for a child that reports its
# environment, and no state directory check (there is no database here).
LAUNCH = """
import sys
import app.launch as launch
import app.cli as cli
child = '''
import json, os, sys, time
names = ("CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION", "KERAS_BACKEND")
with open(os.path.join(sys.argv[2], sys.argv[1] + ".json"), "w") as out:
    json.dump({name: os.environ.get(name) for name in names}, out)
time.sleep(120)
'''
out = sys.argv[1]
launch.worker_command = lambda name, queues=None: [sys.executable, "-c", child, name, out]
cli._require_state_dir = lambda create: None
sys.argv = ["initlab", "worker", *sys.argv[2:]]
cli.main()
"""


def start_workers(tmp_path: Path, args: list[str], **env: str) -> tuple[subprocess.Popen, dict[str, dict]]:
    """Start `initlab worker ARGS`; returns it and, once every child has reported, what each saw."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("INITLAB_", "XLA_", "CUDA_"))}
    reports = tmp_path / "reports"
    reports.mkdir()
    log = open(tmp_path / "output.txt", "w")
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, str(reports), *args], cwd=ROOT,
                               env={**environ, "INITLAB_STATE_DIR": str(tmp_path), **env},
                               stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = sorted(reports.glob("*.json"))
        if len(found) >= 2 and all(path.stat().st_size for path in found):
            time.sleep(0.2)
            return process, {path.stem: json.loads(path.read_text()) for path in sorted(reports.glob("*.json"))}
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # the command and the children it started, nothing else
    process.wait()
    raise AssertionError(f"the workers did not start: {(tmp_path / 'output.txt').read_text()[-2000:]}")


def stop(process: subprocess.Popen, tmp_path: Path) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = (tmp_path / "output.txt").read_text()
    assert process.returncode == 0, output
    return output


@pytest.mark.parametrize("how", ["option", "environment"])
def test_one_worker_per_gpu_each_seeing_only_its_own(tmp_path, how):
    if how == "option":
        process, seen = start_workers(tmp_path, ["--gpus", "0,1"], INITLAB_KERAS_BACKEND="jax")
    else:
        process, seen = start_workers(tmp_path, [], INITLAB_WORKER_GPUS="0,1", INITLAB_KERAS_BACKEND="jax")
    try:
        assert seen == {
            f"initlab-gpu{gpu}": {"CUDA_VISIBLE_DEVICES": gpu, "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                                  "XLA_PYTHON_CLIENT_MEM_FRACTION": None, "KERAS_BACKEND": "jax"}
            for gpu in ("0", "1")}
    finally:
        output = stop(process, tmp_path)
    assert "GPUs 0, 1" in output


def test_a_set_memory_fraction_is_kept(tmp_path):
    # Preallocating a set share instead of none: the operator's choice wins.
    process, seen = start_workers(tmp_path, ["--gpus", "1,3"], XLA_PYTHON_CLIENT_PREALLOCATE="true",
                                  XLA_PYTHON_CLIENT_MEM_FRACTION=".45")
    stop(process, tmp_path)
    assert {name: (env["CUDA_VISIBLE_DEVICES"], env["XLA_PYTHON_CLIENT_PREALLOCATE"],
                   env["XLA_PYTHON_CLIENT_MEM_FRACTION"], env["KERAS_BACKEND"]) for name, env in seen.items()} == {
        "initlab-gpu1": ("1", "true", ".45", "tensorflow"), "initlab-gpu3": ("3", "true", ".45", "tensorflow")}


def test_gpu_workers_have_their_own_node_names_and_queues():
    launches = gpu_workers(["0", "1"], "box", ["initlab"], {"PATH": "/bin"}, Settings(keras_backend="jax"))
    assert [(launch.name, launch.gpu) for launch in launches] == [("box-gpu0", "0"), ("box-gpu1", "1")]
    for launch in launches:
        args = launch.args
        assert args[args.index("-n") + 1] == f"{launch.name}@%h"  # unique Celery node names on one host
        assert args[args.index("-Q") + 1] == "initlab"
        assert launch.env["CUDA_VISIBLE_DEVICES"] == launch.gpu and launch.env["PATH"] == "/bin"


def test_a_cpu_worker_gets_the_backend_and_no_device_pinning():
    env = worker_env({"PATH": "/bin", "TF_CPP_MIN_LOG_LEVEL": "0"}, Settings())
    assert env["KERAS_BACKEND"] == "tensorflow" and env["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in env and "XLA_PYTHON_CLIENT_PREALLOCATE" not in env
    # An unpinned JAX worker may still share a GPU with others: no preallocation either.
    assert worker_env({}, Settings(keras_backend="jax"))["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_onednn_is_on_unless_the_setting_or_the_environment_turns_it_off(monkeypatch):
    monkeypatch.delenv("INITLAB_ONEDNN", raising=False)
    assert worker_env({}, Settings())["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert worker_env({"TF_ENABLE_ONEDNN_OPTS": "0"}, Settings())["TF_ENABLE_ONEDNN_OPTS"] == "0"  # TensorFlow's own wins
    monkeypatch.setenv("INITLAB_ONEDNN", "false")
    assert worker_env({}, Settings())["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_up_starts_one_worker_per_gpu_and_the_probe_worker_on_the_first(monkeypatch):
    monkeypatch.delenv("INITLAB_WORKER_CONCURRENCY", raising=False)
    settings = Settings(worker_gpus="2,5", keras_backend="jax", queue="q")
    assert settings.worker_concurrency == 2  # the API splits a cell over the two GPU workers
    launches = up_workers(settings, {"PATH": "/bin"})
    assert [(launch.name, launch.gpu, launch.env["CUDA_VISIBLE_DEVICES"]) for launch in launches] == [
        ("initlab-gpu2", "2", "2"), ("initlab-gpu5", "5", "5"), ("initlab-probe", "2", "2")]
    assert [launch.args[launch.args.index("-Q") + 1] for launch in launches] == ["q", "q", "q.probe"]


def test_up_without_gpus_starts_the_cpu_workers_as_before(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # one set in the environment would win
    launches = up_workers(Settings(worker_concurrency=2, worker_threads=1, queue="q"), {"PATH": "/bin"})
    assert [(launch.name, launch.gpu) for launch in launches] == [("initlab-0", None), ("initlab-1", None),
                                                                  ("initlab-probe", None)]
    assert all("CUDA_VISIBLE_DEVICES" not in launch.env and launch.env["OMP_NUM_THREADS"] == "1"
               for launch in launches)


def test_gpu_ids_are_read_and_checked():
    assert parse_gpus(" 0, 1,1 ") == ["0", "1"]
    assert parse_gpus('["2", 3]') == ["2", "3"]
    assert parse_gpus("GPU-8d5f0c1e-aaaa") == ["GPU-8d5f0c1e-aaaa"]
    assert parse_gpus("") == []
    with pytest.raises(ValueError, match="not a GPU id"):
        parse_gpus("0,cuda:1")
    result = CliRunner().invoke(cli, ["worker", "--gpus", "first"])
    assert result.exit_code == 2
    assert "not a GPU id: 'first'" in result.output


# A CPU worker's stand-in: the first start exits 75 as the watchdog does on a stuck consumer; later ones stay up.
STUCK_ONCE = """
import os, sys, time
starts = os.path.join(sys.argv[2], "starts.txt")
with open(starts, "a") as out:
    out.write(os.environ.get("KERAS_BACKEND", "?") + chr(10))
if len(open(starts).read().split()) == 1:
    sys.exit(75)
with open(os.path.join(sys.argv[2], "pid.txt"), "w") as out:
    out.write(str(os.getpid()))
time.sleep(120)
"""


def _stuck_once_launch() -> str:
    """LAUNCH for a CPU worker (no --gpus) whose child is STUCK_ONCE."""
    return LAUNCH.replace("child = '''", "child = '''" + STUCK_ONCE + "\nraise SystemExit\n", 1).replace(
        "cli._require_state_dir", "cli.worker_command = launch.worker_command\ncli._require_state_dir", 1)


def test_a_cpu_worker_whose_consumer_got_stuck_is_started_again(tmp_path):
    # `initlab worker` on a bare CPU host used to exec Celery: a watchdog exit (75) ended it for good.
    script = _stuck_once_launch()
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("INITLAB_", "XLA_", "CUDA_"))}
    log_path = tmp_path / "output.txt"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                                   env={**environ, "INITLAB_STATE_DIR": str(tmp_path)},
                                   stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    starts = tmp_path / "starts.txt"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if starts.exists() and starts.read_text().count("\n") >= 2:
            break
        time.sleep(0.1)
    try:
        assert starts.exists() and starts.read_text() == "tensorflow\ntensorflow\n", log_path.read_text()[-2000:]
        assert process.poll() is None, "the command stays up with its fresh worker"
    finally:
        output = stop(process, tmp_path)
    assert "watchdog found the broker consumer stuck" in output.replace("\n", " ")


def test_a_worker_does_not_outlive_its_supervisor_killed_outright(tmp_path):
    # SIGKILL leaves the supervisor no chance to stop its children: the kernel ends them (PR_SET_PDEATHSIG).
    script = _stuck_once_launch()
    (tmp_path / "starts.txt").write_text("earlier\n")  # so the first start stays up
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("INITLAB_", "XLA_", "CUDA_"))}
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                               env={**environ, "INITLAB_STATE_DIR": str(tmp_path)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    pid_file = tmp_path / "pid.txt"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (pid_file.exists() and pid_file.read_text()):
            time.sleep(0.1)
        child = int(pid_file.read_text())
        process.kill()
        process.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{child}").exists() and \
                Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
            time.sleep(0.1)
        alive = Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z"
        assert not alive, "the worker kept running after its supervisor was SIGKILLed"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
