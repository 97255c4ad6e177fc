"""The study page's failure view: rows from app.storage.diagnostics, tags from app.analysis.failures.

Kept until the study's data change (app/dashboard/memo.py): every open page asks for it in
each refresh, and deciding the tags costs more than any other view of a training study.
"""

from __future__ import annotations

from app.analysis import failures
from app.dashboard.memo import MEMO
from app.schemas.failures import FailureView
from app.storage.diagnostics import failure_inputs


def failure_view(study_id: int) -> FailureView | None:
    """Each run's failure tags with evidence, and how often each occurs; None when there is no such study."""
    return MEMO.answer(study_id, "failures", (), lambda: _failure_view(study_id))


def _failure_view(study_id: int) -> FailureView | None:
    inputs = failure_inputs(study_id)
    return None if inputs is None else FailureView.model_validate(failures.failure_view(study_id, inputs))
