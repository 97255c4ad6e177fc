"""The theory check: each run's epoch-0 tensors against the distribution its initializer promises."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class RunCheck(BaseModel):
    run_id: int
    initializer: str
    theory: str | None = Field(description="the promised distribution, e.g. 'U[±0.0875]'; null: none known (lsuv)")
    approximate: bool
    ks: float | None = Field(description="Kolmogorov-Smirnov statistic from the stored quantiles (within 1/Q)")
    threshold: float | None = Field(description="1/Q + 1.95/sqrt(n): above it the tensor does not follow the theory")
    mismatch: bool | None


class Curve(BaseModel):
    initializer: str
    params: dict[str, Any]
    run_ids: list[int]
    label: str | None
    point: float | None = Field(description="a constant initializer's value (no density)")
    x: list[float]
    y: list[float]


class LayerTheory(BaseModel):
    layer: str
    fan_in: int
    fan_out: int
    size: int
    runs: list[RunCheck]
    curves: list[Curve]


class TheoryView(BaseModel):
    kind: Literal["kernel", "bias"]
    epoch: int
    layers: list[LayerTheory]
    mismatches: int
