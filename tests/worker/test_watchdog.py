"""A worker whose consumer went quiet while its own queue holds messages exits with 75;
messages for another queue (the signal probes') never make a training worker exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import sys, time
    from worker import watchdog
    queues = sys.argv[1].split(",")
    busy = sys.argv[2] == "busy"
    if busy:
        watchdog._task_started()
    for _ in range(6):
        watchdog.check_consumer(queues)
        time.sleep(0.25)
    print("still alive")
""")


def message(state: Path, queue: str, name: str) -> None:
    folder = state / "broker" / "in"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"1000_{name}.{queue}.msg").write_text("{}")


def run_child(state: Path, queues: str, busy: bool = False) -> subprocess.CompletedProcess:
    env = {"INITLAB_STATE_DIR": str(state), "INITLAB_CONSUMER_STALL_S": "0.5", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", CHILD, queues, "busy" if busy else "idle"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


def test_an_idle_worker_with_waiting_messages_exits_75(state):
    message(state, "initlab", "a")
    result = run_child(state, "initlab")
    assert result.returncode == 75, result.stdout + result.stderr
    assert "still alive" not in result.stdout


def test_messages_of_another_queue_are_not_this_workers(state):
    message(state, "initlab.probe", "a")
    result = run_child(state, "initlab")
    assert result.returncode == 0 and "still alive" in result.stdout, result.stderr
    assert run_child(state, "initlab.probe").returncode == 75


def test_a_busy_worker_is_not_stuck(state):
    message(state, "initlab", "a")
    result = run_child(state, "initlab", busy=True)
    assert result.returncode == 0 and "still alive" in result.stdout, result.stderr


def test_an_empty_queue_is_not_stuck(state):
    result = run_child(state, "initlab")
    assert result.returncode == 0 and "still alive" in result.stdout, result.stderr
