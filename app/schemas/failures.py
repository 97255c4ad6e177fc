"""The failure view: each run's failure tags with their evidence, and the initializer × activation
matrix. Values may be NaN or ±Infinity (a diverged loss, an infinite gradient ratio) and
travel as "NaN"/"Infinity" like everywhere else."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.schemas.common import Numbers


class Evidence(Numbers):
    epoch: int | None = Field(description="0 = at initialization; otherwise the epoch the value was measured after")
    layer: str | None = Field(description="the layer, or 'first/last' for a gradient ratio; null for the loss")
    value: float | None = Field(description="the measured share, ratio, spread or loss")
    detail: str


class RunTag(Numbers):
    tag: str
    label: str
    evidence: list[Evidence]


class RunFailures(Numbers):
    run_id: int
    initializer: str
    params: dict[str, Any]
    key: str
    label: str
    seed: int
    status: str
    activation: str
    cell: str | None = Field(default=None, description="the run's grid cell as the summary names it (\"relu · 3 "
                                                       "layers\", \"2 blocks\", \"σ_b² 0.05\"); null without a grid")
    depth: int | None = Field(default=None, description="the grid's depth of this run (null: the model's own)")
    weight_variance: float | None = Field(default=None, description="σ_w² of a weight-variance sweep's run")
    bias_variance: float | None = Field(default=None, description="σ_b² of a weight-variance sweep's run")
    measured: bool = Field(description="false until the run records its first epoch (or while it is queued)")
    epochs_checked: list[int] = Field(description="the epochs the tags were decided from: 0 and the latest")
    tags: list[RunTag]


class TagRule(Numbers):
    tag: str
    label: str
    rule: str


class MatrixCell(Numbers):
    key: str
    label: str
    activation: str
    cell: str | None = Field(default=None, description="the grid cell of this row (null without a grid)")
    runs: int = Field(description="measured runs of this initializer and activation (and grid cell)")
    pending: int = Field(description="runs not measured yet")
    counts: dict[str, int]
    shares: dict[str, float | None] = Field(description="per tag, counts / runs (null without measured runs)")


class FailureMatrix(Numbers):
    initializers: list[str]
    activations: list[str]
    cells: list[MatrixCell]


class FailureView(Numbers):
    study_id: int
    active: bool = Field(description="some run is queued or running: the view will change")
    tags: list[TagRule]
    runs: list[RunFailures]
    matrix: FailureMatrix
