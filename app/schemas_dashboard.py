"""Response models of the study page's read endpoints (app/api/dashboard.py).

Kept apart from app/schemas.py, whose models are the write API's contract. Floats may be
NaN or Inf only in per-run series (a diverged run); they travel as "NaN"/"Infinity" like
everywhere else. Aggregates leave non-finite values out and say how many values they used.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.schemas import Numbers, UtcDatetime

Value = float | None


class MeanStd(Numbers):
    mean: Value
    std: Value
    n: int


class Band(Numbers):
    """Per epoch over seeds: the mean line and the two bands the page can draw around it."""

    mean: list[Value]
    std: list[Value]
    min: list[Value]
    max: list[Value]
    n: list[int]


class Curves(BaseModel):
    epochs: list[int]
    loss: Band
    accuracy: Band
    val_loss: Band
    val_accuracy: Band


class GroupTable(BaseModel):
    """One row of the summary table; means and stds are over seeds."""

    runs: int
    succeeded: int
    active: int
    diverged: int = Field(description="runs whose loss or val_loss became NaN or infinite")
    final_val_accuracy: MeanStd
    best_val_accuracy: MeanStd
    best_epoch: MeanStd
    final_val_loss: MeanStd
    seconds_per_epoch: MeanStd
    leader: bool = Field(description="highest mean final validation accuracy of the study")


class Group(BaseModel):
    """One initializer choice (id + parameters) and its runs, one per seed."""

    key: str
    initializer: str
    params: dict[str, float]
    label: str
    formula: str
    run_ids: list[int]
    seeds: list[int]
    table: GroupTable
    curves: Curves


class RunSeries(Numbers):
    run_id: int
    group: str
    seed: int
    status: str
    diverged: bool
    epochs: list[int]
    loss: list[Value]
    accuracy: list[Value]
    val_loss: list[Value]
    val_accuracy: list[Value]


class StudySummaryView(BaseModel):
    study_id: int
    name: str
    status: str
    created_at: UtcDatetime
    planned_epochs: int
    seeds: list[int]
    groups: list[Group]
    runs: list[RunSeries] | None = Field(description="per-run series (null when not asked for)")
    downsampled: bool = Field(description="true when series were thinned to max_points epochs")


class CompareView(BaseModel):
    studies: list[StudySummaryView]


class LayerRef(BaseModel):
    layer: str
    index: int


class GradientGroup(BaseModel):
    key: str
    label: str
    layers: dict[str, Band] = Field(description="per layer, the gradient's L2 norm over seeds")


class GradientView(BaseModel):
    study_id: int
    epochs: list[int]
    layers: list[LayerRef]
    groups: list[GradientGroup]
    downsampled: bool


class HistogramRun(Numbers):
    run_id: int
    counts: list[float] = Field(description="values per shared bin (fractional: rebuilt from the CDF)")
    below: float = Field(description="values left of the first edge (robust range only)")
    above: float
    total: float = Field(description="finite values of the tensor")
    nonfinite: int
    approximate: bool = Field(description="re-binned from the stored 64-bin histogram: no quantiles stored")


class HistogramLayer(Numbers):
    layer: str
    index: int
    edges: list[float]
    runs: list[HistogramRun]


class HistogramView(BaseModel):
    study_id: int
    kind: str
    epoch: int
    range: str
    epochs: list[int] = Field(description="epochs with statistics of this kind")
    layers: list[HistogramLayer]
    approximate: bool


class RunHistograms(Numbers):
    """One run and layer over every epoch, on the study's shared edges (heatmap / ridgeline)."""

    run_id: int
    layer: str
    kind: str
    range: str
    edges: list[float]
    epochs: list[int]
    counts: list[list[float]]
    below: list[float]
    above: list[float]
    nonfinite: list[int]
    approximate: bool


class RunPercentiles(Numbers):
    """TensorBoard's Distributions view: nine percentiles per epoch."""

    run_id: int
    layer: str
    kind: str
    fractions: list[float]
    epochs: list[int]
    values: list[list[Value]]
    nonfinite: list[int]
    approximate: bool


class Limits(BaseModel):
    """What POST /api/studies accepts: the form validates against exactly this."""

    settings: dict[str, int] = Field(description="INITLAB_MAX_* limits in force")
    fields: dict[str, dict[str, Any]] = Field(description="dotted field -> JSON-schema constraints")


class Preset(BaseModel):
    id: str
    name: str
    description: str
    study: dict[str, Any]
