"""Run routes: one run's state, its layer statistics, cancel and retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from app.queue import dispatch
from app.schemas import COMMON_RESPONSES, NOT_FOUND, EntityId, ErrorMessage, RunLayers, RunPublic
from app.storage import records, studies

router = APIRouter(prefix="/api/runs", tags=["runs"], responses={**COMMON_RESPONSES, **NOT_FOUND})
RunId = Annotated[EntityId, Path(description="run id")]


def _run_or_404(run_id: int) -> RunPublic:
    run = studies.get_run(run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"run {run_id} not found")
    return run


@router.get("/{run_id}", response_model=RunPublic)
def get_run(run_id: RunId) -> RunPublic:
    """One run: status, progress (epoch of epochs, batch of batches), device, error."""
    return _run_or_404(run_id)


@router.get("/{run_id}/layers", response_model=RunLayers)
def get_run_layers(run_id: RunId, epoch: int | None = Query(default=None, ge=0, le=100_000, description="default: latest")) -> RunLayers:
    """Per-layer kernel, bias and gradient statistics with histograms at one epoch (0 = at init)."""
    _run_or_404(run_id)
    return records.run_layers(run_id, epoch)


@router.post("/{run_id}/cancel", response_model=RunPublic)
def cancel_run(run_id: RunId) -> RunPublic:
    """Cancel a queued run, or stop a running one within one epoch."""
    _run_or_404(run_id)
    studies.request_cancel([run_id])
    return _run_or_404(run_id)


@router.post("/{run_id}/retry", response_model=RunPublic,
             responses={409: {"model": ErrorMessage, "description": "only failed or cancelled runs can be retried"}})
def retry_run(run_id: RunId) -> RunPublic:
    """Queue a failed or cancelled run again from scratch."""
    run = _run_or_404(run_id)
    if not studies.reset_for_retry(run_id):
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"run {run_id} is {run.status}; only failed or cancelled runs can be retried")
    dispatch([run_id])
    return _run_or_404(run_id)
