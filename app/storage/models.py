"""ORM tables. Only the repository modules touch these classes.

Metrics are plain rows keyed by (run, epoch) and layer statistics by
(run, epoch, layer, kind): a redelivered task rewrites its rows instead of
duplicating them. Floats go through ``ExactFloat`` so NaN and Inf survive SQLite.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ExactFloat(TypeDecorator):
    """A float column that keeps NaN.

    PostgreSQL stores NaN and ±Infinity natively. SQLite turns a bound NaN into
    NULL, which would make a diverged run look like a missing value, so there
    NaN is stored as the text 'NaN' (SQLite keeps text that is not a number as
    text even in a REAL column) and read back as float('nan').
    """

    impl = Float
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        value = float(value)
        if dialect.name == "sqlite" and math.isnan(value):
            return "NaN"
        return value

    def bind_processor(self, dialect):
        # Float's own bind processor would turn the text 'NaN' back into a float.
        return lambda value: self.process_bind_param(value, dialect)

    def process_result_value(self, value: Any, dialect) -> Any:
        return None if value is None else float(value)


class Base(DeclarativeBase):
    type_annotation_map = {float: ExactFloat, dict[str, Any]: JSON, list[Any]: JSON}


class Study(Base):
    __tablename__ = "studies"
    # sqlite_autoincrement: a deleted study's id is never given to a new one (migration 0010).
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_studies_idempotency_key"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]]
    # The client's Idempotency-Key of the POST that created the study: a repeated
    # POST with the same key gets this study back instead of a second one.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # SHA-256 of the canonical spec of that POST: the same key with another study is refused (422).
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # The broker queue its runs are sent to (a study's "queue", e.g. "gpu"); NULL: INITLAB_QUEUE.
    queue: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    runs: Mapped[list["Run"]] = relationship(back_populates="study", order_by="Run.id", cascade="all, delete-orphan")


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    initializer: Mapped[str] = mapped_column(String(64))
    initializer_params: Mapped[dict[str, Any]]
    seed: Mapped[int]
    # A grid study's cell (null outside a grid: the study's model.activation / hidden_units).
    activation: Mapped[str | None] = mapped_column(String(32), default=None)
    depth: Mapped[int | None] = mapped_column(default=None)
    # A weight-variance sweep's cell (null otherwise): σ_w² of the kernels, σ_b² of the biases.
    weight_variance: Mapped[float | None] = mapped_column(default=None)
    bias_variance: Mapped[float | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    epoch: Mapped[int] = mapped_column(default=0)
    epochs: Mapped[int]
    batch: Mapped[int] = mapped_column(default=0)
    batches: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Status "diverged": the first epoch whose training or validation loss was NaN/Inf.
    diverged_epoch: Mapped[int | None] = mapped_column(default=None)
    worker_host: Mapped[str | None] = mapped_column(String(200), default=None)
    device: Mapped[str | None] = mapped_column(String(200), default=None)
    # What else decides its numbers (worker/training/device.py ``environment``): Keras, its backend
    # and their versions, oneDNN, threads, the data's fingerprint. NULL until it trains.
    environment: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # When a task message for the current attempt was handed to the broker; NULL
    # means no message carries this run yet, and the dispatcher will send one.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    study: Mapped[Study] = relationship(back_populates="runs")


class EpochMetric(Base):
    __tablename__ = "epoch_metrics"
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_epoch_metrics_run_epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int]
    loss: Mapped[float | None]
    accuracy: Mapped[float | None]
    val_loss: Mapped[float | None]
    val_accuracy: Mapped[float | None]
    seconds: Mapped[float | None]


class LayerStat(Base):
    __tablename__ = "layer_stats"
    __table_args__ = (UniqueConstraint("run_id", "epoch", "layer", "kind", name="uq_layer_stats_run_epoch_layer_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int]
    layer: Mapped[str] = mapped_column(String(64))
    layer_index: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    mean: Mapped[float | None]
    std: Mapped[float | None]
    min: Mapped[float | None]
    max: Mapped[float | None]
    l2: Mapped[float | None]
    nonfinite: Mapped[int] = mapped_column(Integer, default=0)
    edges: Mapped[list[Any]]
    counts: Mapped[list[Any]]
    # Evenly spaced quantiles of the finite values (0 %, 1/Q, ..., 100 %): with
    # them any histogram on shared edges, and any percentile band, can be drawn
    # for every run and epoch of a study, within 1/Q of the values per bin.
    quantiles: Mapped[list[Any] | None] = mapped_column(default=None)


class LayerDiagnostic(Base):
    """How one Dense layer's units behaved on the probe batch at one epoch (0 = at init).

    Written by the worker beside layer_stats (worker/training/activations.py); the failure
    tags (dead ReLUs, saturation, symmetry never broken) are decided from these rows at read
    time, so a change of threshold needs no new training. A fraction is NULL where it does
    not apply (dead units for a non-ReLU layer, saturation for a non-tanh/sigmoid one).
    """

    __tablename__ = "layer_diagnostics"
    __table_args__ = (UniqueConstraint("run_id", "epoch", "layer", name="uq_layer_diagnostics_run_epoch_layer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int]
    layer: Mapped[str] = mapped_column(String(64))
    layer_index: Mapped[int]
    activation: Mapped[str] = mapped_column(String(32))
    units: Mapped[int]
    # Share of units that output 0 on every probe sample (ReLU layers).
    dead_fraction: Mapped[float | None]
    # Share of (sample, unit) outputs within 1 % of the activation's bounds (tanh, sigmoid).
    saturated_fraction: Mapped[float | None]
    mean: Mapped[float | None]
    std: Mapped[float | None]
    # max |unit j's incoming weights and bias - unit 0's| / max |weight|; NULL: one unit or non-finite weights.
    unit_spread: Mapped[float | None]
    units_identical: Mapped[bool | None] = mapped_column(Boolean, default=None)
    # Mean-field quantities of the pre-activations h = x·W + b on the probe batch (Poole et al.
    # 2016): q, the mean squared pre-activation, and c, the mean correlation between two samples'
    # pre-activation vectors (q_ab / sqrt(q_aa q_bb), over pairs of probe samples).
    preact_length: Mapped[float | None] = mapped_column(default=None)
    preact_correlation: Mapped[float | None] = mapped_column(default=None)


class SignalProbe(Base):
    """A signal-propagation request and, once a worker has run it, its answer.

    The API needs no Keras: it stores the request and a worker measures the untrained networks
    (worker/probes.py). Identical requests share one row (``key``: the request's hash), so a
    repeated question is answered from storage, since a seed makes every answer repeatable.
    """

    __tablename__ = "signal_probes"
    __table_args__ = (UniqueConstraint("key", name="uq_signal_probes_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, running, succeeded, failed
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Worker(Base):
    """One worker process, as it announces itself: where it runs, what it serves, what it trains.

    Written by the worker itself (worker/heartbeat.py) every few seconds; the dashboard's
    workers panel and the check of a study's queue read it. Keyed by the Celery node name
    (``name@host``): a worker started again under its name takes its row over; a second live
    process under the same name gets a row keyed ``name#pid`` (app/storage/workers.py).
    """

    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("name", name="uq_workers_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    queues: Mapped[list[Any]]
    # "CPU" or the accelerator's name (worker/training/device.py), and the Keras backend; NULL until detected.
    device: Mapped[str | None] = mapped_column(String(200), default=None)
    backend: Mapped[str | None] = mapped_column(String(32), default=None)
    # The runs (of one study) it trains now; empty when idle.
    current_runs: Mapped[list[Any]]
    current_study: Mapped[int | None] = mapped_column(default=None)
    # Its heartbeat period: three of them without a beat and the worker counts as lost.
    interval_s: Mapped[float]
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set by a clean shutdown; a killed worker never sets it and shows as lost instead.
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
