"""The study page's failure view: rows from app.storage.diagnostics, tags from app.analysis.failures.

Kept until the study's data change (app/dashboard/memo.py): every open page asks for it in
each refresh, and deciding the tags costs more than any other view of a training study.
"""

from __future__ import annotations

from app.analysis import failures
from app.dashboard.memo import MEMO
from app.domain.spec import StudySpec
from app.schemas.failures import FailureView
from app.storage import views
from app.storage.diagnostics import failure_inputs


def failure_view(study_id: int) -> FailureView | None:
    """Each run's failure tags with evidence, and how often each occurs; None when there is no such study."""
    return MEMO.answer(study_id, "failures", (), lambda: _failure_view(study_id))


def _failure_view(study_id: int) -> FailureView | None:
    inputs = failure_inputs(study_id)
    if inputs is None:
        return None
    _with_cells(study_id, inputs)
    return FailureView.model_validate(failures.failure_view(study_id, inputs))


def _with_cells(study_id: int, inputs: dict) -> None:
    """Each run's grid cell as every view names it ("relu · 3 layers", "2 blocks", "σ_b² 0.05"; None without a
    grid: StudySpec.cell_label) with its depth and, in a weight-variance sweep, its σ_w² and σ_b², so the failure
    table and matrix keep the grid's cells apart."""
    header = views.study_header(study_id)
    spec = StudySpec.model_validate(header["spec"]) if header else None
    grid = {run["id"]: run for run in views.study_runs(study_id)}
    for run in inputs["runs"]:
        row = grid.get(run["id"], {})
        cell = spec.cell_label(row.get("activation"), row.get("depth"), row.get("bias_variance")) if spec else None
        run.update(cell=cell, depth=row.get("depth"), weight_variance=row.get("weight_variance"),
                   bias_variance=row.get("bias_variance"))
