"""Redis restarted (it keeps nothing on disk) and flushed while a study has queued and
running runs: the reconciler finds queued runs that no message carries and sends them
again; the running run finishes; every run trains exactly once."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from support import processes
from support.faults import record_counts, row_counts
from support.require import require_program

pytestmark = pytest.mark.slow

EPOCHS = 3
STUDY = {"name": "broker lost", "dataset": {"name": "mnist", "train_samples": 4000, "validation_samples": 1000},
         "model": {"hidden_units": [32]}, "training": {"epochs": EPOCHS, "batch_size": 32},
         "initializers": ["he_uniform"], "seeds": [0, 1, 2]}


class PrivateRedis:
    """A redis-server of this test's own, so restarting it disturbs nobody else."""

    def __init__(self) -> None:
        self.port = processes.free_port()
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                                  text=True).stdout.strip() == "PONG", 20, what="redis")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def flushall(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], check=True, capture_output=True)


@pytest.fixture
def private_redis():
    require_program("redis-server")  # and redis-cli, from the same Debian package
    require_program("redis-cli")
    redis = PrivateRedis()
    yield redis
    redis.stop()


def test_queued_runs_survive_a_broker_restart_and_flush(make_stack, private_redis, postgres_url):
    stack = make_stack(INITLAB_BROKER_URL=f"redis://127.0.0.1:{private_redis.port}/0", INITLAB_RUN_LEASE_S="6",
                       INITLAB_HEARTBEAT_INTERVAL_S="0.5", INITLAB_DISPATCH_GRACE_S="2", INITLAB_CONSUMER_STALL_S="8",
                       # one run at a time, each alone, so two runs are still queued when the broker goes
                       INITLAB_WORKER_CONCURRENCY="1", INITLAB_FUSE_MAX="1")
    stack.start_api()
    stack.start_worker()
    _, study = processes.http("POST", f"{stack.base}/api/studies", STUDY)
    first = f"{stack.base}/api/runs/{study['runs'][0]['id']}"
    processes.wait_for(lambda: processes.http("GET", first)[1]["batch"] > 0, 120, interval=0.2, what="training")
    queued = [run for run in processes.http("GET", f"{stack.base}/api/studies/{study['id']}")[1]["runs"]
              if run["status"] == "queued"]
    assert len(queued) == 2

    private_redis.stop()  # the broker goes away with every message in it ...
    status, ready = processes.http("GET", f"{stack.base}/readyz")
    assert status == 503 and json.loads(ready)["broker"].startswith("unreachable"), ready
    time.sleep(1)
    private_redis.start()  # ... and comes back empty
    private_redis.flushall()

    # Celery's Redis consumer may go quiet after a broker restart (celery#8030, #8091); the
    # worker's watchdog then exits it, and `initlab worker` starts a fresh one (into the same
    # log); should the command itself end with 75, a supervisor would start it again, as here.
    def supervise() -> bool:
        if stack.workers[-1].poll() is not None:
            assert stack.workers[-1].returncode == 75, stack.worker_log()
            stack.start_worker()
        study_now = processes.http("GET", f"{stack.base}/api/studies/{study['id']}")[1]
        return all(run["status"] == "succeeded" for run in study_now["runs"])

    processes.wait_for(supervise, 240, interval=1.0, what="every run to finish")
    done = processes.http("GET", f"{stack.base}/api/studies/{study['id']}")[1]
    runs = done["runs"]
    assert [run["status"] for run in runs] == ["succeeded"] * 3, (runs, stack.worker_log())
    assert [run["attempts"] for run in runs] == [1, 1, 1]  # none trained twice
    duplicated = 0
    for run in runs:
        epoch_rows, distinct_epochs, layer_rows = row_counts(postgres_url, run["id"])
        assert (epoch_rows, distinct_epochs, layer_rows) == (EPOCHS, EPOCHS, (EPOCHS + 1) * 2 * 3)
        duplicated += epoch_rows - distinct_epochs
    assert "sending them again" in stack.worker_log(tail=None)
    record_counts("broker restarted and flushed", submitted=3, completed=3, duplicated=duplicated, lost=0)
