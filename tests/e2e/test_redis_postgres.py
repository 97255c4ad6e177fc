"""End to end on the production shape: API and a real Celery worker process, Redis, PostgreSQL."""

from __future__ import annotations

import json
import math
import uuid

import pytest

from support import processes

pytestmark = pytest.mark.slow

STUDY = {
    "name": "e2e redis+postgres",
    "dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 200},
    "model": {"hidden_units": [32, 16], "activation": "relu"},
    "training": {"epochs": 2, "batch_size": 64},
    "initializers": ["he_uniform", "zeros"],
    "seeds": [7],
}


@pytest.fixture
def stack(postgres_url, redis_url, data_dir, tmp_path):
    env = {"INITLAB_DATABASE_URL": postgres_url, "INITLAB_BROKER_URL": redis_url,
           "INITLAB_QUEUE": f"initlab-test-{uuid.uuid4().hex[:8]}", "INITLAB_DATA_DIR": str(data_dir),
           "INITLAB_STATE_DIR": str(tmp_path / "state")}
    processes.run_cli(["migrate"], env)
    port = processes.free_port()
    api = processes.start(["api", "--port", str(port)], env, tmp_path / "api.log")
    worker = processes.start(["worker"], env, tmp_path / "worker.log")
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until_up(base)
        yield base, tmp_path
    finally:
        processes.stop(api)
        processes.stop(worker)


def test_a_study_trains_through_redis_into_postgres(stack, page, artifacts):
    base, logs = stack
    status, study = processes.http("POST", f"{base}/api/studies", STUDY)
    assert status == 201, study
    assert [run["status"] for run in study["runs"]] == ["queued", "queued"]

    try:
        done = processes.wait_for_study(base, study["id"], timeout=240)
    except AssertionError:
        print((logs / "worker.log").read_text()[-4000:])
        raise
    assert [(run["initializer"], run["status"], run["epoch"], run["epochs"]) for run in done["runs"]] == [
        ("he_uniform", "succeeded", 2, 2), ("zeros", "succeeded", 2, 2)]
    assert all(run["device"] == "CPU" and run["worker_host"] for run in done["runs"])

    he_run, zeros_run = (run["id"] for run in done["runs"])
    _, metrics = processes.http("GET", f"{base}/api/studies/{study['id']}/metrics")
    assert [run["run_id"] for run in metrics["runs"]] == [he_run, zeros_run]
    for run in metrics["runs"]:
        assert [epoch["epoch"] for epoch in run["epochs"]] == [1, 2]
        assert all(0.0 <= epoch["val_accuracy"] <= 1.0 and epoch["seconds"] > 0 for epoch in run["epochs"])

    # The worker logged one JSON line per event, each naming its run.
    lines = [json.loads(line) for line in (logs / "worker.log").read_text().splitlines() if line.startswith("{")]
    for run_id in (he_run, zeros_run):
        seen = [line["event"] for line in lines if line["run_id"] == run_id]
        assert seen == ["run_claimed", "epoch_recorded", "epoch_recorded", "run_finished"], (run_id, seen)
    assert "postgres" not in (logs / "worker.log").read_text().split("[tasks]")[-1]  # no URL, no credentials

    _, he_layers = processes.http("GET", f"{base}/api/runs/{he_run}/layers?epoch=0")
    assert [layer["layer"] for layer in he_layers["layers"]] == ["dense_0", "dense_1", "output"]
    assert he_layers["available_epochs"] == [0, 1, 2]
    kernel = he_layers["layers"][0]["kernel"]
    assert len(kernel["edges"]) == 65 and sum(kernel["counts"]) == 784 * 32
    assert kernel["std"] == pytest.approx(math.sqrt(2 / 784), rel=0.1)  # He uniform: var = 2/fan_in
    assert he_layers["layers"][0]["gradient"]["norm"] > 0

    _, zeros_layers = processes.http("GET", f"{base}/api/runs/{zeros_run}/layers?epoch=0")
    assert zeros_layers["layers"][0]["kernel"]["std"] == 0.0
    assert zeros_layers["layers"][0]["gradient"]["norm"] == 0.0  # symmetric weights: no signal reaches layer 1

    # The worker stored quantiles (recorder -> sink -> SQL), so the shared-edge views are exact.
    _, bands = processes.http("GET", f"{base}/api/runs/{he_run}/percentiles?layer=dense_0")
    assert bands["epochs"] == [0, 1, 2] and not bands["approximate"]
    _, shared = processes.http("GET", f"{base}/api/studies/{study['id']}/histograms?epoch=2")
    assert not shared["approximate"] and len(shared["layers"]) == 3

    # The study page, in a real Chromium: curves, gradient norms and histograms from the trained runs.
    page.goto(f"{base}/studies/{study['id']}")
    page.wait_for_function("() => document.getElementById('study').dataset.ready === 'true'", timeout=30000)
    traces = page.evaluate("""() => ['chart-val-accuracy', 'chart-loss', 'chart-gradients', 'chart-hist'].map(
        id => document.getElementById(id).data.filter(t => (t.y || []).some(v => v !== null) && !(t.meta || {}).theory).length)""")
    assert traces[0] == 2 * 3 and traces[1] == 2 * 3, traces  # 2 initializers x (band low, band high, mean)
    assert traces[2] == 3 * 2 * 3, traces  # 3 layers x 2 initializers
    assert traces[3] == 3 * 2 * 2, traces  # 3 layers x 2 initializers x (epoch 0, epoch 2)
    # The real runs' weights at init follow their initializers' distributions: no cell is flagged.
    ks_notes = page.evaluate("""() => document.getElementById('chart-hist').layout.annotations
        .map(a => a.text).filter(t => t.includes('KS '))""")
    assert len(ks_notes) == 3 * 2 and not any("theory" in note for note in ks_notes), ks_notes
    # zeros: no gradient reaches the first layer, drawn as a marker on the log axis's floor
    symbols = page.evaluate("""() => document.getElementById('chart-gradients').data
        .filter(t => t.meta.role === 'mean' && t.meta.group === 'zeros' && t.meta.layer === 'dense_0')
        .map(t => t.marker.symbol)""")
    # One mean trace, a marker for each of epochs 0, 1 and 2, each on the floor.
    assert symbols == [["triangle-down"] * 3], symbols
    page.screenshot(path=str(artifacts / "e2e_redis_postgres_study.png"), full_page=True)
    assert page.watch.errors == [] and page.watch.external() == []


DIVERGING = {
    "name": "e2e divergence",
    "dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 200},
    # A linear network of all-ones kernels under SGD at 0.1 overflows in its first epoch.
    "model": {"hidden_units": [32, 16], "activation": "linear"},
    "training": {"epochs": 3, "batch_size": 32, "optimizer": "sgd", "learning_rate": 0.1},
    "initializers": ["ones", "glorot_uniform"],
    "seeds": [0],
}


def test_a_run_whose_loss_explodes_ends_diverged_and_the_page_says_so(stack, page):
    base, logs = stack
    _, study = processes.http("POST", f"{base}/api/studies", DIVERGING)
    done = processes.wait_for_study(base, study["id"], timeout=240)
    ones, glorot = done["runs"]
    assert (ones["status"], ones["diverged_epoch"], ones["epoch"]) == ("diverged", 1, 1), ones
    assert "NaN or infinite in epoch 1" in ones["error"]
    assert (glorot["status"], glorot["diverged_epoch"], glorot["epoch"]) == ("succeeded", None, 3), glorot
    assert done["status"] == "succeeded" and done["run_counts"] == {"diverged": 1, "succeeded": 1}
    _, metrics = processes.http("GET", f"{base}/api/studies/{study['id']}/metrics")
    assert metrics["runs"][0]["epochs"][0]["loss"] in ("NaN", "Infinity")  # the epoch it diverged in is kept

    page.goto(f"{base}/studies/{study['id']}")
    page.wait_for_function("() => document.getElementById('study').dataset.ready === 'true'", timeout=30000)
    row = page.locator("#runs-table tbody tr[data-status=diverged]")
    assert row.count() == 1 and "NaN or infinite in epoch 1" in row.inner_text()
    assert page.watch.errors == []


GRID = {
    "name": "e2e grid",
    "dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 200},
    "model": {"hidden_units": [16]},
    "training": {"epochs": 1, "batch_size": 64},
    "initializers": ["he_normal", "glorot_uniform"],
    "seeds": [0],
    "activations": ["relu", "tanh"],
    "depths": [1, 3],
}


def test_a_grid_study_trains_each_cell_with_its_own_activation_and_depth(stack, page):
    base, logs = stack
    status, study = processes.http("POST", f"{base}/api/studies", GRID)
    assert status == 201 and len(study["runs"]) == 8
    done = processes.wait_for_study(base, study["id"], timeout=240)
    assert {run["status"] for run in done["runs"]} == {"succeeded"}, done["runs"]
    for run in done["runs"]:
        _, layers = processes.http("GET", f"{base}/api/runs/{run['id']}/layers?epoch=0")
        names = [layer["layer"] for layer in layers["layers"]]
        assert names == [f"dense_{i}" for i in range(run["depth"])] + ["output"], (run, names)
    # The worker measured each run's own activation (tanh saturates, relu can die: both recorded per layer).
    _, failures = processes.http("GET", f"{base}/api/studies/{study['id']}/failures")
    by_run = {row["run_id"]: row["activation"] for row in failures["runs"]}
    assert {run["id"]: run["activation"] for run in done["runs"]} == by_run
    # Fused groups never mix grid cells: each claimed group shares one activation and depth.
    cell = {run["id"]: (run["activation"], run["depth"]) for run in done["runs"]}
    claims = [json.loads(line) for line in (logs / "worker.log").read_text().splitlines() if '"event":"run_claimed"' in line]
    groups = [claim["group"] or [claim["run_id"]] for claim in claims if claim["run_id"] in cell]
    assert {run_id for group in groups for run_id in group} == set(cell), claims  # every run was claimed, in a group
    for group in groups:
        assert len({cell[run_id] for run_id in group}) == 1, group

    page.goto(f"{base}/studies/{study['id']}")
    page.wait_for_function("() => !document.getElementById('grid-section').hidden", timeout=30000)
    page.wait_for_function("() => (document.getElementById('chart-grid').data || []).length === 1", timeout=30000)
    meta = page.evaluate("() => document.getElementById('chart-grid').layout.meta")
    assert meta["rows"] == ["He normal", "Glorot (Xavier) uniform"]
    assert meta["columns"] == ["relu · 1 layer", "relu · 3 layers", "tanh · 1 layer", "tanh · 3 layers"]
    z = page.evaluate("() => document.getElementById('chart-grid').data[0].z")
    assert [len(row) for row in z] == [4, 4], z  # 2 initializers x 4 cells
    assert all(0.0 < value <= 1.0 for row in z for value in row), z
    # The box is as tall as the heatmap's rows need (a fixed 340 px left ~125 px blank under two rows).
    assert page.evaluate("() => document.getElementById('chart-grid').getBoundingClientRect().height") == 120 + 48 * 2
    assert page.watch.errors == []


def test_a_cnn_and_a_batchnorm_mlp_study_train_through_redis_into_postgres(stack):
    """Issue 12's two new shapes, posted as curl would, trained by the real worker process."""
    base, logs = stack
    small = {"dataset": {"name": "fashion_mnist", "train_samples": 300, "validation_samples": 200},
             "training": {"epochs": 2, "batch_size": 32}, "initializers": ["he_normal", "delta_orthogonal"], "seeds": [0]}
    shapes = {
        "cnn": ({"family": "cnn", "conv_channels": [4, 8], "hidden_units": [16], "normalization": "batchnorm"},
                ["conv_0", "bn_0", "conv_1", "bn_1", "dense_0", "bn_2", "output"]),
        "mlp": ({"hidden_units": [32, 16], "normalization": "batchnorm"}, ["dense_0", "bn_0", "dense_1", "bn_1", "output"]),
    }
    posted = {}
    for name, (model, _) in shapes.items():
        status, study = processes.http("POST", f"{base}/api/studies", {**small, "name": f"e2e {name}", "model": model})
        assert status == 201, study
        posted[name] = study["id"]
    for name, study_id in posted.items():
        try:
            done = processes.wait_for_study(base, study_id, timeout=240)
        except AssertionError:
            print((logs / "worker.log").read_text()[-4000:])
            raise
        assert [run["status"] for run in done["runs"]] == ["succeeded", "succeeded"], done["runs"]
        for run in done["runs"]:
            _, layers = processes.http("GET", f"{base}/api/runs/{run['id']}/layers?epoch=2")
            assert [layer["layer"] for layer in layers["layers"]] == shapes[name][1]
            norm = next(layer for layer in layers["layers"] if layer["layer"] == "bn_1")
            assert norm["gamma"]["min"] < norm["gamma"]["max"] and sum(norm["moving_variance"]["counts"]) > 0
        for view in ("summary", "gradients", "histograms?epoch=2", "histograms?epoch=2&kind=gamma", "failures",
                     "theory", "export?format=csv"):
            status, _ = processes.http("GET", f"{base}/api/studies/{study_id}/{view}")
            assert status == 200, (name, view)
