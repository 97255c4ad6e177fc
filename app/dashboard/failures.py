"""The study page's failure view: rows from app.storage.diagnostics, tags from app.analysis.failures.

Kept until the study's data change (app/dashboard/memo.py): every open page asks for it in
each refresh, and deciding the tags costs more than any other view of a training study.
"""

from __future__ import annotations

from app.analysis import failures
from app.dashboard.memo import MEMO
from app.domain.spec import StudySpec
from app.schemas.failures import FailureView
from app.storage.diagnostics import failure_inputs


def failure_view(study_id: int) -> FailureView | None:
    """Each run's failure tags with evidence, and how often each occurs; None when there is no such study."""
    return MEMO.answer(study_id, "failures", (), lambda: _failure_view(study_id))


def _failure_view(study_id: int) -> FailureView | None:
    inputs = failure_inputs(study_id)
    if inputs is None:
        return None
    _with_cells(inputs)
    return FailureView.model_validate(failures.failure_view(study_id, inputs))


def _with_cells(inputs: dict) -> None:
    """Each run's grid cell as every view names it ("relu · 3 layers", "2 blocks", "σ_b² 0.05"; None without a
    grid: StudySpec.cell_label), so the failure table and matrix keep the grid's cells apart."""
    spec = StudySpec.model_validate(inputs["spec"])
    for run in inputs["runs"]:
        run["cell"] = spec.cell_label(run["activation"], run["depth"], run["bias_variance"])
