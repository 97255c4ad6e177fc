"""The phase view of a weight-variance sweep and the mean-field theory endpoint.

ξ_c is infinite at the edge of chaos and q* where the length diverges: such values travel as
"Infinity" (and a NaN as "NaN"), as everywhere else in the API.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, WithJsonSchema

Measure = Annotated[float, WithJsonSchema({"anyOf": [
    {"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]})]


class MeanFieldPoint(BaseModel):
    weight_variance: float
    q_star: Measure = Field(description="fixed point of the length map (Infinity: the length diverges)")
    c_star: Measure | None = Field(description="fixed point of the correlation map (1: ordered phase)")
    chi_1: Measure = Field(description="σ_w² E[φ'(√q* z)²]: 1 at the edge of chaos")
    chi_c: Measure | None
    xi_q: Measure | None = Field(description="depth scale of the length's convergence")
    xi_c: Measure | None = Field(description="depth scale of the correlation's convergence (Infinity at the edge)")


class MeanFieldTable(BaseModel):
    activation: str
    bias_variance: float
    critical_weight_variance: float | None = Field(description="the σ_w² where χ₁ = 1 (null: none for this σ_b²)")
    points: list[MeanFieldPoint]


class TheoryCurve(BaseModel):
    weight_variance: list[float]
    depth: list[float | None] = Field(description="c·ξ_c, cut at twice the study's deepest network")


class PhaseTheory(MeanFieldTable):
    c: float
    curve: TheoryCurve


class PhaseCell(BaseModel):
    weight_variance: float
    bias_variance: float
    depth: int = Field(description="the cell's networks' hidden layers (one of the view's depths)")
    activation: str | None
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n: int = Field(description="seeds with a finite value of the metric")
    diverged: int
    finished: int
    run_ids: list[int]


class Trajectory(BaseModel):
    c: list[Measure | None]
    q: list[Measure | None]


class CellCorrelation(BaseModel):
    weight_variance: float
    bias_variance: float
    depth: int = Field(description="the cell's networks' hidden layers")
    layers: list[int]
    measured_c: list[float | None] = Field(description="mean over seeds of the pre-activation correlation at init")
    measured_q: list[float | None]
    predicted: Trajectory | None = Field(description="the correlation map from the measured first layer on")


class MeasuredEdge(BaseModel):
    activation: str
    bias_variance: float
    threshold: float = Field(description="a cell trains when its mean accuracy reaches this: halfway from chance "
                                         "(0.1) to the diagram's best cell")
    best: float = Field(description="the diagram's best cell (its mean accuracy)")
    chance: float = Field(description="the accuracy of a network that has learnt nothing (0.1: ten classes)")
    margin: float = Field(description="how far above chance the best cell must be for any cell to train: at least "
                                      "0.1, and more where the best of as many cells at chance, on as few images "
                                      "and seeds, would pass that in more than noise_rate of diagrams")
    trained: bool = Field(description="whether the best cell is that far above chance; false: nothing trained, "
                                      "so no trainable depth and no measured σ_w*")
    samples: int = Field(description="the images each run's accuracy is measured on (validation or training)")
    seeds: int = Field(description="the fewest seeds a cell's mean averages")
    cells: int = Field(description="the diagram's cells with a finite mean")
    noise_rate: float = Field(description="the share of diagrams at chance whose best cell may pass the margin (0.01)")
    weight_variance: list[float]
    trainable_depth: list[int | None] = Field(description="per σ_w²: the deepest cell that trains (null: none)")
    critical_weight_variance: float | None = Field(
        description="the measured σ_w*: the σ_w² that trains deepest (the mean of ties)")
    critical_range: list[float] = Field(description="the lowest and highest σ_w² of that tie")


class PhaseView(BaseModel):
    study_id: int
    metric: str
    activations: list[str]
    weight_variances: list[float]
    bias_variances: list[float]
    depths: list[int] = Field(description="the networks' hidden layers (the y axis; a grid's residual depth d is "
                                          "2d - 1 layers, a cnn counts its convolutions and Dense head)")
    cells: list[PhaseCell]
    theory: list[PhaseTheory]
    correlations: list[CellCorrelation]
    edges: list[MeasuredEdge] = Field(description="the measured trainable region per activation and σ_b² "
                                                  "(accuracy metrics only)")
    theory_caveat: str | None = Field(default=None, description="why the theory is only a reference for this "
                                      "network (convolutions, normalization, residual blocks); null for a plain MLP")
