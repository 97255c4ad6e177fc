"""Response models of the study page's read endpoints (app/api/dashboard.py).

Kept apart from app/schemas.py, whose models are the write API's contract. Floats may be
NaN or Inf only in per-run series (a diverged run); they travel as "NaN"/"Infinity" like
everywhere else. Aggregates leave non-finite values out and say how many values they used.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.domain.registry import ParamValue
from app.schemas.common import Numbers, UtcDatetime

Value = float | None


class MeanStd(Numbers):
    mean: Value
    std: Value = Field(description="sample standard deviation (ddof=1), as in the statistics; null below 2 values")
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
    diverged: int = Field(description="runs whose loss or val_loss became NaN or infinite (their finite values stay "
                                      "in the means, as in the statistics; NaN and ±Infinity never do)")
    undiverged: int = Field(description="runs with a finite final validation accuracy that never diverged: a group "
                                        "without one cannot lead")
    final_val_accuracy: MeanStd
    best_val_accuracy: MeanStd
    best_epoch: MeanStd
    final_val_loss: MeanStd
    seconds_per_epoch: MeanStd
    leader: bool = Field(description="highest mean final validation accuracy of its grid cell (of the study without a "
                                     "grid) over the runs the statistics count (succeeded or diverged, finite) and "
                                     "the seeds every such group of the cell has: the statistics' rank 1 top; no "
                                     "group leads a cell whose best mean is tied, or comes only from diverged runs")


class MeanCI(Numbers):
    """Over seeds: the mean with its 95 % Student-t interval (null below 2 values)."""

    mean: Value
    std: Value = Field(description="sample standard deviation over seeds (ddof=1); null below 2 values")
    ci_low: Value = Field(description="95 % t interval of the mean, clipped to [0, 1] for accuracies")
    ci_high: Value
    n: int = Field(description="seeds (finite values) used")


class PairedDifference(MeanCI):
    """This initializer minus the baseline, seed by seed (same seed = same data order and dropout).

    ci_low/ci_high: the paired t-test's unadjusted 95 % interval (it excludes 0 exactly when p_value < 0.05);
    null below 2 pairs, and with no spread below 6 pairs (see test). The verdict uses p_adjusted.
    """

    seeds: list[int] = Field(description="the seeds paired")
    p_value: Value = Field(description="two-sided p of the paired test, unadjusted; null for the baseline or below 2 "
                                       "pairs")
    p_adjusted: Value = Field(default=None, description="p_value Holm-adjusted over the `comparisons` comparisons "
                                                        "with the baseline in this cell: what the verdict uses")
    comparisons: int = Field(default=0, description="comparisons with the baseline in this cell that have a p-value "
                                                    "(the Holm family); 0 without a test")
    test: Literal["paired t", "sign-flip"] | None = Field(
        description="paired Student-t test; the exact sign-flip test when every difference is equal (no spread: "
                    "t is undefined), which cannot reject below 6 pairs")
    seeds_needed: int | None = Field(
        description="paired seeds at which the verdict's test (two-sided paired t at 5 %, Holm-adjusted over the "
                    "`comparisons`: sized at 5 % / comparisons) finds the difference at least 4 times in 5, if the "
                    "true difference and spread were the observed ones; null: undefined (under 2 pairs, no spread, no difference, "
                    "the baseline) or over 1000 (seeds_needed_over_cap)")
    seeds_needed_over_cap: bool = Field(description="more than 1000 seeds would be needed")
    distinguishable: bool | None = Field(description="false when p_adjusted >= 0.05; null for the baseline itself "
                                                     "or with fewer than 2 paired seeds")
    verdict: Literal["baseline", "too few paired seeds", "not distinguishable", "higher", "lower"]


class Differences(BaseModel):
    final_val_accuracy: PairedDifference
    best_val_accuracy: PairedDifference


class SeedEpoch(BaseModel):
    seed: int
    epoch: int | None = Field(description="first epoch at or above the threshold; null: never reached")


class ThresholdEpochs(Numbers):
    runs: int = Field(description="finished runs considered")
    reached: int
    mean: Value = Field(description="mean epoch over the seeds that reached the threshold")
    min: int | None
    max: int | None
    per_seed: list[SeedEpoch]


class GroupStatistics(BaseModel):
    """Seed-paired statistics of one initializer, over its finished runs (see StudyStatistics.diverged_rule)."""

    cell: str | None = Field(default=None, description="the grid cell compared within, e.g. 'tanh · 3 layers' "
                                                       "(null: the study has no grid)")
    baseline: str | None = Field(default=None, description="key of the group the differences are against: its "
                                                           "cell's baseline")
    choice: str | None = Field(default=None, description="the initializer key without the cell (id and parameters): "
                                                         "what ?baseline= names, in every cell")
    rank_mean: Value = Field(default=None, description="the mean final validation accuracy the rank is computed "
                                                       "on: over the cell's ranking_seeds")
    differs_from: list[str] = Field(default_factory=list, description="keys of the cell's initializers the paired "
                                    "t-test, Holm-adjusted over all pairs of the cell, tells apart from this one (on "
                                    "the ranking seeds); a tier-mate may be among them")
    rank: int | None = Field(description="tier by final validation accuracy (StudyStatistics.ranking_rule): 1 + the "
                                         "number of initializers in better tiers; null without a finished run")
    tied_with: list[str] = Field(description="keys of the initializers sharing this rank: not told apart from one "
                                             "of the tier's highest-mean initializers by the Holm-adjusted paired "
                                             "t-test, or with the same mean as a member (ranking_rule); they may "
                                             "differ from each other (differs_from)")
    runs: int
    used: int = Field(description="finished runs counted: succeeded or diverged")
    active: int = Field(description="queued or running: counted once finished")
    excluded: int = Field(description="failed or cancelled runs, left out")
    diverged: int = Field(description="counted runs that diverged")
    final_val_accuracy: MeanCI
    best_val_accuracy: MeanCI
    difference: Differences
    epochs_to_threshold: ThresholdEpochs


class CellStatistics(BaseModel):
    """One grid cell's comparison: same activation, depth and σ_b², so a seed pair differs only in initial weights."""

    cell: str | None = Field(description="e.g. 'tanh · 3 layers'; null: the study has no grid (one cell)")
    baseline: str | None = Field(description="key of this cell's group the cell's differences are against")
    baseline_reason: str
    default_baseline: str = Field(description="he_normal for the ReLU family, glorot_uniform otherwise (the cell's "
                                              "activation)")
    ranking: list[str] = Field(description="this cell's group keys by rank, then mean, best first")
    ranking_seeds: list[int] = Field(default_factory=list, description="the seeds ranks and the lead are computed on: "
                                     "those every ranked initializer of the cell has a finite final accuracy for")
    ranking_note: str | None = Field(default=None, description="why some finished runs are not in the ranks (other "
                                     "seeds than ranking_seeds); null when none is left out")


class StudyStatistics(BaseModel):
    baseline: str | None = Field(description="key of the initializer the differences are against (in a grid "
                                             "study the first cell's; each cell has its own: cells)")
    baseline_reason: str
    requested_baseline: str | None
    default_baseline: str = Field(description="he_normal for the ReLU family, glorot_uniform otherwise")
    threshold: float = Field(description="validation accuracy, percent, of epochs_to_threshold")
    confidence_level: float
    method: str = Field(description="the test behind the CIs and verdicts, in one sentence")
    ranking_rule: str = Field(description="how ranks and ties are decided, in one sentence")
    diverged_rule: str
    ranking: list[str] = Field(description="group keys by rank, then mean, best first (groups without a finished "
                                           "run left out); in a grid study cell by cell, ranks being per cell")
    cells: list[CellStatistics] = Field(default_factory=list, description="the comparisons, one per grid cell (one "
                                        "for a study without a grid): differences, tiers and ranks never cross cells")


class Group(BaseModel):
    """One initializer choice (id + parameters) and its runs, one per seed."""

    key: str
    initializer: str
    params: dict[str, ParamValue]
    activation: str | None = Field(default=None, description="the group's activation (a grid study's cell, else the model's)")
    depth: int | None = Field(default=None, description="a depths grid's depth of the group's cell, as `depths` "
                              "counts it (hidden layers; blocks with residual; conv layers of a cnn); without a "
                              "depths grid, the network's hidden layers")
    hidden_layers: int | None = Field(default=None, description="the group's network's hidden layers (convolutions "
                                      "and Dense layers; projections and the output layer not counted)")
    cell: str | None = Field(default=None, description="a grid study's cell, e.g. 'tanh · 3 layers' or '3 blocks' "
                             "(null: no grid); leaders and statistics are per cell")
    label: str
    formula: str
    run_ids: list[int]
    seeds: list[int]
    table: GroupTable
    curves: Curves
    stats: GroupStatistics | None = Field(default=None, description="seed-paired statistics (null in the compare view)")


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
    statistics: StudyStatistics | None = Field(default=None, description="baseline, threshold and method of the groups' "
                                                                        "stats (null in the compare view)")


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


class PresetVariant(BaseModel):
    label: str = Field(description="appended to the study's name")
    model: dict[str, Any] = Field(description="laid over the study's model block")


class Preset(BaseModel):
    id: str
    name: str
    description: str
    study: dict[str, Any]
    variants: list[PresetVariant] = Field(
        default_factory=list, description="when given, one study per variant (the study with the variant's model "
                                          "changes), compared side by side on /compare")
