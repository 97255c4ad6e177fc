"""A run's life: the statuses it passes through, and what a study's runs say about the study.

queued → running → succeeded | diverged | failed | cancelled; a running run whose worker is
lost goes back to queued (at most INITLAB_MAX_ATTEMPTS times), and a failed or cancelled run
can be retried. "diverged" is terminal: the loss became NaN or infinite, a result, not a failure.
"""

from __future__ import annotations

from typing import Literal

RunStatus = Literal["queued", "running", "succeeded", "diverged", "failed", "cancelled"]
TERMINAL_STATUSES = ("succeeded", "diverged", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
RETRYABLE_STATUSES = ("failed", "cancelled")


def study_status(counts: dict[str, int]) -> str:
    """One word for a study from its runs' statuses."""
    total = sum(counts.values())
    if total == 0:
        return "empty"
    if counts.get("running") or (counts.get("queued") and counts.get("queued") != total):
        return "running"
    if counts.get("queued") == total:
        return "queued"
    if counts.get("failed"):
        return "failed"
    finished = counts.get("succeeded", 0) + counts.get("diverged", 0)
    if finished:
        # A diverged run trained to its end as far as it could: a finding, not a failure
        # (run_counts tells how many diverged).
        return "succeeded" if finished == total else "partial"
    return "cancelled"
