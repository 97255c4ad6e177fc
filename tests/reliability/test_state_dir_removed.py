"""The state directory removed under a running deployment, and a state directory that cannot be
used at start (issue 11, §7).

`rm -rf` of INITLAB_STATE_DIR while the API and a worker run on the embedded default (SQLite +
filesystem broker): the processes still hold the deleted SQLite file open, and SQLite would go on
reading and writing it, so `/readyz` said ok, studies were accepted (201) and trained into the
deleted file, and all of it was lost at the next start. Now every process remembers the file's
identity (device, inode) and refuses: `/readyz` answers 503 naming the file, a new study 503, and
the worker stops the run it was training and says why. At start, a missing parent or a read-only
state directory is one line on stderr naming the path and the problem, with a non-zero status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from support import processes

pytestmark = pytest.mark.slow

LONG = {"name": "trains while its state goes", "dataset": {"name": "mnist", "train_samples": 6000,
                                                          "validation_samples": 500},
        "model": {"hidden_units": [32]}, "training": {"epochs": 50, "batch_size": 16},
        "initializers": ["he_normal"], "seeds": [0]}
SMALL = {**LONG, "name": "after the state went", "training": {"epochs": 1}}


def _embedded(tmp_path) -> dict[str, str]:
    return {"INITLAB_STATE_DIR": str(tmp_path / "state"), "INITLAB_DATABASE_URL": "", "INITLAB_BROKER_URL": "",
            "INITLAB_PORT": str(processes.free_port()), "INITLAB_RUN_LEASE_S": "3",
            "INITLAB_HEARTBEAT_INTERVAL_S": "0.5", "INITLAB_WORKER_THREADS": "1"}


def test_removing_the_state_directory_stops_the_api_and_the_worker_accepting_work(data_dir, tmp_path):
    env = {**_embedded(tmp_path), "INITLAB_DATA_DIR": str(data_dir)}
    state = tmp_path / "state"
    processes.run_cli(["migrate"], env)
    api = processes.start(["api", "--port", env["INITLAB_PORT"]], env, tmp_path / "api.log")
    worker = processes.start(["worker"], env, tmp_path / "worker.log")
    base = f"http://127.0.0.1:{env['INITLAB_PORT']}"
    try:
        processes.wait_until_up(base)
        assert processes.http("GET", f"{base}/readyz")[0] == 200
        status, study = processes.http("POST", f"{base}/api/studies", LONG)
        assert status == 201, study
        run_url = f"{base}/api/runs/{study['runs'][0]['id']}"
        processes.wait_for(lambda: processes.http("GET", run_url)[1]["batch"] > 0, 120, interval=0.2,
                           what="training to start")

        shutil.rmtree(state)  # rm -rf while it trains

        database = str(state / "initlab.sqlite")
        status, ready = processes.http("GET", f"{base}/readyz")
        assert status == 503, ready  # it said ok
        ready = json.loads(ready)  # an error status comes back as text
        assert database in ready["database"] and "removed" in ready["database"], ready
        status, refused = processes.http("POST", f"{base}/api/studies", SMALL)
        assert status == 503, refused  # it answered 201, and trained the study into the deleted file
        assert "removed" in refused and "initlab.sqlite" in refused
        log = tmp_path / "worker.log"
        processes.wait_for(lambda: '"event":"run_fenced"' in log.read_text() and "was removed" in log.read_text(),
                           30, what="the worker to stop the run it trained")
        assert worker.poll() is None and api.poll() is None  # both still answer, and say why they refuse
        assert '"event":"run_finished"' not in log.read_text()  # nothing more was "stored"
    finally:
        processes.stop(worker)
        processes.stop(api)


def _cli(args: list[str], env: dict[str, str], prefix: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *processes.INITLAB, *args], cwd=processes.ROOT, env=processes.child_env(env),
                          capture_output=True, text=True, timeout=120)


def _one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_state_directory_with_a_missing_parent_fails_at_start_in_one_line(tmp_path):
    env = {**_embedded(tmp_path), "INITLAB_STATE_DIR": str(tmp_path / "not-mounted" / "state")}
    for command in (["migrate"], ["up"]):
        _one_line(_cli(command, env), str(tmp_path / "not-mounted" / "state"), "parent", "does not exist")
    for command in (["api"], ["worker"]):
        _one_line(_cli(command, env), str(tmp_path / "not-mounted" / "state"), "does not exist", "initlab migrate")
    assert not (tmp_path / "not-mounted").exists()  # never created behind the user's back


def _read_only(folder) -> list[str]:
    """A command prefix under which ``folder`` is read-only (root ignores directory modes)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{folder}' '{folder}'"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only mount as root here: {probe.stderr.strip()}")
    return ["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{folder}' '{folder}' && exec \"$@\"", "sh"]


def test_a_read_only_state_directory_fails_at_start_in_one_line(tmp_path):
    env = _embedded(tmp_path)
    state = tmp_path / "state"
    processes.run_cli(["migrate"], env)  # a migrated deployment whose volume is now read-only
    prefix = _read_only(state)
    try:
        for command in (["migrate"], ["up"], ["api"], ["worker"]):
            _one_line(_cli(command, env, prefix), str(state), "not writable")
    finally:
        state.chmod(0o755)
