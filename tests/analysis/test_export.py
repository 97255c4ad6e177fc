"""The export writers on a study built in memory from the worker's own tensor summaries.

Each format is read back with the tool a user would read it with (csv, json, TensorBoard's
EventAccumulator) and compared with what went in, NaN and Infinity of a diverged run included.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from datetime import datetime, timezone

import numpy as np
import pytest

from app.analysis import export
from worker.training.stats import gradient_summary, tensor_summary

SHAPES = {"dense_0": (20, 8), "output": (8, 3)}
EPOCHS = 2
# The published CSV format, spelled out here rather than read from the module under test.
CSV_COLUMNS = ["study_id", "run_id", "run", "initializer", "group", "seed", "activation", "depth", "status", "epoch",
               "table", "layer", "layer_index", "kind", "statistic", "value", "bin_low", "bin_high"]
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
STATS = ("mean", "std", "min", "max", "l2", "nonfinite")


def _layers(seed: int, diverges: bool) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for epoch in range(EPOCHS + 1):
        for index, (layer, shape) in enumerate(SHAPES.items()):
            kernel = rng.normal(0.0, 0.1 * (1 + epoch), size=shape)
            if diverges and epoch == EPOCHS and layer == "dense_0":
                kernel[0, :3] = [np.nan, np.inf, -np.inf]
            for kind, summary in (("kernel", tensor_summary(kernel)), ("bias", tensor_summary(rng.normal(0, 0.01, shape[1]))),
                                  ("gradient", gradient_summary(rng.normal(0, 1e-3, size=shape)))):
                summary.pop("norm", None)
                if epoch == 1 and kind == "bias":
                    summary["quantiles"] = None  # a row recorded before quantiles existed
                rows.append({"epoch": epoch, "layer": layer, "layer_index": index, "kind": kind, **summary})
    return rows


def _metrics(seed: int, diverges: bool) -> list[dict]:
    rows = []
    for epoch in range(1, EPOCHS + 1):
        rows.append({"epoch": epoch, "loss": 1.0 / epoch + seed, "accuracy": 0.5 + 0.1 * epoch, "val_loss": 1.2 / epoch,
                     "val_accuracy": None if epoch == 1 else 0.55, "seconds": 1.5})
    if diverges:
        rows[-1].update(loss=math.nan, val_loss=math.inf, val_accuracy=0.1)
    return rows


@pytest.fixture
def study() -> export.StudyData:
    runs = [{"id": 9, "initializer": "he_normal", "initializer_params": {}, "seed": 0, "status": "succeeded"},
            {"id": 10, "initializer": "random_normal", "initializer_params": {"stddev": 0.01}, "seed": 1, "status": "diverged"}]
    for run in runs:
        run.update(epoch=EPOCHS, epochs=EPOCHS, error=None, diverged_epoch=EPOCHS if run["id"] == 10 else None, device="CPU:0",
                   started_at=datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc), finished_at=None)
    runs[0]["environment"] = {"backend": "tensorflow", "keras": "3.15.1", "tensorflow": "2.21.0", "onednn": True,
                              "data": "sha256:0123456789abcdef"}
    layers = {run["id"]: _layers(run["id"], run["id"] == 10) for run in runs}
    return export.StudyData(
        study={"id": 4, "name": "He vs small normal / ü", "status": "partial",
               "created_at": datetime(2025, 3, 1, 11, 59, tzinfo=timezone.utc), "spec": {"seeds": [0, 1]}},
        runs=runs, metrics={run["id"]: _metrics(run["seed"], run["id"] == 10) for run in runs}, layers=lambda run_id: layers[run_id])


NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # JSON's own spelling, as the API writes it


def _same(read: float, wrote: float | None, rel: float = 0.0) -> bool:
    if wrote is None:
        return read is None
    if math.isnan(wrote):
        return math.isnan(read)
    return read == pytest.approx(wrote, rel=rel) if rel else read == wrote


def test_names_are_safe_and_sort_in_run_order(study):
    assert export.base_name(study.study) == "initlab-study-4-he-vs-small-normal"
    assert export.run_name(study.runs[1], width=3) == "run-010_random_normal_stddev=0.01_seed1"
    assert export.run_name({"id": 3, "initializer": "he_normal", "initializer_params": {}, "seed": 2}) == "run-3_he_normal_seed2"


def test_csv_is_long_form_and_reads_back_exactly(study):
    chunks = list(export.csv_chunks(study))
    assert len(chunks) >= len(study.runs), "one piece per run: the route streams it"
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert list(rows[0]) == CSV_COLUMNS
    assert {row["table"] for row in rows} == {"metrics", "layer_stats", "histogram"}

    for run in study.runs:
        mine = [row for row in rows if row["run_id"] == str(run["id"])]
        assert {row["run"] for row in mine} == {export.run_name(run, 2)}
        for wrote in study.metrics[run["id"]]:
            for name in METRICS:
                cell = next(r["value"] for r in mine if r["table"] == "metrics" and r["epoch"] == str(wrote["epoch"])
                            and r["statistic"] == name)
                assert _same(float(cell) if cell else None, wrote[name]), (run["id"], wrote["epoch"], name, cell)
        for tensor in study.layers(run["id"]):
            where = [r for r in mine if r["epoch"] == str(tensor["epoch"]) and r["layer"] == tensor["layer"]
                     and r["kind"] == tensor["kind"]]
            stats = {r["statistic"]: r["value"] for r in where if r["table"] == "layer_stats"}
            assert sorted(stats) == sorted(STATS) and all(_same(float(stats[name]), tensor[name]) for name in STATS), stats
            bins = [r for r in where if r["table"] == "histogram"]
            assert [int(r["value"]) for r in bins] == tensor["counts"]
            assert [float(r["bin_low"]) for r in bins] + [float(bins[-1]["bin_high"])] == tensor["edges"]

    # The diverged run's values are spelled out, never blanked; a value never recorded is an empty cell.
    last = [r for r in rows if r["run_id"] == "10" and r["table"] == "metrics" and r["epoch"] == str(EPOCHS)]
    assert {r["statistic"]: r["value"] for r in last}["loss"] == "NaN"
    assert {r["statistic"]: r["value"] for r in last}["val_loss"] == "Infinity"
    assert next(r["value"] for r in rows if r["table"] == "metrics" and r["epoch"] == "1" and r["statistic"] == "val_accuracy") == ""
    assert any(r["value"] == "3" and r["statistic"] == "nonfinite" and r["run_id"] == "10" for r in rows)


def test_csv_without_histograms_keeps_metrics_and_statistics(study):
    small = export.StudyData(**{**study.__dict__, "histograms": False})
    rows = list(csv.DictReader(io.StringIO("".join(export.csv_chunks(small)))))
    assert {row["table"] for row in rows} == {"metrics", "layer_stats"}
    full = list(csv.DictReader(io.StringIO("".join(export.csv_chunks(study)))))
    assert len(full) - len(rows) == 64 * sum(len(study.layers(run["id"])) for run in study.runs)


def test_json_is_strict_and_carries_everything(study):
    text = "".join(export.json_chunks(study))
    document = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert document["format"] == "initlab-study-export" and document["version"] == export.FORMAT_VERSION
    assert document["study"]["id"] == 4 and document["study"]["created_at"].startswith("2025-03-01T11:59")
    assert [run["name"] for run in document["runs"]] == ["run-09_he_normal_seed0", "run-10_random_normal_stddev=0.01_seed1"]
    diverged = document["runs"][1]
    assert diverged["group"] == "random_normal(stddev=0.01)" and diverged["diverged_epoch"] == EPOCHS
    assert diverged["metrics"][-1]["loss"] == "NaN" and diverged["metrics"][-1]["val_loss"] == "Infinity"
    assert document["runs"][0]["metrics"][0]["val_accuracy"] is None
    for run in document["runs"]:
        wrote = {(r["epoch"], r["layer"], r["kind"]): r for r in study.layers(run["id"])}
        assert len(run["layers"]) == len(wrote)
        for row in run["layers"]:
            source = wrote[(row["epoch"], row["layer"], row["kind"])]
            assert row["counts"] == source["counts"] and row["edges"] == source["edges"]
            assert row["quantiles"] == source["quantiles"]
            assert row["mean"] == (NONFINITE[repr(source["mean"])] if not math.isfinite(source["mean"]) else source["mean"])
    assert any(row["mean"] == "NaN" for row in diverged["layers"]), "a tensor holding NaN has a NaN mean"


def test_tensorboard_zip_opens_in_event_accumulator(study, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    chunks = list(export.tensorboard_zip_chunks(study))
    assert len(chunks) > len(study.runs) - 1 and all(isinstance(chunk, bytes) for chunk in chunks)
    archive = tmp_path / "export.zip"
    archive.write_bytes(b"".join(chunks))
    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None
        opened.extractall(tmp_path)
    root = tmp_path / "initlab-study-4-he-vs-small-normal"
    assert sorted(path.name for path in root.iterdir() if path.is_dir()) == [
        "run-09_he_normal_seed0", "run-10_random_normal_stddev=0.01_seed1"]
    # The numbers' context travels with them: the spec (to submit again) and what trained each run.
    described = json.loads((root / "study.json").read_text())
    assert described["format"] == "initlab-study-export" and described["study"]["spec"] == study.study["spec"]
    assert [(run["id"], run["seed"], run["environment"]) for run in described["runs"]] == [
        (run["id"], run["seed"], run.get("environment")) for run in study.runs]
    assert all(run["metrics"] == [] and run["layers"] == [] for run in described["runs"])

    for run in study.runs:
        events = EventAccumulator(str(root / export.run_name(run, 2)), size_guidance={"scalars": 0, "histograms": 0})
        events.Reload()
        tags = events.Tags()
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            recorded = [row for row in study.metrics[run["id"]] if row[name] is not None]
            assert recorded, (run["id"], name)
            points = events.Scalars(name)
            assert [p.step for p in points] == [row["epoch"] for row in recorded]
            assert all(_same(p.value, row[name], rel=1e-6) for p, row in zip(points, recorded)), (name, points)
        layers = study.layers(run["id"])
        for layer in SHAPES:
            for kind in ("kernel", "bias", "gradient"):
                series = events.Histograms(f"{layer}/{kind}")
                wrote = sorted((r for r in layers if r["layer"] == layer and r["kind"] == kind), key=lambda r: r["epoch"])
                assert [h.step for h in series] == [r["epoch"] for r in wrote] == list(range(EPOCHS + 1))
                for event, row in zip(series, wrote):
                    histogram = event.histogram_value
                    assert list(histogram.bucket) == row["counts"] and list(histogram.bucket_limit) == row["edges"][1:]
                    assert histogram.min == row["edges"][0] and histogram.num == sum(row["counts"])
            norms = events.Scalars(f"gradient_norm/{layer}")
            assert [p.value for p in norms] == pytest.approx(
                [r["l2"] for r in sorted(layers, key=lambda r: r["epoch"]) if r["layer"] == layer and r["kind"] == "gradient"], rel=1e-6)
        nonfinite = [tag for tag in tags["scalars"] if tag.endswith("_nonfinite")]
        if run["id"] == 10:
            assert math.isnan(events.Scalars("loss")[-1].value) and events.Scalars("val_loss")[-1].value == math.inf
            assert nonfinite == ["dense_0/kernel_nonfinite"]
            assert [p.value for p in events.Scalars("dense_0/kernel_nonfinite")] == [0, 0, 3]
        else:
            assert nonfinite == []


def test_histogram_sums_are_exact_for_finite_tensors():
    values = np.random.default_rng(3).normal(0.2, 0.5, size=(30, 7))
    summary = tensor_summary(values)
    proto = export.histogram_proto(summary)
    assert proto.num == values.size and proto.sum == pytest.approx(values.sum(), rel=1e-9)
    assert proto.sum_squares == pytest.approx((values ** 2).sum(), rel=1e-9)
    broken = values.copy()
    broken[0, 0] = np.nan
    proto = export.histogram_proto(tensor_summary(broken))
    assert proto.num == values.size - 1 and math.isfinite(proto.sum), "finite values only, from the bin centres"
