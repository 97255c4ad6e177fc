"""Run routes: one run's state, its layer statistics, cancel and retry."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Query, Response, status

from app.api.deps import RunDep, RunId, as_json, found
from app.domain.lifecycle import TERMINAL_STATUSES
from app.queue import QueueUnavailable, dispatch
from app.schemas.common import COMMON_RESPONSES, NOT_FOUND, ErrorMessage
from app.schemas.studies import RunLayers, RunPublic
from app.storage import records, runs

log = logging.getLogger("initlab.api")
router = APIRouter(prefix="/api/runs", tags=["runs"], responses={**COMMON_RESPONSES, **NOT_FOUND})


# The reads answer with as_json and look the run up themselves, not through RunDep: each
# dependency and each response-model validation of a sync route is one more hop between the
# event loop and a worker thread, and with 20 pages open each hop waited its turn for the GIL
# (issue 11: these small answers took longer than the large views).
@router.get("/{run_id}", response_model=RunPublic)
def get_run(run_id: RunId) -> Response:
    """One run: status, progress (epoch of epochs, batch of batches), device, error."""
    return as_json(found(runs.get_run(run_id), f"run {run_id}"))


@router.get("/{run_id}/layers", response_model=RunLayers)
def get_run_layers(run_id: RunId, epoch: int | None = Query(default=None, ge=0, le=100_000, description="default: latest")) -> Response:
    """Per-layer kernel, bias and gradient statistics with histograms at one epoch (0 = at init);
    a normalization layer (bn_j, ln_j) carries gamma, beta and, for BatchNorm, its moving statistics."""
    run = found(runs.get_run(run_id), f"run {run_id}")
    if epoch is not None and epoch > run.epochs:
        # An epoch still to come answers empty (the live page polls it); one past the plan never comes.
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"run {run_id} trains {run.epochs} epochs: epoch {epoch} is never recorded")
    return as_json(records.run_layers(run_id, epoch))


@router.post("/{run_id}/cancel", response_model=RunPublic,
             responses={409: {"model": ErrorMessage, "description": "only queued or running runs can be cancelled"}})
def cancel_run(run: RunDep) -> RunPublic:
    """Cancel a queued run, or ask a running one to stop at its worker's next check.

    A running run answers with ``cancel_requested: true`` until its worker stops it; one whose
    training ends before that check ends ``succeeded`` with every epoch recorded (a cancel
    stops work still to do, it does not discard finished results). A finished run is a 409,
    as a retry of a run that did not fail is.
    """
    if run.status in TERMINAL_STATUSES:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"run {run.id} is {run.status}; only queued or running runs can be cancelled")
    runs.request_cancel([run.id])
    return runs.get_run(run.id)


@router.post("/{run_id}/retry", response_model=RunPublic,
             responses={409: {"model": ErrorMessage, "description": "only failed or cancelled runs can be retried"}})
def retry_run(run: RunDep) -> RunPublic:
    """Queue a failed or cancelled run again from scratch."""
    if not runs.reset_for_retry(run.id):
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"run {run.id} is {run.status}; only failed or cancelled runs can be retried")
    try:
        dispatch([run.id])
    except QueueUnavailable as exc:
        # Queued in SQL already (as a new study's runs are): a worker's reconciler sends it once the broker
        # is back. A 503 here would tell the client to retry a retry that already happened (then a 409).
        log.warning("run %s queued again, not yet sent: %s", run.id, exc)
    return runs.get_run(run.id)
