"""Fixtures for the browser tests: a real uvicorn server on a fresh SQLite state dir,
studies written straight through storage, and a headless Debian Chromium driven by Playwright.

The browser is the system one (/usr/bin/chromium); Playwright never downloads anything.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from support import processes
from app.storage import runs as run_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("dense_0", "dense_1", "output")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _schema(env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"alembic upgrade head failed:\n{result.stderr[-2000:]}"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """Start `uvicorn app.main:app` on a free port with its own state dir; this process shares it.

    Yields the base URL. The environment of this process points at the same SQLite file, so a
    test can write runs and metrics through app.storage while the page watches.
    """
    from app.settings import get_settings

    state = tmp_path_factory.mktemp("initlab-state")
    overrides = {"INITLAB_STATE_DIR": str(state), "INITLAB_DATABASE_URL": "", "INITLAB_BROKER_URL": ""}
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    get_settings.cache_clear()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    state.mkdir(parents=True, exist_ok=True)
    _schema(env)
    port = _free_port()
    log = open(state / "uvicorn.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"uvicorn exited:\n{(state / 'uvicorn.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/initializers", timeout=2) as response:
                    if response.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not answer within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        processes.stop(server, timeout=10)  # the whole process group, SIGKILL after 10 s
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def _stats(values: np.ndarray, kind: str) -> dict:
    """The worker's own summary (moments, 64-bin histogram, quantiles), as the recorder writes it."""
    from worker.training.stats import tensor_summary

    return {"kind": kind, **tensor_summary(values)}


def _layers(rng: np.random.Generator, scale: float, epoch: int, diverged: bool) -> list[dict]:
    shapes = {"dense_0": (784, 32), "dense_1": (32, 16), "output": (16, 10)}
    rows = []
    for index, name in enumerate(LAYERS):
        fan_in, fan_out = shapes[name]
        # The spread grows and skews with training, so every epoch draws a different histogram.
        kernel = rng.normal(0.02 * epoch, scale * np.sqrt(2 / fan_in) * (1 + 0.35 * epoch), size=(fan_in, fan_out))
        bias = rng.normal(0.0, 0.01 * epoch, size=fan_out) if epoch else np.zeros(fan_out)
        gradient = rng.normal(0.0, 0.001 / (1 + epoch), size=(fan_in, fan_out))
        if diverged and name == "dense_1":
            kernel[0, :3] = [np.nan, np.inf, -np.inf]
        for kind, values in (("kernel", kernel), ("bias", bias), ("gradient", gradient)):
            rows.append({"layer": name, "index": index, **_stats(values, kind)})
    return rows


@pytest.fixture
def fake_layers():
    """layers(seed, epoch) -> record_layers rows for dense_0, dense_1, output (kernel, bias, gradient)."""
    return lambda seed, epoch: _layers(np.random.default_rng(seed), 1.0, epoch, False)


@pytest.fixture(scope="module")
def finished_study(live_server) -> dict:
    """2 initializers x 2 seeds, 3 epochs, 3 layers; glorot_uniform seed 0 diverges (NaN/Inf) and fails."""
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    study = studies.create_study(StudyCreate(
        name="He vs Glorot (fixture)",
        dataset={"name": "fashion_mnist", "train_samples": 1000, "validation_samples": 500},
        model={"hidden_units": [32, 16], "activation": "relu"},
        training={"optimizer": "adam", "learning_rate": 0.01, "batch_size": 64, "epochs": 3},
        initializers=["he_normal", "glorot_uniform"],
        seeds=[0, 1],
    ))[0]
    for number, run in enumerate(study.runs):
        diverges = run.initializer == "glorot_uniform" and run.seed == 0
        rng = np.random.default_rng(number)
        run_store.claim_run(run.id, worker_host="fixture-host")
        run_store.set_device(run.id, "CPU:0")
        scale = 1.0 if run.initializer == "he_normal" else 0.7
        for epoch in range(0, 4):
            records.record_layers(run.id, epoch, _layers(rng, scale, epoch, diverges and epoch == 3))
            if epoch == 0:
                continue
            accuracy = 0.6 + 0.08 * epoch + 0.02 * run.seed + (0.03 if run.initializer == "he_normal" else 0.0)
            start = 1.2 + 0.1 * run.seed + (0.25 if run.initializer == "glorot_uniform" else 0.0)
            metrics = {"loss": start / epoch, "accuracy": accuracy, "val_loss": (start + 0.1) / epoch ** 0.8,
                       "val_accuracy": accuracy - 0.03, "seconds": 1.5}
            if diverges and epoch == 3:
                metrics.update(loss=float("nan"), accuracy=0.1, val_loss=float("inf"), val_accuracy=0.1)
            records.record_epoch(run.id, epoch, metrics)
        if diverges:
            run_store.finish_run(run.id, "failed", error="loss became NaN at epoch 3 (diverged)")
        else:
            run_store.finish_run(run.id, "succeeded")
    return studies.get_study(study.id).model_dump(mode="json")


