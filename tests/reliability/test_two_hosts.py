"""Many hosts on one machine: worker "hosts" are separate processes with their own host name
(the Celery node name's, ``-n name@hostA``), state directory and data directory, sharing only
what real hosts share: one PostgreSQL and one Redis (INITLAB_DATABASE_URL, INITLAB_BROKER_URL).

A 12-run study spreads over two hosts (each run records its host); one host is SIGKILLed in the
middle of its share, and every run still ends succeeded exactly once, its lost share trained
again on the other host. A study with ``"queue": "gpu"`` trains on the worker that serves that
queue (a JAX worker here, on the CPU), one without a queue on the TensorFlow worker of INITLAB_QUEUE.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from support import processes
from support.faults import record_counts, row_counts

pytestmark = pytest.mark.slow

EPOCHS = 2
STUDY = {"name": "two hosts", "dataset": {"name": "mnist", "train_samples": 3000, "validation_samples": 300},
         "model": {"hidden_units": [32]}, "training": {"epochs": EPOCHS, "batch_size": 32},
         "initializers": ["glorot_uniform", "he_normal", "lecun_normal", "orthogonal"], "seeds": [0, 1, 2]}
TINY = {"dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 100},
        "model": {"hidden_units": [16]}, "training": {"epochs": 1}, "initializers": ["he_normal"], "seeds": [0]}
FAST_LEASE = {"INITLAB_RUN_LEASE_S": "4", "INITLAB_HEARTBEAT_INTERVAL_S": "0.5"}
ONE_THREAD = {name: "1" for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS")}


class Hosts:
    """Worker processes, each a "host" of its own: node name, state directory, data directory."""

    def __init__(self, stack, data_dir: Path, root: Path) -> None:
        self.stack, self.data_dir, self.root = stack, data_dir, root
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, host: str, queues: list[str], **env: str) -> subprocess.Popen:
        home = self.root / host
        (home / "state").mkdir(parents=True)
        data = home / "data" / "mnist"
        data.mkdir(parents=True)
        for file in sorted((self.data_dir / "mnist").iterdir()):  # its own copy of the data set, as a host has
            (data / file.name).symlink_to(file)
        command = [sys.executable, "-m", "celery", "-A", "worker.celery_app:celery_app", "worker", "--pool=solo",
                   "-Q", ",".join(queues), "-n", f"initlab@{host}", "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "--loglevel", "INFO"]
        environment = processes.child_env({**self.stack.env, **ONE_THREAD, "MALLOC_ARENA_MAX": "2",
                                           "INITLAB_STATE_DIR": str(home / "state"),
                                           "INITLAB_DATA_DIR": str(home / "data"), **env})
        log = open(self.root / f"{host}.log", "w")
        process = subprocess.Popen(command, cwd=processes.ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes[host] = process
        return process

    def log(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}" for path in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        for process in self.processes.values():
            processes.stop(process)


@pytest.fixture
def hosts(make_stack, data_dir, tmp_path):
    started: list[Hosts] = []

    def build(**settings: str) -> Hosts:
        stack = make_stack(**settings)
        stack.start_api()
        made = Hosts(stack, data_dir, tmp_path / "hosts")
        started.append(made)
        return made

    yield build
    for made in started:
        made.stop()


def _workers(base: str) -> dict[str, dict]:
    return {worker["host"]: worker for worker in processes.http("GET", f"{base}/api/workers")[1]["workers"]}


def _ready(base: str, *names: str) -> dict[str, dict]:
    """Wait until every named host has announced itself, with its device."""
    def announced():
        listed = _workers(base)
        return listed if all(listed.get(name, {}).get("state") == "idle" and listed[name]["device"]
                             for name in names) else None

    return processes.wait_for(announced, 120, interval=0.5, what=f"workers {names} to announce themselves")


def test_a_study_spreads_over_two_hosts_and_survives_one_being_killed(hosts, postgres_url):
    group = hosts(**FAST_LEASE)
    base = group.stack.base
    queue = group.stack.env["INITLAB_QUEUE"]
    for name in ("hostA", "hostB"):
        group.start(name, [queue])
    _ready(base, "hostA", "hostB")

    status, study = processes.http("POST", f"{base}/api/studies", STUDY)
    assert status == 201, study
    study_url = f"{base}/api/studies/{study['id']}"

    def both_training():
        # Two groups of 6 (INITLAB_WORKER_CONCURRENCY=2), one message each; a solo worker takes one
        # message at a time (prefetch 1, acks late), so each host gets one group. A group's runs are
        # all claimed before it trains, so once one of them has progress, all six are running.
        runs = processes.http("GET", study_url)[1]["runs"]
        on = {name: [run for run in runs if run["status"] == "running"
                     and (run["worker_host"] or "").startswith(f"{name}:")] for name in ("hostA", "hostB")}
        return on if all(any(run["batch"] > 0 for run in share) for share in on.values()) else None

    on = processes.wait_for(both_training, 120, interval=0.2, what="both hosts to train their share")
    killed = {run["id"] for run in on["hostA"]}
    assert len(killed) + len(on["hostB"]) == 12, on
    assert _workers(base)["hostA"]["current_runs"]  # the panel says what hostA trains
    processes.stop(group.processes["hostA"], signal.SIGKILL)

    done = processes.wait_for_study(base, study["id"], timeout=240)
    runs = done["runs"]
    assert [run["status"] for run in runs] == ["succeeded"] * 12, (runs, group.log())
    for run in runs:
        host = run["worker_host"].partition(":")[0]
        assert host == "hostB", run  # hostA finished nothing: its share was trained again on hostB
        assert run["attempts"] == (2 if run["id"] in killed else 1), run
        epoch_rows, distinct_epochs, _layer_rows = row_counts(postgres_url, run["id"])
        assert (epoch_rows, distinct_epochs) == (EPOCHS, EPOCHS), run
    # The panel: hostA silent for three beats is lost; hostB, its last group done, idle.
    def states():
        listed = _workers(base)
        return (listed["hostA"]["state"], listed["hostB"]["state"]) == ("lost", "idle")

    processes.wait_for(states, 30, what="hostA lost and hostB idle in GET /api/workers")
    record_counts("one of two hosts SIGKILLed mid-study", submitted=12, completed=12, duplicated=0, lost=0)


def test_a_study_with_a_queue_trains_on_the_worker_that_serves_it(hosts):
    gpu = f"gpu-{uuid.uuid4().hex[:6]}"
    group = hosts()
    base = group.stack.base
    group.start("cpuhost", [group.stack.env["INITLAB_QUEUE"]])
    # The GPU host's worker, on JAX as the GPU path is (on this machine's CPU).
    group.start("gpuhost", [gpu], KERAS_BACKEND="jax", INITLAB_KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    listed = _ready(base, "cpuhost", "gpuhost")
    assert (listed["gpuhost"]["backend"], listed["cpuhost"]["backend"]) == ("jax", "tensorflow")
    assert gpu in processes.http("GET", f"{base}/api/workers")[1]["queues"]

    refused = processes.http("POST", f"{base}/api/studies", {**TINY, "name": "nowhere", "queue": "tpu"})
    assert refused[0] == 422 and '"field":"queue"' in refused[1].replace(" ", "")
    ids = {}
    for name, extra in (("routed", {"queue": gpu}), ("default", {})):
        status, study = processes.http("POST", f"{base}/api/studies", {**TINY, "name": name, **extra})
        assert status == 201, study
        ids[name] = study["id"]
    hosts_of = {}
    for name, study_id in ids.items():
        done = processes.wait_for_study(base, study_id, timeout=180)
        assert [run["status"] for run in done["runs"]] == ["succeeded"], (done, group.log())
        hosts_of[name] = {run["worker_host"].partition(":")[0] for run in done["runs"]}
    assert hosts_of == {"routed": {"gpuhost"}, "default": {"cpuhost"}}
