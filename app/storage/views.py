"""Read-side queries of the study page: the only SQL behind app/api/dashboard.py.

Each function selects exactly the columns a view needs (never whole ORM rows: the JSON
histogram columns are large) and returns plain tuples or dicts, so the pure functions in
app/analysis can work on them without a session. Queries are shaped for the indexes that
exist: runs by study_id, layer_stats by (run_id, epoch, layer, kind).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Float, func, select, type_coerce

from app.storage.db import session_scope
from app.storage.models import EpochMetric, LayerDiagnostic, LayerStat, Run, Study

RUN_COLUMNS = (Run.id, Run.initializer, Run.initializer_params, Run.seed, Run.activation, Run.depth,
               Run.weight_variance, Run.bias_variance, Run.status, Run.epoch, Run.epochs,
               Run.batch, Run.batches, Run.attempts, Run.cancel_requested, Run.error, Run.created_at,
               Run.started_at, Run.finished_at, Run.heartbeat_at)


def study_header(study_id: int) -> dict[str, Any] | None:
    with session_scope() as session:
        row = session.execute(
            select(Study.id, Study.name, Study.spec, Study.created_at).where(Study.id == study_id)
        ).first()
        return None if row is None else row._asdict()


def study_runs(study_id: int) -> list[dict[str, Any]]:
    """Every run of the study with its progress, in creation order (initializer-major)."""
    with session_scope() as session:
        rows = session.execute(select(*RUN_COLUMNS).where(Run.study_id == study_id).order_by(Run.id))
        return [row._asdict() for row in rows]


class VersionRow(NamedTuple):
    """One run's part of study_version."""

    id: int
    created_at: Any
    attempts: int
    started_at: Any  # set by every claim: a user's retry starts counting attempts from 0 again
    status: str
    error: str | None
    cancel_requested: bool
    diverged_epoch: int | None
    epoch: int
    last_stats: int | None  # newest epoch of layer_stats
    last_diagnostics: int | None  # newest epoch of layer_diagnostics


def study_version(study_id: int) -> tuple[VersionRow, ...] | None:
    """Everything a write to the study's results changes, in one query; None: no such study.

    Per run: identity (id, created_at, attempts and started_at: a new attempt rewrites its rows), status and
    error, diverged epoch, the epoch its metrics reached (record_epoch sets it in the same
    transaction), and the newest epoch of its layer statistics and of its diagnostics (each
    (run_id, epoch, ...) unique index answers max(epoch) with one probe). Not the batch
    counters, which tick while nothing the study page draws has changed.
    """
    last_stats = select(func.max(LayerStat.epoch)).where(LayerStat.run_id == Run.id).scalar_subquery()
    last_diagnostics = select(func.max(LayerDiagnostic.epoch)).where(LayerDiagnostic.run_id == Run.id).scalar_subquery()
    with session_scope() as session:
        rows = session.execute(
            select(Run.id, Run.created_at, Run.attempts, Run.started_at, Run.status, Run.error, Run.cancel_requested,
                   Run.diverged_epoch, Run.epoch, last_stats.label("last_stats"),
                   last_diagnostics.label("last_diagnostics"))
            .where(Run.study_id == study_id).order_by(Run.id)
        ).all()
    return tuple(VersionRow(*row) for row in rows) or None


def run_study_id(run_id: int) -> int | None:
    with session_scope() as session:
        return session.scalar(select(Run.study_id).where(Run.id == run_id))


def study_epoch_metrics(study_id: int) -> list[dict[str, Any]]:
    """Every recorded epoch of every run of the study, by run then epoch."""
    with session_scope() as session:
        rows = session.execute(
            select(EpochMetric.run_id, EpochMetric.epoch, EpochMetric.loss, EpochMetric.accuracy,
                   EpochMetric.val_loss, EpochMetric.val_accuracy, EpochMetric.seconds)
            .join(Run, Run.id == EpochMetric.run_id).where(Run.study_id == study_id)
            .order_by(EpochMetric.run_id, EpochMetric.epoch)
        )
        return [row._asdict() for row in rows]


def layer_scalars(after: dict[int, int]) -> list[tuple]:
    """The small columns of every layer-stats row of these runs recorded after an epoch.

    after: run id -> last epoch already known (-1: all). Rows are
    (run_id, kind, layer, layer_index, epoch, nonfinite, mean, std, min, max, l2). The JSON
    columns are left out: they make up nearly all of a row, and these rows feed only the
    shared ranges and the gradient norms (see app/dashboard/cache.py).
    """
    # Plain Float, not ExactFloat, and Core rows, not ORM ones: the per-value hooks cost more
    # than the query. SQLite's NaN then arrives as the text 'NaN' (models.ExactFloat).
    floats = [type_coerce(column, Float) for column in (LayerStat.mean, LayerStat.std, LayerStat.min, LayerStat.max, LayerStat.l2)]
    query = select(LayerStat.run_id, LayerStat.kind, LayerStat.layer, LayerStat.layer_index, LayerStat.epoch,
                   LayerStat.nonfinite, *floats)
    # One query per distinct "after" epoch, not per run: the runs of a fused group train in
    # step, so a study that is training costs one or two round trips, not one per run (a
    # query per run took most of a histogram request on PostgreSQL under load, issue 11).
    by_epoch: dict[int, list[int]] = {}
    for run_id, epoch in after.items():
        by_epoch.setdefault(max(epoch, -1), []).append(run_id)
    rows: list[tuple] = []
    with session_scope() as session:
        connection = session.connection()
        for epoch, run_ids in sorted(by_epoch.items()):
            where = [LayerStat.run_id.in_(run_ids)]
            if epoch >= 0:  # the (run_id, epoch, layer, kind) unique index serves this range
                where.append(LayerStat.epoch > epoch)
            rows += connection.execute(query.where(*where)).all()
    return [tuple(row) for row in rows]


def finite_extremes(keys: list[tuple[int, int, str, str]]) -> list[tuple[int, str, str, float, float]]:
    """(run_id, kind, layer, lowest, highest finite value) of rows holding NaN or Inf.

    keys: (run_id, epoch, layer, kind) of such rows. Their min/max are not finite, so their
    finite range comes from their quantiles (or, for rows stored before quantiles, their
    histogram's edges). There are few such rows: only diverging runs have them.
    """
    found = []
    with session_scope() as session:
        for run_id, epoch, layer, kind in keys:
            row = session.execute(
                select(LayerStat.quantiles, LayerStat.edges, LayerStat.counts).where(
                    LayerStat.run_id == run_id, LayerStat.epoch == epoch, LayerStat.layer == layer, LayerStat.kind == kind)
            ).first()
            if row is not None and sum(row.counts or []) > 0:
                finite = row.quantiles or row.edges
                found.append((run_id, kind, layer, finite[0], finite[-1]))
    return found


def tensors_at_epoch(study_id: int, kind: str, epoch: int) -> list[dict[str, Any]]:
    """Every run's ``kind`` summaries at one epoch: what the histogram grid and overlay draw.

    With the recorded min and max: the rebuilt distribution lives on exactly that range
    (app/analysis/histograms.py), which rows stored before the exact quantile ends need.
    """
    with session_scope() as session:
        rows = session.execute(
            select(LayerStat.run_id, LayerStat.layer, LayerStat.layer_index, LayerStat.nonfinite,
                   LayerStat.min, LayerStat.max, LayerStat.edges, LayerStat.counts, LayerStat.quantiles)
            .join(Run, Run.id == LayerStat.run_id)
            .where(Run.study_id == study_id, LayerStat.kind == kind, LayerStat.epoch == epoch)
            .order_by(LayerStat.run_id, LayerStat.layer_index)
        )
        return [row._asdict() for row in rows]


def tensors_of_run(run_id: int, kind: str, layer: str, after_epoch: int = -1) -> list[dict[str, Any]]:
    """One run's ``kind`` summaries of one layer at every recorded epoch after ``after_epoch``, in epoch order."""
    with session_scope() as session:
        rows = session.execute(
            select(LayerStat.epoch, LayerStat.nonfinite, LayerStat.min, LayerStat.max, LayerStat.edges,
                   LayerStat.counts, LayerStat.quantiles)
            .where(LayerStat.run_id == run_id, LayerStat.kind == kind, LayerStat.layer == layer,
                   LayerStat.epoch > after_epoch)
            .order_by(LayerStat.epoch)
        )
        return [row._asdict() for row in rows]


def data_marks(run_ids: list[int]) -> dict[int, tuple]:
    """Per run: (epochs recorded, newest metric row, newest layer-stats epoch and row).

    The live stream compares these between polls to tell the page that new data arrived.
    Asked only for runs still training: a finished run's rows no longer change.
    """
    if not run_ids:
        return {}
    with session_scope() as session:
        marks: dict[int, list] = {run_id: [0, 0, -1, 0] for run_id in run_ids}
        for run_id, count, newest in session.execute(
            select(EpochMetric.run_id, func.count(), func.max(EpochMetric.id))
            .where(EpochMetric.run_id.in_(run_ids)).group_by(EpochMetric.run_id)
        ):
            marks[run_id][0:2] = [count, newest]
        for run_id, epoch, newest in session.execute(
            select(LayerStat.run_id, func.max(LayerStat.epoch), func.max(LayerStat.id))
            .where(LayerStat.run_id.in_(run_ids)).group_by(LayerStat.run_id)
        ):
            marks[run_id][2:4] = [epoch, newest]
        return {run_id: tuple(mark) for run_id, mark in marks.items()}


def phase_inputs(study_id: int) -> dict[str, list[dict[str, Any]]]:
    """What a weight-variance sweep's phase view needs: every run's cell, its last recorded
    metrics, and each layer's measured pre-activation length and correlation at initialization."""
    with session_scope() as session:
        runs = [row._asdict() for row in session.execute(
            select(Run.id, Run.seed, Run.status, Run.activation, Run.depth, Run.weight_variance, Run.bias_variance)
            .where(Run.study_id == study_id).order_by(Run.id))]
        ids = [run["id"] for run in runs]
        latest = (select(EpochMetric.run_id, func.max(EpochMetric.epoch).label("epoch"))
                  .where(EpochMetric.run_id.in_(ids)).group_by(EpochMetric.run_id).subquery())
        finals = [row._asdict() for row in session.execute(
            select(EpochMetric.run_id, EpochMetric.epoch, EpochMetric.loss, EpochMetric.accuracy,
                   EpochMetric.val_loss, EpochMetric.val_accuracy)
            .join(latest, (latest.c.run_id == EpochMetric.run_id) & (latest.c.epoch == EpochMetric.epoch)))]
        at_init = [row._asdict() for row in session.execute(
            select(LayerDiagnostic.run_id, LayerDiagnostic.layer_index, LayerDiagnostic.preact_length,
                   LayerDiagnostic.preact_correlation)
            .where(LayerDiagnostic.run_id.in_(ids), LayerDiagnostic.epoch == 0)
            .order_by(LayerDiagnostic.run_id, LayerDiagnostic.layer_index))]
    return {"runs": runs, "finals": finals, "at_init": at_init}
