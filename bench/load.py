"""The study page under load while a study trains (issue 11): p50 / p95 per read endpoint.

For each backend it starts what users run, as real processes: a fresh database (SQLite in a
temporary INITLAB_STATE_DIR with the filesystem broker, or a new PostgreSQL database with
Redis), ``initlab migrate``, ``initlab api`` and one ``initlab worker``. It submits a study
that keeps training for the whole window (seed 001's net, several initializers and seeds),
waits until the first epoch is recorded, then lets ``--clients`` threads read for
``--seconds``. Each client does what an open study page does in one refresh (study.js,
hist_panel.js, study_stats.js, study_failures.js), plus the studies list and the per-run
endpoints a user opens, over one kept-alive connection, then starts again at once: a
worst case of many pages refreshing together. The latest epoch is taken from the study
answer, as the page does. Afterwards the study is cancelled and everything is stopped
(the PostgreSQL database dropped).

Prints per endpoint: count, p50, p95, max (ms), then one line per backend:
``backend=NAME worst_p95_ms=X endpoint=...``. The clients run in this process (http.client,
one thread each): on a small machine they share its cores with the server and the
training, which the figures include, as they include a browser on the same machine.

    python bench/load.py                                   # both backends, 20 clients, 60 s
    python bench/load.py --backend sqlite --seconds 15 --clients 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import processes  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/7"  # not 0: the test suite's


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--train-samples", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=60, help="planned epochs: more than the window needs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-dir", default=os.environ.get("INITLAB_DATA_DIR", "/work/shared/datasets"))
    parser.add_argument("--keep", action="store_true", help="keep the state folder and logs")
    return parser.parse_args()


def study_body(args: argparse.Namespace) -> dict:
    """Seed 001's comparison (examples/seed-mnist.json) on fewer samples and for longer."""
    return {
        "name": "bench: load", "dataset": {"name": "mnist", "train_samples": args.train_samples,
                                           "validation_samples": 1000},
        "model": {"hidden_units": [128, 64], "activation": "relu"},
        "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": args.epochs},
        "initializers": ["zeros", {"id": "random_normal", "params": {"stddev": 0.01}}, "glorot_uniform", "he_uniform"],
        "seeds": list(range(args.seeds)),
    }


def page_mix(study_id: int, run_id: int, latest: int) -> list[tuple[str, str]]:
    """(endpoint name, path): one refresh of the study page, the studies list, and a run's views."""
    s = f"/api/studies/{study_id}"
    return [
        ("studies list", "/api/studies"),
        ("study", s),
        ("summary (charts)", f"{s}/summary?stats=false"),
        ("gradients", f"{s}/gradients"),
        ("histograms epoch 0", f"{s}/histograms?kind=kernel&epoch=0&range=full"),
        ("histograms latest", f"{s}/histograms?kind=kernel&epoch={latest}&range=full"),
        ("theory", f"{s}/theory?kind=kernel"),
        ("run histograms", f"/api/runs/{run_id}/histograms?layer=dense_0&kind=kernel&range=full"),
        ("run percentiles", f"/api/runs/{run_id}/percentiles?layer=dense_0&kind=kernel"),
        ("failures", f"{s}/failures"),
        ("summary + statistics", f"{s}/summary?runs=false&max_points=2&threshold=90"),
        ("metrics", f"{s}/metrics"),
        ("run", f"/api/runs/{run_id}"),
        ("run layers", f"/api/runs/{run_id}/layers"),
    ]


class Client(threading.Thread):
    def __init__(self, port: int, study_id: int, stop_at: float, timings: dict, errors: list, lock) -> None:
        super().__init__(daemon=True)
        self.port, self.study_id, self.stop_at = port, study_id, stop_at
        self.timings, self.errors, self.lock = timings, errors, lock

    def get(self, connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes, float]:
        start = time.perf_counter()
        connection.request("GET", path, headers={"Host": f"127.0.0.1:{self.port}"})
        response = connection.getresponse()
        body = response.read()
        return response.status, body, 1000 * (time.perf_counter() - start)

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        time.sleep(random.random())  # spread the clients over the cycle
        while time.monotonic() < self.stop_at:
            status, body, elapsed = self.get(connection, f"/api/studies/{self.study_id}")
            study = json.loads(body)
            runs = study["runs"]
            latest = max(run["epoch"] or 0 for run in runs)
            running = [run["id"] for run in runs if run["status"] == "running"] or [runs[0]["id"]]
            mix = page_mix(self.study_id, random.choice(running), latest)
            with self.lock:
                self.timings["study"].append(elapsed)
            for name, path in mix:
                if name == "study" or time.monotonic() >= self.stop_at:
                    continue
                try:
                    status, body, elapsed = self.get(connection, path)
                except (OSError, http.client.HTTPException) as exc:
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                    with self.lock:
                        self.errors.append(f"{name}: {exc!r}")
                    continue
                with self.lock:
                    if status != 200:
                        self.errors.append(f"{name}: HTTP {status} {body[:200]!r}")
                    self.timings[name].append(elapsed)
        connection.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def create_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_backend(backend: str, args: argparse.Namespace) -> tuple[str, float, str]:
    state = Path(tempfile.mkdtemp(prefix=f"initlab-load-{backend}-"))
    env = {"INITLAB_STATE_DIR": str(state / "state"), "INITLAB_DATA_DIR": args.data_dir,
           "INITLAB_QUEUE": f"initlab-load-{uuid.uuid4().hex[:8]}", "INITLAB_DATABASE_URL": "",
           "INITLAB_BROKER_URL": ""}
    database = None
    if backend == "postgres":
        database = f"initlab_load_{uuid.uuid4().hex[:8]}"
        create_database(database)
        env.update({"INITLAB_DATABASE_URL": f"{POSTGRES}/{database}", "INITLAB_BROKER_URL": REDIS})
    port = processes.free_port()
    api = worker = None
    try:
        processes.run_cli(["migrate"], env)
        api = processes.start(["api", "--port", str(port)], env, state / "api.log")
        worker = processes.start(["worker", "--name", f"load-{backend}"], env, state / "worker.log")
        base = f"http://127.0.0.1:{port}"
        processes.wait_until_up(base)
        status, study = processes.http("POST", f"{base}/api/studies", study_body(args))
        assert status == 201, study
        study_id = study["id"]

        def first_epoch():
            _, found = processes.http("GET", f"{base}/api/studies/{study_id}")
            return any((run["epoch"] or 0) >= 1 for run in found["runs"])

        started = time.monotonic()
        processes.wait_for(first_epoch, timeout=600, interval=1.0, what="the first recorded epoch")
        print(f"\n[{backend}] first epoch after {time.monotonic() - started:.0f} s; {args.clients} clients for "
              f"{args.seconds:.0f} s; load average before: {os.getloadavg()[0]:.2f}", flush=True)
        timings: dict[str, list[float]] = defaultdict(list)
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds
        clients = [Client(port, study_id, stop_at, timings, errors, lock) for _ in range(args.clients)]
        loads = []
        for client in clients:
            client.start()
        while any(client.is_alive() for client in clients):
            time.sleep(5)
            loads.append(os.getloadavg()[0])
        _, final = processes.http("GET", f"{base}/api/studies/{study_id}")
        epochs = [run["epoch"] or 0 for run in final["runs"]]
        processes.http("POST", f"{base}/api/studies/{study_id}/cancel", {})
        return report(backend, timings, errors, loads, epochs)
    finally:
        for process in (api, worker):
            if process is not None:
                processes.stop(process)
        if database:
            drop_database(database)
        if args.keep:
            print(f"[{backend}] kept {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


def report(backend: str, timings: dict, errors: list, loads: list, epochs: list) -> tuple[str, float, str]:
    names = [name for name, _ in page_mix(0, 0, 0)]
    print(f"[{backend}] load average (1 min) during the window: {min(loads):.2f}..{max(loads):.2f}; "
          f"run epochs at the end: {min(epochs)}..{max(epochs)}; errors: {len(errors)}")
    for error in errors[:5]:
        print(f"  error: {error}")
    print(f"{'endpoint':<22} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    worst, worst_name = 0.0, ""
    for name in names:
        values = timings.get(name) or [float("nan")]
        p95 = percentile(values, 0.95)
        if p95 > worst:
            worst, worst_name = p95, name
        print(f"{name:<22} {len(timings.get(name, [])):6d} {statistics.median(values):8.1f} {p95:8.1f} "
              f"{max(values):8.1f}")
    print(f"backend={backend} worst_p95_ms={worst:.1f} endpoint={worst_name}", flush=True)
    return backend, worst, worst_name


def main() -> None:
    args = parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"machine: {processes_cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()}")
    results = [run_backend(backend, args) for backend in backends]
    for backend, worst, name in results:
        print(f"backend={backend} worst_p95_ms={worst:.1f} endpoint={name}")


def processes_cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
