"""The theory check's view (GET /api/studies/{id}/theory), kept until the study's data change.

Each refresh of an open study page asks for it, and its KS statistics and density curves
(scipy) made it the costliest view of a training study under load (issue 11), although it
reads only epoch 0, which changes only when a run starts an attempt.
"""

from __future__ import annotations

from app.analysis.theory_report import theory_report
from app.dashboard.memo import MEMO
from app.schemas.theory import TheoryView
from app.storage import studies, views


def theory_view(study_id: int, kind: str) -> TheoryView | None:
    """Each run's epoch-0 ``kind`` tensors against its initializer's distribution; None: no such study."""
    return MEMO.answer(study_id, "theory", (kind,), lambda: _theory_view(study_id, kind), depends=_epoch_zero)


def _epoch_zero(version: tuple[views.VersionRow, ...]) -> tuple:
    """What the view reads of a run: which attempt it is on and whether that attempt recorded epoch 0.
    Epoch 0 is a run's first layer_stats, written in one transaction for every kind, so any recorded
    epoch means it is there. Its initializer, depth and variances never change."""
    return tuple((run.id, run.created_at, run.attempts, run.started_at, run.last_stats is not None)
                 for run in version)


def _theory_view(study_id: int, kind: str) -> TheoryView | None:
    spec = studies.study_spec(study_id)
    if spec is None:
        return None
    # validated once here, not at every request (the route answers with as_json)
    return TheoryView.model_validate(theory_report(spec, views.study_runs(study_id),
                                                   views.tensors_at_epoch(study_id, kind, 0), kind))
