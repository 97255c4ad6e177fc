"""What training measured: per-epoch metrics and per-layer tensor statistics.

Writes replace the (run, epoch) they concern, so writing the same epoch twice
(a redelivered task) leaves one row, never two.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import delete, select, update

from app.domain.layers import TENSOR_KINDS
from app.schemas.studies import EpochMetrics, GradientStats, LayerStats, RunLayers, RunMetrics, StudyMetrics, TensorStats
from app.storage.db import session_scope
from app.storage.models import EpochMetric, LayerStat, Run

METRIC_NAMES = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
STAT_NAMES = ("mean", "std", "min", "max", "l2")


class NotOwner(RuntimeError):
    """The run is no longer running under this worker (its lease was lost); nothing was written."""


def assert_owner(session, run_id: int, owner: str | None) -> None:
    if run_id not in owned_runs(session, [run_id], owner):
        raise NotOwner(f"run {run_id} is not running under {owner}")


def owned_runs(session, run_ids: list[int], owner: str | None) -> set[int]:
    """Which of the runs are running under ``owner`` (all of them when owner is None).

    Locks their rows in id order (PostgreSQL), so a concurrent claim waits for this write and
    two writers of overlapping groups cannot deadlock on them.
    """
    if owner is None:
        return set(run_ids)
    rows = session.execute(select(Run.id, Run.status, Run.worker_host).where(Run.id.in_(run_ids))
                           .order_by(Run.id).with_for_update()).all()
    return {row.id for row in rows if row.status == "running" and row.worker_host == owner}


def record_epoch(run_id: int, epoch: int, metrics: dict[str, float], owner: str | None = None) -> None:
    with session_scope() as session:
        assert_owner(session, run_id, owner)
        write_epoch(session, run_id, epoch, metrics)


def record_layers(run_id: int, epoch: int, layers: list[dict[str, Any]], owner: str | None = None) -> None:
    with session_scope() as session:
        assert_owner(session, run_id, owner)
        write_layers(session, run_id, epoch, layers)


def write_epoch(session, run_id: int, epoch: int, metrics: dict[str, float]) -> None:
    """record_epoch inside a caller's transaction (app/storage/epochs.py writes a group's epoch in one)."""
    session.execute(delete(EpochMetric).where(EpochMetric.run_id == run_id, EpochMetric.epoch == epoch))
    session.add(EpochMetric(run_id=run_id, epoch=epoch, **{name: metrics.get(name) for name in METRIC_NAMES}))
    session.execute(update(Run).where(Run.id == run_id).values(epoch=epoch))


def write_layers(session, run_id: int, epoch: int, layers: list[dict[str, Any]]) -> None:
    """record_layers inside a caller's transaction."""
    session.execute(delete(LayerStat).where(LayerStat.run_id == run_id, LayerStat.epoch == epoch))
    session.add_all(
        LayerStat(
            run_id=run_id, epoch=epoch, layer=item["layer"], layer_index=item["index"], kind=item["kind"],
            nonfinite=int(item.get("nonfinite", 0)), edges=list(item.get("edges", [])),
            counts=list(item.get("counts", [])), quantiles=item.get("quantiles"), **{name: item.get(name) for name in STAT_NAMES},
        )
        for item in layers
    )


def study_metrics(study_id: int) -> StudyMetrics:
    with session_scope() as session:
        runs = session.execute(
            select(Run.id, Run.initializer, Run.seed, Run.status).where(Run.study_id == study_id).order_by(Run.id)
        ).all()
        rows = session.scalars(
            select(EpochMetric).join(Run, Run.id == EpochMetric.run_id)
            .where(Run.study_id == study_id).order_by(EpochMetric.run_id, EpochMetric.epoch)
        )
        by_run: dict[int, list[EpochMetrics]] = defaultdict(list)
        for row in rows:
            by_run[row.run_id].append(EpochMetrics.model_validate(row))
        return StudyMetrics(
            study_id=study_id,
            runs=[RunMetrics(run_id=r.id, initializer=r.initializer, seed=r.seed, status=r.status, epochs=by_run[r.id])
                  for r in runs],
        )


def run_layers(run_id: int, epoch: int | None = None) -> RunLayers:
    """Layer statistics of one run at one epoch (the latest recorded when epoch is None)."""
    with session_scope() as session:
        epochs = list(session.scalars(
            select(LayerStat.epoch).where(LayerStat.run_id == run_id).distinct().order_by(LayerStat.epoch)
        ))
        chosen = epoch if epoch is not None else (epochs[-1] if epochs else 0)
        rows = session.scalars(
            select(LayerStat).where(LayerStat.run_id == run_id, LayerStat.epoch == chosen)
            .order_by(LayerStat.layer_index, LayerStat.kind)
        )
        layers: dict[str, dict[str, Any]] = {}
        for row in rows:
            entry = layers.setdefault(row.layer, {"layer": row.layer, "index": row.layer_index,
                                                  "kernel": None, "bias": None, "gradient": None})
            if row.kind == "gradient":
                entry["gradient"] = GradientStats.model_validate(row).model_copy(update={"norm": row.l2})
            elif row.kind in TENSOR_KINDS:
                entry[row.kind] = TensorStats.model_validate(row)
        # A normalization layer shares the index of the layer it normalizes and comes after it.
        ordered = sorted(layers.values(), key=lambda entry: (entry["index"], entry["kernel"] is None))
        return RunLayers(run_id=run_id, epoch=chosen, available_epochs=epochs,
                         layers=[LayerStats(**entry) for entry in ordered])
