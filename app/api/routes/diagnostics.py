"""Diagnostics that need no training: signal propagation through the untrained network.

``POST /api/diagnostics/signal-propagation`` takes a study's own ``model`` and ``dataset``
blocks, so a user can ask "what would my study start from?" before queueing it. The API
imports no Keras: the question is stored and a worker answers it (worker/probes.py, on the
probe queue that ``initlab up`` gives a worker of its own, so a probe never waits behind a
study). The route waits up to INITLAB_PROBE_WAIT_S for the answer (a second or two usually)
and otherwise answers 202 with a URL to poll. Identical questions share one stored answer:
a seed makes every answer exact and repeatable.
"""

from __future__ import annotations

import time
from typing import Any, get_args

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse

from app.api.deps import found
from app.api.routes.pages import page_context, templates
from app.domain.activations import Activation
from app.domain.probe import MAX_PROBE_SAMPLES
from app.queue import QueueUnavailable, send_probe
from app.schemas.common import COMMON_RESPONSES, EntityId, ErrorMessage
from app.schemas.diagnostics import ProbePending, SignalRequest, SignalResponse
from app.settings import get_settings
from app.storage import probes

router = APIRouter()
PATH = "/api/diagnostics/signal-propagation"
POLL_S = 0.05
RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": ProbePending, "description": "a worker is still measuring; poll the given URL"},
    401: COMMON_RESPONSES[401],
    503: {"model": ErrorMessage, "description": "the worker could not answer (e.g. the data set is not available "
                                                "to it), or the broker is down"},
}


def _answer(probe: dict[str, Any]) -> Response:
    if probe["status"] == "succeeded":
        return JSONResponse(probe["result"])
    if probe["status"] == "failed":
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"the signal probe failed: {probe['error']}")
    return JSONResponse(ProbePending(id=probe["id"], status=probe["status"], poll=f"{PATH}/{probe['id']}").model_dump(),
                        status_code=status.HTTP_202_ACCEPTED)


@router.post(PATH, response_model=SignalResponse, tags=["diagnostics"], responses=RESPONSES)
def signal_propagation(request: SignalRequest) -> Response:
    """Per layer of the untrained network: activation and gradient variance, dead and constant units."""
    probe, to_send = probes.probe_for(request.key(), request.model_dump(mode="json"))
    if to_send:
        try:
            send_probe(probe["id"])
        except QueueUnavailable as exc:
            # No message carries it and no reconciler resends probes: failed now, so asking again sends
            # it afresh instead of waiting on a queued row until the stale-probe sweep (minutes).
            probes.finish_probe(probe["id"], error=f"not sent: {exc}")
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"},
                                detail=f"{exc}; the probe was not sent: ask again once the broker is back") from None
    deadline = time.monotonic() + get_settings().probe_wait_s
    while probe["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(POLL_S)
        probe = probes.get_probe(probe["id"])
    return _answer(probe)


@router.get(PATH + "/{probe_id}", response_model=SignalResponse, tags=["diagnostics"],
            responses={**RESPONSES, 404: {"model": ErrorMessage, "description": "no such probe"}})
def signal_propagation_result(probe_id: EntityId) -> Response:
    """The answer of an earlier probe (202 while a worker is still measuring)."""
    return _answer(found(probes.get_probe(probe_id), f"probe {probe_id}"))


@router.get("/diagnostics/signal-propagation", response_class=HTMLResponse, include_in_schema=False)
def signal_page(request: Request) -> HTMLResponse:
    """Activation variance, gradient variance and dead units against depth, one line per initializer."""
    settings = get_settings()
    return templates.TemplateResponse(request, "signal.html", page_context(
        page="signal", max_depth=settings.max_hidden_layers, max_units=settings.max_hidden_units,
        activations=list(get_args(Activation)), max_samples=MAX_PROBE_SAMPLES))
