"""The study page's failure view: rows from app.storage.diagnostics, tags from app.analysis.failures.

Kept until the study's data change (app/dashboard/memo.py): every open page asks for it in
each refresh, and deciding the tags costs more than any other view of a training study.
"""

from __future__ import annotations

from app.analysis import failures
from app.dashboard.memo import MEMO
from app.dashboard.summary import study_summary
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
    """Each run's grid cell as the summary names it ("relu · 3 layers", "2 blocks", "σ_b² 0.05"; None without a
    grid: taken from the summary's own groups, so both views say it alike) with its depth and, in a weight-variance
    sweep, its σ_w² and σ_b², so the failure table and matrix keep the grid's cells apart."""
    summary = study_summary(study_id, with_runs=False, with_stats=False)
    cells = {run_id: group.cell for group in (summary.groups if summary else []) for run_id in group.run_ids}
    grid = {run["id"]: run for run in views.study_runs(study_id)}
    for run in inputs["runs"]:
        row = grid.get(run["id"], {})
        run.update(cell=cells.get(run["id"]), depth=row.get("depth"), weight_variance=row.get("weight_variance"),
                   bias_variance=row.get("bias_variance"))
