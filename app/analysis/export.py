"""A study as files other tools read: a long-form CSV, one JSON document, a TensorBoard log dir.

Pure functions over plain rows (app/api/exports.py reads them from storage). Each writer
yields its output in pieces, one run at a time, so a study of any size streams without
being held in memory; only one run's layer rows are loaded at a time.

A diverged run's NaN and ±Inf are a result and are never dropped or blanked:
- CSV: the cells ``NaN``, ``Infinity``, ``-Infinity`` (the JSON API's spelling, which
  Python's ``float()`` reads back); an empty cell is a value that was never recorded.
- JSON: the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, as in every API answer; the
  document is otherwise strict JSON.
- TensorBoard: scalars keep NaN/Inf (TensorBoard draws them so). A histogram can only hold the
  finite values, so a run whose tensors had NaN/Inf also gets ``<layer>/<kind>_nonfinite``
  scalars with their count per epoch.

The event files are written with tensorboard's own record writer and protos, not its
``EventFileWriter``: that one makes its folder through ``tensorboard.compat.tf``, which imports
TensorFlow whenever it is installed, and the API process must not import TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
from tensorboard.summary.writer.record_writer import RecordWriter

from app.analysis.summary import group_key
from app.domain.layers import TENSOR_KINDS
from app.domain.registry import format_param

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
STATS = ("mean", "std", "min", "max", "l2", "nonfinite")
KIND_ORDER = {kind: order for order, kind in enumerate(TENSOR_KINDS)}
CSV_COLUMNS = ("study_id", "run_id", "run", "initializer", "group", "seed", "activation", "depth", "status", "epoch",
               "table", "layer",
               "layer_index", "kind", "statistic", "value", "bin_low", "bin_high")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class StudyData:
    """What an export needs. ``layers(run_id)`` is called once per run, when that run is written.

    study: id, name, status, created_at, spec. runs: id, initializer, initializer_params, seed,
    status, epoch, epochs, error, diverged_epoch, device, started_at. metrics: run id -> rows of
    epoch + METRICS. Layer rows: epoch, layer, layer_index, kind, STATS, and (unless
    ``histograms`` is False) edges, counts, quantiles.
    """

    study: dict[str, Any]
    runs: list[dict[str, Any]]
    metrics: dict[int, list[dict[str, Any]]]
    layers: Callable[[int], list[dict[str, Any]]]
    histograms: bool = True


def nonfinite_text(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def slug(text: str, limit: int = 40) -> str:
    """ASCII letters, digits and single dashes: safe in a file name and a header on any system."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


def base_name(study: dict[str, Any]) -> str:
    """``initlab-study-12-he-vs-glorot``: the download's file name and the zip's top folder."""
    tail = slug(str(study.get("name") or ""))
    return f"initlab-study-{study['id']}" + (f"-{tail}" if tail else "")


def run_name(run: dict[str, Any], width: int = 1) -> str:
    """``run-12_he_normal_seed0``, ``run-13_random_normal_stddev=0.01_seed1``: TensorBoard's run selector.

    Ids are zero-padded to ``width`` so that the selector's alphabetical order is the run order.
    """
    params = "".join(f"_{name}={format_param(value)}" for name, value in sorted((run.get("initializer_params") or {}).items()))
    cell = (f"_{run['activation']}" if run.get("activation") else "") + (f"_d{run['depth']}" if run.get("depth") else "")
    name = f"run-{run['id']:0{width}d}_{run['initializer']}{params}{cell}_seed{run['seed']}"
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", name)


def _ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: (row["epoch"], row["layer_index"], KIND_ORDER.get(row["kind"], 9), row["kind"]))


# ---------------------------------------------------------------- CSV


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else nonfinite_text(value)
    return value


def csv_chunks(data: StudyData) -> Iterator[str]:
    """Long form, one value per row: ``table`` is metrics, layer_stats or histogram.

    metrics: statistic = loss | accuracy | val_loss | val_accuracy | seconds. layer_stats: layer,
    kind (kernel | bias | gradient; a normalization layer's gamma | beta | moving_mean |
    moving_variance), statistic = mean | std | min | max | l2 | nonfinite (the count
    of NaN/Inf values). histogram: one row per bin, value = count of finite values in
    [bin_low, bin_high) (the last bin closed), the tensor's own 64 bins.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    study_id = data.study["id"]
    width = len(str(max((run["id"] for run in data.runs), default=0)))
    for run in data.runs:
        ident = [study_id, run["id"], run_name(run, width), run["initializer"], _group(run), run["seed"],
                 run.get("activation") or "", run.get("depth") or "", run["status"]]
        for row in data.metrics.get(run["id"], []):
            for name in METRICS:
                writer.writerow([*ident, row["epoch"], "metrics", "", "", "", name, _cell(row.get(name)), "", ""])
        for row in _ordered(data.layers(run["id"])):
            where = [*ident, row["epoch"]]
            tensor = [row["layer"], row["layer_index"], row["kind"]]
            for name in STATS:
                writer.writerow([*where, "layer_stats", *tensor, name, _cell(row.get(name)), "", ""])
            if data.histograms:
                edges = row.get("edges") or []
                for low, high, count in zip(edges, edges[1:], row.get("counts") or []):
                    writer.writerow([*where, "histogram", *tensor, "count", count, _cell(float(low)), _cell(float(high))])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


# ---------------------------------------------------------------- JSON


def strict(value: Any) -> Any:
    """The same structure with NaN/Inf as the API's strings and datetimes as ISO text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else nonfinite_text(value)
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _dumps(value: Any) -> str:
    return json.dumps(strict(value), allow_nan=False, separators=(",", ":"))


def _group(run: dict[str, Any]) -> str:
    return group_key(run["initializer"], run.get("initializer_params"), run.get("activation"), run.get("depth"),
                     run.get("bias_variance"))


RUN_FIELDS = ("id", "initializer", "initializer_params", "seed", "activation", "depth", "status", "epoch", "epochs", "error",
              "diverged_epoch", "device", "environment", "started_at", "finished_at")


def json_chunks(data: StudyData) -> Iterator[str]:
    """``{"format", "version", "study", "runs": [{..., "metrics": [...], "layers": [...]}]}``.

    Layer rows carry the statistics, the 64-bin histogram (edges, counts) and the quantiles of
    the finite values (``quantiles`` is null for rows recorded before quantiles existed).
    """
    study = {key: data.study.get(key) for key in ("id", "name", "status", "created_at", "spec")}
    yield f'{{"format":"initlab-study-export","version":{FORMAT_VERSION},"study":{_dumps(study)},"runs":['
    width = len(str(max((run["id"] for run in data.runs), default=0)))
    for number, run in enumerate(data.runs):
        entry = {key: run.get(key) for key in RUN_FIELDS}
        entry["name"] = run_name(run, width)
        entry["group"] = _group(run)
        entry["metrics"] = [{"epoch": row["epoch"], **{name: row.get(name) for name in METRICS}}
                            for row in data.metrics.get(run["id"], [])]
        entry["layers"] = _ordered(data.layers(run["id"]))
        yield ("," if number else "") + _dumps(entry)
    yield "]}"


# ---------------------------------------------------------------- TensorBoard


def _finite_range(row: dict[str, Any], edges: list[float], counts: list[int]) -> tuple[float, float]:
    """min and max of the finite values: recorded where finite, else the quantiles' (exact) ends, else the bins'."""
    quantiles, occupied = row.get("quantiles") or [None], [i for i, count in enumerate(counts) if count] or [0, -2]
    ends = ((row.get("min"), quantiles[0], edges[occupied[0]]), (row.get("max"), quantiles[-1], edges[occupied[-1] + 1]))
    return tuple(float(recorded) if isinstance(recorded, (int, float)) and math.isfinite(recorded)
                 else binned if stored is None else float(stored) for recorded, stored, binned in ends)


def histogram_proto(row: dict[str, Any]) -> HistogramProto:
    """A tensor's own histogram as TensorBoard's: bucket i spans (limit[i-1], limit[i]], the first from min.

    ``min``/``max`` are the finite values' own, as TensorFlow writes them: TensorBoard's
    Distributions band runs from ``min`` to ``max``, and with the bins' ±0.5 range a zeros
    kernel was drawn from -0.5 to 0.5. A constant tensor is one zero-width bucket at its value
    (what TensorBoard writes for one); else the buckets are the stored ones. ``sum``/``sum_squares``:
    from the exact mean and std when every value was finite, else from the bin centres.
    """
    edges = [float(edge) for edge in row["edges"]]
    counts = [int(count) for count in row["counts"]]
    total = sum(counts)
    low, high = _finite_range(row, edges, counts)
    mean, std = row.get("mean"), row.get("std")
    if row.get("nonfinite", 0) == 0 and mean is not None and std is not None and math.isfinite(mean) and math.isfinite(std):
        first, second = mean * total, total * (std * std + mean * mean)
    else:
        centres = [(left + right) / 2 for left, right in zip(edges, edges[1:])]
        first = sum(c * n for c, n in zip(centres, counts))
        second = sum(c * c * n for c, n in zip(centres, counts))
    if total and low == high:
        return HistogramProto(min=low, max=high, num=total, sum=low * total, sum_squares=low * low * total,
                              bucket_limit=[high], bucket=[total])
    return HistogramProto(min=low if total else edges[0], max=high if total else edges[-1], num=total, sum=first,
                          sum_squares=second, bucket_limit=edges[1:], bucket=counts)


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value).timestamp()
    return None


def run_events(run: dict[str, Any], metrics: list[dict[str, Any]], layers: list[dict[str, Any]],
               started: float, histograms: bool = True) -> bytes:
    """One run's event file: per epoch (the step) its scalars and its per-layer histograms.

    Scalars: loss, accuracy, val_loss, val_accuracy, seconds, ``gradient_norm/<layer>`` (the
    probe batch's kernel-gradient L2 norm; epoch 0 = at initialization) and, where a tensor
    held NaN/Inf, ``<layer>/<kind>_nonfinite``. Histograms: ``<layer>/<kind>``. Wall times are
    the run's start plus the recorded seconds of each epoch, so TensorBoard's "relative" axis
    shows training time.
    """
    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    writer.write(Event(wall_time=started, file_version="brain.Event:2").SerializeToString())
    by_epoch: dict[int, list[Summary.Value]] = {}
    for row in metrics:
        values = by_epoch.setdefault(row["epoch"], [])
        values += [Summary.Value(tag=name, simple_value=float(row[name])) for name in METRICS if row.get(name) is not None]
    diverging = {(row["layer"], row["kind"]) for row in layers if row.get("nonfinite")}
    for row in _ordered(layers):
        values = by_epoch.setdefault(row["epoch"], [])
        if row["kind"] == "gradient" and row.get("l2") is not None:
            values.append(Summary.Value(tag=f"gradient_norm/{row['layer']}", simple_value=float(row["l2"])))
        if (row["layer"], row["kind"]) in diverging:
            values.append(Summary.Value(tag=f"{row['layer']}/{row['kind']}_nonfinite",
                                        simple_value=float(row.get("nonfinite") or 0)))
        if histograms and row.get("edges") and row.get("counts"):
            values.append(Summary.Value(tag=f"{row['layer']}/{row['kind']}", histo=histogram_proto(row)))
    seconds = {row["epoch"]: row.get("seconds") for row in metrics}
    clock = started
    for epoch in sorted(by_epoch):
        step = seconds.get(epoch)
        clock += step if isinstance(step, float) and math.isfinite(step) and step > 0 else 0.0
        writer.write(Event(wall_time=clock, step=epoch, summary=Summary(value=by_epoch[epoch])).SerializeToString())
    return buffer.getvalue()


class _Sink(io.RawIOBase):
    """An unseekable file for ``ZipFile``: what it wrote so far can be taken and sent."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


README = """A TensorBoard log directory exported by initlab (study {id}: {name}).

Unzip it and run:  tensorboard --logdir {root}
One folder per run (run-<id>_<initializer>_seed<seed>); step = epoch (0 = at initialization).
Scalars: loss, accuracy, val_loss, val_accuracy, seconds, gradient_norm/<layer>, and
<layer>/<kind>_nonfinite where a tensor held NaN/Inf (histograms count finite values only).
Histograms: <layer>/kernel, <layer>/bias, <layer>/gradient, and a normalization layer's
<layer>/gamma, <layer>/beta (BatchNorm: also moving_mean, moving_variance); each tensor's own 64 bins.
study.json: the study's spec and each run's seed, initializer and environment (backend, library
versions, oneDNN, data fingerprint), without the numbers; `initlab submit study.json` runs it again.
"""


def tensorboard_zip_chunks(data: StudyData) -> Iterator[bytes]:
    """A zip of ``<base_name>/<run_name>/events.out.tfevents.*``, one event file per run, streamed."""
    root = base_name(data.study)
    created = _timestamp(data.study.get("created_at")) or 0.0
    width = len(str(max((run["id"] for run in data.runs), default=0)))
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr(f"{root}/README.txt", README.format(id=data.study["id"], name=data.study.get("name"), root=root))
        archive.writestr(f"{root}/study.json", "".join(json_chunks(replace(data, metrics={}, layers=lambda run_id: []))))
        for run in data.runs:
            started = _timestamp(run.get("started_at")) or created
            events = run_events(run, data.metrics.get(run["id"], []), data.layers(run["id"]), started, data.histograms)
            archive.writestr(f"{root}/{run_name(run, width)}/events.out.tfevents.{int(started):010d}.initlab.{run['id']}",
                             events)
            yield sink.take()
    yield sink.take()
