"""Every view of a study full of point masses agrees with the recorded min, max, mean and count.

A small study (zeros, ones, constant 0.1, he_normal; three Dense layers) is written through
app.storage as a worker writes it: at epoch 0 each initializer's own draw (Keras, through the
registry) and zero biases, at epoch 1 tensors with point masses (unchanged constants, dead-ReLU
zeros, a 0.1 spike in a normal, biases half zeros, NaN/Inf entries, an all-NaN bias). Then
every view is read through the real API in-process and held against what was recorded.
"""

from __future__ import annotations

import csv
import io
import json
import math
import struct
import zipfile

import numpy as np
import pytest

from worker.training.stats import QUANTILES, tensor_summary

TENTH = float(np.float32(0.1))
INITIALIZERS = ["zeros", "ones", {"id": "constant", "params": {"value": 0.1}}, "he_normal"]
CONSTANT = {"zeros": 0.0, "ones": 1.0, "constant": TENTH}


def _epoch_one(initializer: str, layer: int, kind: str, shape: tuple[int, ...], rng) -> np.ndarray:
    """A tensor after one epoch, with a point mass in it (or, once, nothing finite)."""
    size = int(np.prod(shape))
    normal = rng.normal(0.0, 0.2, size)
    if kind == "bias":
        if (initializer, layer) == ("constant", 2):
            return np.full(shape, np.nan)
        return np.where(rng.random(size) < 0.5, 0.0, 0.01 * normal).reshape(shape)  # half the units never moved
    if initializer in CONSTANT and layer == 0:
        return np.full(shape, CONSTANT[initializer])  # no gradient reached it
    if initializer == "ones" and layer == 2:
        values = np.where(rng.random(size) < 0.4, 1.0, 1.0 + normal)
        values[:5] = [np.nan, np.inf, -np.inf, np.inf, np.nan]  # diverging
        return values.reshape(shape)
    if initializer == "constant" and layer == 1:
        values = np.full(size, TENTH)
        values[:3] = np.inf  # a constant finite part, min/max recorded as +inf
        return values.reshape(shape)
    if layer == 1:
        return np.maximum(normal - 0.1, 0.0).reshape(shape)  # dead ReLU-like: ~70 % exact zeros
    return np.where(rng.random(size) < 0.3, TENTH, normal).reshape(shape)


@pytest.fixture
def study(sqlite_app):
    from app.domain.spec import InitializerRef, StudySpec
    from app.storage import records, runs, studies
    from worker.training.initializers import build

    spec = StudySpec(name="point masses", dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
                     model={"hidden_units": [16, 8]}, training={"epochs": 1}, initializers=INITIALIZERS, seeds=[0])
    created, _ = studies.create_study(spec)
    recorded = {}
    for run in created.runs:
        runs.claim_run(run.id, worker_host="test")
        rng = np.random.default_rng(run.id)
        for epoch in (0, 1):
            rows = []
            for index, (layer, fan_in, units) in enumerate(spec.layer_shapes()):
                for kind, shape in (("kernel", (fan_in, units)), ("bias", (units,))):
                    if epoch == 0:
                        ref = spec.scheme(InitializerRef(id=run.initializer, params=run.initializer_params or {}), layer, kind)
                        values = np.asarray(build(ref, 10 * run.id + index)(shape), dtype=np.float32)
                    else:
                        values = _epoch_one(run.initializer, index, kind, shape, rng).astype(np.float32)
                    summary = tensor_summary(values)
                    recorded[(run.id, epoch, layer, kind)] = (values.reshape(-1), summary)
                    rows.append({"layer": layer, "index": index, "kind": kind, **summary})
            records.record_layers(run.id, epoch, rows)
        runs.finish_run(run.id, "succeeded")
    return sqlite_app, created, spec, recorded


def _number(value) -> float:
    return float(value)  # the API writes NaN/Inf as "NaN"/"Infinity"/"-Infinity"


def _same(a, b) -> bool:
    a, b = _number(a), _number(b)
    return a == b or (math.isnan(a) and math.isnan(b))


class Tensor:
    """What was recorded for one tensor, and its truth."""

    def __init__(self, values: np.ndarray, summary: dict) -> None:
        self.summary, self.size = summary, values.size
        self.finite = np.sort(values[np.isfinite(values)].astype(np.float64))
        self.count = self.finite.size
        self.low = float(self.finite[0]) if self.count else None
        self.high = float(self.finite[-1]) if self.count else None
        distinct, counts = np.unique(self.finite, return_counts=True)
        big = counts >= 0.1 * max(self.count, 1)
        self.masses = dict(zip(distinct[big].tolist(), counts[big].tolist()))  # value -> how many hold it

    def bound(self) -> float:
        """How far a rebuilt cumulative count may be off: 1/Q of the values, or one value."""
        return self.count / QUANTILES + 1


def _check_binned(tensor: Tensor, edges: list[float], counts: list[float], below: float, above: float,
                  total: float, nonfinite: int, full: bool, where: str) -> None:
    edges_ = np.asarray(edges)
    rounding = 0.01 * (len(counts) + 2)  # the views round each count to two decimals
    assert total == tensor.count and total + nonfinite == tensor.size, where
    assert sum(counts) + below + above == pytest.approx(total, abs=rounding), where
    if not tensor.count:
        return
    truth_below, truth_above = (tensor.finite < edges_[0]).sum(), (tensor.finite > edges_[-1]).sum()
    assert abs(below - truth_below) <= tensor.bound() + rounding and abs(above - truth_above) <= tensor.bound() + rounding, where
    if full:
        assert below == pytest.approx(0, abs=0.01) and above == pytest.approx(0, abs=0.01), where
    for value, held in tensor.masses.items():
        if not edges_[0] <= value <= edges_[-1]:
            continue
        bin_ = min(int(np.searchsorted(edges_, value, side="right")) - 1, len(counts) - 1)
        if len(tensor.masses) == 1 and tensor.low == tensor.high:
            assert counts[bin_] == pytest.approx(total, abs=0.01), (where, bin_, counts)
            assert sum(counts) == pytest.approx(total, abs=rounding), where
        else:
            assert counts[bin_] >= held - 2 * tensor.bound() - rounding, (where, value, held, counts[bin_])
    if full and tensor.summary["nonfinite"] == 0:
        # The rebuilt histogram's mean: within half a bin and the CDF's 1/Q of the recorded mean.
        centres = (edges_[:-1] + edges_[1:]) / 2
        width = edges_[1] - edges_[0]
        slack = width / 2 + (1 / QUANTILES + 1 / tensor.count) * (tensor.high - tensor.low) + 0.01 * len(counts) * np.abs(edges_).max() / total
        assert abs(float(np.dot(counts, centres)) / total - tensor.summary["mean"]) <= slack + 1e-9, where


def test_every_view_agrees_with_the_recorded_min_max_mean_and_count(study):
    client, created, spec, recorded = study
    tensors = {key: Tensor(*value) for key, value in recorded.items()}
    layers = [name for name, _, _ in spec.layer_shapes()]
    run_ids = [run.id for run in created.runs]
    assert len(tensors) == len(run_ids) * 2 * len(layers) * 2
    constants = [key for key, tensor in tensors.items() if tensor.count and tensor.low == tensor.high]
    assert len(constants) >= 25, "the study must be full of point masses"

    # GET /api/runs/{id}/layers: the recorded numbers themselves
    for run_id in run_ids:
        for epoch in (0, 1):
            view = client.get(f"/api/runs/{run_id}/layers?epoch={epoch}").json()
            assert [entry["layer"] for entry in view["layers"]] == layers
            for entry in view["layers"]:
                for kind in ("kernel", "bias"):
                    tensor, stats = tensors[(run_id, epoch, entry["layer"], kind)], entry[kind]
                    for name in ("min", "max", "mean"):
                        assert _same(stats[name], tensor.summary[name]), (run_id, epoch, entry["layer"], kind, name)
                    assert sum(stats["counts"]) == tensor.count and sum(stats["counts"]) + stats["nonfinite"] == tensor.size
                    if tensor.summary["nonfinite"] == 0:
                        assert (_number(stats["min"]), _number(stats["max"])) == (tensor.low, tensor.high)

    for kind in ("kernel", "bias"):
        for robust in (False, True):
            query = f"kind={kind}&range={'robust' if robust else 'full'}"
            # GET /api/studies/{id}/histograms: every run on the study's shared edges
            by_epoch = {}
            for epoch in (0, 1):
                view = client.get(f"/api/studies/{created.id}/histograms?epoch={epoch}&{query}").json()
                assert [layer["layer"] for layer in view["layers"]] == layers and not view["approximate"]
                for layer in view["layers"]:
                    assert sorted(run["run_id"] for run in layer["runs"]) == run_ids
                    for run in layer["runs"]:
                        where = (epoch, layer["layer"], kind, robust, run["run_id"])
                        _check_binned(tensors[(run["run_id"], epoch, layer["layer"], kind)], layer["edges"], run["counts"],
                                      run["below"], run["above"], run["total"], run["nonfinite"], not robust, where)
                        by_epoch[(epoch, layer["layer"], run["run_id"])] = (layer["edges"], run["counts"])
            # GET /api/runs/{id}/histograms: one run over epochs, the same numbers
            for run_id in run_ids:
                for layer in layers:
                    heat = client.get(f"/api/runs/{run_id}/histograms?layer={layer}&{query}").json()
                    assert heat["epochs"] == [0, 1]
                    for i, epoch in enumerate(heat["epochs"]):
                        where = ("run", run_id, epoch, layer, kind, robust)
                        tensor = tensors[(run_id, epoch, layer, kind)]
                        _check_binned(tensor, heat["edges"], heat["counts"][i], heat["below"][i], heat["above"][i],
                                      tensor.count, heat["nonfinite"][i], not robust, where)
                        assert (heat["edges"], heat["counts"][i]) == by_epoch[(epoch, layer, run_id)], where

        # GET /api/runs/{id}/percentiles: the band starts at min and ends at max, exactly
        for run_id in run_ids:
            for layer in layers:
                bands = client.get(f"/api/runs/{run_id}/percentiles?layer={layer}&kind={kind}").json()
                assert bands["epochs"] == [0, 1] and not bands["approximate"]
                for epoch, values in zip(bands["epochs"], bands["values"]):
                    tensor = tensors[(run_id, epoch, layer, kind)]
                    assert bands["nonfinite"][epoch] == tensor.summary["nonfinite"]
                    if not tensor.count:
                        assert values == [None] * 9
                        continue
                    values = [_number(value) for value in values]
                    where = (run_id, epoch, layer, kind, values)
                    assert (values[0], values[-1]) == (tensor.low, tensor.high), where
                    assert values == sorted(values) and tensor.low <= min(values) <= max(values) <= tensor.high, where
                    if tensor.low == tensor.high:
                        assert values == [tensor.low] * 9, where
                    if tensor.summary["nonfinite"] == 0:
                        assert (_number(tensor.summary["min"]), _number(tensor.summary["max"])) == (values[0], values[-1])
                        assert values[0] <= tensor.summary["mean"] <= values[-1]
                    for value, held in tensor.masses.items():
                        before = np.searchsorted(tensor.finite, value, "left") / tensor.count
                        after = before + held / tensor.count
                        for fraction, found in zip(bands["fractions"], values):
                            if before + 1 / QUANTILES + 1 / tensor.count < fraction < after - 1 / QUANTILES - 1 / tensor.count:
                                assert found == value, (where, fraction, value)

    # GET /api/studies/{id}/theory: a constant initializer's draw is its point, exactly
    for kind in ("kernel", "bias"):
        view = client.get(f"/api/studies/{created.id}/theory?kind={kind}").json()
        assert view["mismatches"] == 0
        by_id = {run.id: run.initializer for run in created.runs}
        for layer in view["layers"]:
            for row in layer["runs"]:
                if kind == "bias" or by_id[row["run_id"]] in CONSTANT:
                    assert row["ks"] == 0 and row["mismatch"] is False, (kind, layer["layer"], row)
            points = {curve["initializer"]: curve["point"] for curve in layer["curves"]}
            if kind == "kernel":
                assert {name: points[name] for name in CONSTANT} == pytest.approx({"zeros": 0.0, "ones": 1.0, "constant": 0.1})
            else:
                assert points == {"zeros": 0.0}

    # GET /api/studies/{id}/export?format=csv: long form, the recorded numbers and own bins
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/studies/{created.id}/export?format=csv").text)))
    stats, binned = {}, {}
    for row in rows:
        if row["table"] == "layer_stats" and row["kind"] in ("kernel", "bias"):
            stats[(int(row["run_id"]), int(row["epoch"]), row["layer"], row["kind"], row["statistic"])] = row["value"]
        elif row["table"] == "histogram" and row["kind"] in ("kernel", "bias"):
            key = (int(row["run_id"]), int(row["epoch"]), row["layer"], row["kind"])
            binned.setdefault(key, []).append((float(row["bin_low"]), float(row["bin_high"]), int(row["value"])))
    assert len(binned) == len(tensors)
    for key, tensor in tensors.items():
        for name in ("min", "max", "mean", "nonfinite"):
            assert _same(stats[(*key, name)], tensor.summary[name]), (key, name)
        assert sum(count for _, _, count in binned[key]) == tensor.count, key
        if tensor.count and tensor.low == tensor.high:
            occupied = [(low, high) for low, high, count in binned[key] if count]
            assert len(occupied) == 1 and occupied[0][0] <= tensor.low < occupied[0][1], (key, occupied)

    # ?format=json: the statistics, the histogram and the quantiles, ends exact
    document = json.loads(client.get(f"/api/studies/{created.id}/export?format=json").text)
    seen = 0
    for run in document["runs"]:
        for row in run["layers"]:
            if row["kind"] not in ("kernel", "bias"):
                continue
            tensor = tensors[(run["id"], row["epoch"], row["layer"], row["kind"])]
            seen += 1
            for name in ("min", "max", "mean"):
                assert _same(row[name], tensor.summary[name]), (run["id"], row["layer"], name)
            assert sum(row["counts"]) == tensor.count and sum(row["counts"]) + row["nonfinite"] == tensor.size
            if tensor.count:
                assert (row["quantiles"][0], row["quantiles"][-1]) == (tensor.low, tensor.high)
    assert seen == len(tensors)

    # ?format=tensorboard: TensorBoard's own Distributions reading of each histogram
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.plugins.distribution import compressor

    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/studies/{created.id}/export?format=tensorboard").content))
    seen = 0
    for name in archive.namelist():
        if "events.out.tfevents" not in name:
            continue
        run_id = int(name.split("/")[1].split("_")[0].removeprefix("run-"))
        data, offset = archive.read(name), 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                layer, _, kind = value.tag.partition("/")
                if not value.HasField("histo") or kind not in ("kernel", "bias"):
                    continue
                tensor, histo = tensors[(run_id, event.step, layer, kind)], value.histo
                assert histo.num == tensor.count, value.tag
                if not tensor.count:
                    continue
                seen += 1
                band = [float(found) for _, found in compressor.compress_histogram_proto(histo)]
                where = (run_id, event.step, value.tag, band)
                assert (histo.min, histo.max) == (tensor.low, tensor.high), where
                # TensorBoard interpolates inside a bucket: its ends may be off by a rounding.
                assert band[0] == pytest.approx(tensor.low, rel=1e-12, abs=1e-300), where
                assert band[-1] == pytest.approx(tensor.high, rel=1e-12, abs=1e-300), where
                assert all(tensor.low - 1e-12 * abs(tensor.low) <= found <= tensor.high + 1e-12 * abs(tensor.high)
                           for found in band), where
                if tensor.low == tensor.high:
                    assert band == [tensor.low] * 9, where
    assert seen == sum(1 for tensor in tensors.values() if tensor.count)
