"""GET /api/studies/{id}/export on a real migrated SQLite database.

A study is written straight through the storage layer, as a worker writes it (the worker's own
tensor summaries, a run that diverges to NaN/Inf), then exported in every format and read back:
the CSV against the API's own metrics and layer answers, the JSON strictly, the TensorBoard zip
by a real `tensorboard --logdir` process over HTTP. The API process must not import TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from support import processes
from worker.training.stats import gradient_summary, tensor_summary
from app.storage import runs as run_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHAPES = (("dense_0", (784, 12)), ("output", (12, 10)))
EPOCHS = 2


def write_study() -> int:
    """glorot_uniform and zeros x seeds 0, 1; zeros seed 1 diverges at the last epoch (NaN loss, Inf val_loss)."""
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    study = studies.create_study(StudyCreate(
        name="Export me", dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        model={"hidden_units": [12]}, training={"epochs": EPOCHS}, initializers=["glorot_uniform", "zeros"], seeds=[0, 1]))[0]
    for number, run in enumerate(study.runs):
        rng = np.random.default_rng(number)
        diverges = run.initializer == "zeros" and run.seed == 1
        run_store.claim_run(run.id, worker_host="test")
        for epoch in range(EPOCHS + 1):
            rows = []
            for index, (layer, shape) in enumerate(SHAPES):
                kernel = rng.normal(0, 0.05 * (1 + epoch), size=shape) if run.initializer != "zeros" or epoch else np.zeros(shape)
                if diverges and epoch == EPOCHS:
                    kernel[0, :2] = [np.nan, np.inf]
                for kind, summary in (("kernel", tensor_summary(kernel)), ("bias", tensor_summary(np.zeros(shape[1]))),
                                      ("gradient", gradient_summary(rng.normal(0, 1e-3, size=shape)))):
                    rows.append({"layer": layer, "index": index, "kind": kind, **summary})
            records.record_layers(run.id, epoch, rows)
            if epoch:
                metrics = {"loss": 1.0 / epoch, "accuracy": 0.6 + 0.1 * epoch, "val_loss": 1.1 / epoch,
                           "val_accuracy": 0.55 + 0.1 * epoch + 0.01 * run.seed, "seconds": 0.5}
                if diverges and epoch == EPOCHS:
                    metrics.update(loss=math.nan, val_loss=math.inf)
                records.record_epoch(run.id, epoch, metrics)
        run_store.finish_run(run.id, "diverged" if diverges else "succeeded", diverged_epoch=EPOCHS if diverges else None)
    return study.id


@pytest.fixture
def exported(sqlite_app):
    return sqlite_app, write_study()


def _number(text):
    return None if text in ("", None) else float(text)


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):  # the API's "NaN"/"Infinity"
        a, b = float(a), float(b)
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_csv_matches_the_api_answers(exported):
    client, study_id = exported
    response = client.get(f"/api/studies/{study_id}/export?format=csv")
    assert response.status_code == 200 and response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="initlab-study-{study_id}-export-me.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))

    metrics = client.get(f"/api/studies/{study_id}/metrics").json()
    assert [[epoch["epoch"] for epoch in run["epochs"]] for run in metrics["runs"]] == [[1, 2]] * 4
    for run in metrics["runs"]:
        for epoch in run["epochs"]:
            got = {r["statistic"]: r["value"] for r in rows if r["table"] == "metrics" and r["run_id"] == str(run["run_id"])
                   and r["epoch"] == str(epoch["epoch"])}
            assert all(_same(_number(got[name]), epoch[name]) for name in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"))
    diverged = next(r for r in metrics["runs"] if r["initializer"] == "zeros" and r["seed"] == 1)
    cells = {r["statistic"]: r["value"] for r in rows if r["run_id"] == str(diverged["run_id"]) and r["table"] == "metrics"
             and r["epoch"] == str(EPOCHS)}
    assert cells["loss"] == "NaN" and cells["val_loss"] == "Infinity"
    assert {r["status"] for r in rows if r["run_id"] == str(diverged["run_id"])} == {"diverged"}

    run_ids = {int(r["run_id"]) for r in rows}
    assert run_ids == {run["run_id"] for run in metrics["runs"]}
    for run_id in run_ids:
        for epoch in range(EPOCHS + 1):
            layers = client.get(f"/api/runs/{run_id}/layers?epoch={epoch}").json()["layers"]
            assert [layer["layer"] for layer in layers] == [name for name, _ in SHAPES]
            for layer in layers:
                for kind in ("kernel", "bias", "gradient"):
                    mine = [r for r in rows if r["run_id"] == str(run_id) and r["epoch"] == str(epoch)
                            and r["layer"] == layer["layer"] and r["kind"] == kind]
                    stats = {r["statistic"]: r["value"] for r in mine if r["table"] == "layer_stats"}
                    for name in ("mean", "std", "min", "max", "l2", "nonfinite"):
                        assert _same(_number(stats[name]), layer[kind][name]), (run_id, epoch, layer["layer"], kind, name)
                    assert [int(r["value"]) for r in mine if r["table"] == "histogram"] == layer[kind]["counts"]
    assert sum(1 for r in rows if r["table"] == "histogram") == 4 * (EPOCHS + 1) * len(SHAPES) * 3 * 64

    small = client.get(f"/api/studies/{study_id}/export?format=csv&histograms=false")
    assert small.status_code == 200 and {r["table"] for r in csv.DictReader(io.StringIO(small.text))} == {
        "metrics", "layer_stats"}
    assert len(small.content) < len(response.content) / 5


def test_json_is_strict_and_complete(exported):
    client, study_id = exported
    response = client.get(f"/api/studies/{study_id}/export?format=json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"].endswith('.json"')
    document = json.loads(response.text, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    assert document["study"]["name"] == "Export me" and document["study"]["spec"]["seeds"] == [0, 1]
    assert [run["status"] for run in document["runs"]] == ["succeeded", "succeeded", "succeeded", "diverged"]
    last = document["runs"][-1]
    assert last["diverged_epoch"] == EPOCHS and last["metrics"][-1]["loss"] == "NaN" and last["metrics"][-1]["val_loss"] == "Infinity"
    assert len(last["layers"]) == (EPOCHS + 1) * len(SHAPES) * 3
    assert all(len(row["quantiles"]) == 129 and len(row["counts"]) == 64 for row in last["layers"])
    assert next(row for row in last["layers"] if row["epoch"] == EPOCHS and row["kind"] == "kernel")["nonfinite"] == 2


def test_unknown_study_and_bad_format_are_refused(exported, monkeypatch):
    client, study_id = exported
    assert client.get("/api/studies/9999/export").status_code == 404
    refused = client.get(f"/api/studies/{study_id}/export?format=xlsx")
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "format"
    assert client.get("/api/studies/0/export").status_code == 422

    from app.settings import get_settings

    monkeypatch.setenv("INITLAB_API_TOKEN", "t0ken")
    monkeypatch.setenv("INITLAB_READ_REQUIRES_TOKEN", "true")
    get_settings.cache_clear()
    assert client.get(f"/api/studies/{study_id}/export").status_code == 401
    assert client.get(f"/api/studies/{study_id}/export", headers={"Authorization": "Bearer t0ken"}).status_code == 200


def test_the_api_exports_tensorboard_without_importing_tensorflow(exported):
    _client, study_id = exported
    probe = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from app.main import create_app\n"
        f"response = TestClient(create_app()).get('/api/studies/{study_id}/export?format=tensorboard')\n"
        "assert response.status_code == 200, response.text\n"
        "print(len(response.content), 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=processes.child_env({}), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    size, tensorflow, keras = result.stdout.split()
    assert int(size) > 1000 and tensorflow == "False" and keras == "False"


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_tensorboard_serves_the_exported_runs(exported, tmp_path):
    client, study_id = exported
    response = client.get(f"/api/studies/{study_id}/export?format=tensorboard")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        archive.extractall(tmp_path)
    logdir = tmp_path / f"initlab-study-{study_id}-export-me"
    runs = sorted(path.name for path in logdir.iterdir() if path.is_dir())
    assert runs == [f"run-{n}_{name}_seed{seed}" for n, (name, seed) in
                    enumerate((("glorot_uniform", 0), ("glorot_uniform", 1), ("zeros", 0), ("zeros", 1)), start=1)]

    port = processes.free_port()
    log = open(tmp_path / "tensorboard.log", "w")
    board = subprocess.Popen([str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(logdir), "--host", "127.0.0.1",
                              "--port", str(port), "--reload_interval", "0"],
                             stdout=log, stderr=subprocess.STDOUT, env=processes.child_env({}), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        listed = processes.wait_for(lambda: (names := _get(f"{base}/data/runs")) == runs and names, 90,
                                    what="tensorboard to list the runs")
        assert listed == runs
        diverged = runs[-1]
        query = urllib.parse.urlencode({"run": diverged, "tag": "val_loss"})
        points = _get(f"{base}/data/plugin/scalars/scalars?{query}")
        assert [step for _time, step, _value in points] == [1, 2]
        assert points[0][2] == pytest.approx(1.1) and points[1][2] == "Infinity"
        query = urllib.parse.urlencode({"run": runs[0], "tag": "dense_0/kernel"})
        histograms = _get(f"{base}/data/plugin/histograms/histograms?{query}")
        assert [step for _time, step, _buckets in histograms] == [0, 1, 2]
        assert all(sum(count for _low, _high, count in buckets) == 784 * 12 for _t, _s, buckets in histograms)
    finally:
        processes.stop(board, timeout=10)  # the whole process group, SIGKILL after 10 s
        log.close()
