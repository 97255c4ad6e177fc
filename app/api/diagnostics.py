"""Diagnostics that need no training: signal propagation through the untrained network.

``POST /api/diagnostics/signal-propagation`` takes a study's own ``model`` and ``dataset``
blocks, so a user can ask "what would my study start from?" before queueing it, and answers
in about a second (seed 002's 20-layer ReLU network: 0.2 s per initializer on 2 cores).
Keras is imported only inside the call, and the work runs one request at a time in FastAPI's
threadpool: two probes at once would only share the same CPU cores. Identical requests are
answered from a small cache, because every seed makes the answer exact and repeatable.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Annotated, Any, get_args

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from app.api.pages import _context, templates
from app.schemas import (COMMON_RESPONSES, Activation, DatasetSpec, ErrorMessage, InitializerChoice, InitializerRef,
                         ModelSpec, NamesInitializers)
from app.settings import get_settings
from worker.training.datasets import DATASETS, DatasetUnavailable
from worker.training.initializers import REGISTRY

router = APIRouter()

# Bounds on one request's cost, so that no valid body can hold the API for long: 16 M
# weights are 50 layers of 512 units once (1.5 s on 2 cores) or of 256 units four times;
# 8 M probe activations (per array, float32: 32 MB) are 50 layers of 512 units × 320 samples.
MAX_PROBE_WEIGHTS = 16_000_000
MAX_PROBE_ACTIVATIONS = 8 * 2**20
MAX_PROBE_SAMPLES = 512

# Variances of an exploding network overflow: they travel as "Infinity"/"NaN", like a diverged run's loss.
Measure = Annotated[float, WithJsonSchema({"anyOf": [
    {"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]})]


class SignalRequest(NamesInitializers):
    model: ModelSpec = Field(default_factory=ModelSpec, description="as in a study; dropout is off at inference")
    initializers: list[InitializerRef] = Field(min_length=1, max_length=len(REGISTRY),
                                               description="one network per initializer, all on the same probe batch")
    bias_initializer: InitializerRef = Field(default_factory=lambda: InitializerChoice(id="zeros"))
    dataset: DatasetSpec = Field(default_factory=DatasetSpec,
                                 description="as in a study: the probe is drawn from its training subset")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="the run seed: per-layer weights and the probe batch")
    probe_samples: int = Field(default=256, ge=2, le=MAX_PROBE_SAMPLES, description="probe batch size")

    @model_validator(mode="after")
    def _bounded_cost(self) -> "SignalRequest":
        info = DATASETS[self.dataset.name]
        widths = [info.input_dim, *self.model.hidden_units, info.num_classes]
        weights = sum(a * b for a, b in zip(widths, widths[1:]))
        if weights > get_settings().max_parameters:
            raise ValueError(f"model.hidden_units: the model has {weights:,} weights, more than the limit of "
                             f"{get_settings().max_parameters:,} (INITLAB_MAX_PARAMETERS)")
        if weights * len(self.initializers) > MAX_PROBE_WEIGHTS:
            raise ValueError(f"initializers: {len(self.initializers)} networks of {weights:,} weights exceed the probe's "
                             f"limit of {MAX_PROBE_WEIGHTS:,} weights in all; use fewer initializers or smaller layers")
        samples = min(self.probe_samples, self.dataset.train_samples or self.probe_samples)
        activations = samples * sum(self.model.hidden_units)
        if activations > MAX_PROBE_ACTIVATIONS:
            raise ValueError(f"probe_samples: {samples} samples × {sum(self.model.hidden_units):,} hidden units are "
                             f"{activations:,} activations, more than {MAX_PROBE_ACTIVATIONS:,}; "
                             "use fewer samples or smaller layers")
        return self


class LayerSignal(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")

    layer: str = Field(description="dense_0 … dense_{depth-1}, then output")
    index: int = Field(description="1 = the first hidden layer; depth + 1 = the output layer")
    units: int
    activation_variance: Measure = Field(description="variance of the layer's output (logits for the output layer)")
    preactivation_variance: Measure
    gradient_variance: Measure = Field(description="variance of d(each sample's loss)/d(pre-activation)")
    dead_fraction: Measure = Field(description="share of units whose output is the same on every probe sample")


class InitializerSignal(BaseModel):
    id: str
    params: dict[str, float | str | None]
    name: str
    seconds: float = Field(description="time to build and probe this network")
    layers: list[LayerSignal]


class SignalResponse(BaseModel):
    dataset: str
    activation: str
    depth: int = Field(description="hidden layers")
    probe_samples: int = Field(description="samples in the probe batch actually used")
    seed: int
    initializers: list[InitializerSignal]


_lock = threading.Lock()


@functools.lru_cache(maxsize=32)
def _propagate(body: str, data_dir: Path | None) -> dict[str, Any]:
    from worker.training.signal import load_data, measure
    from worker.training.trainer import RunConfig

    request = SignalRequest.model_validate_json(body)
    spec, dataset, bias = request.model, request.dataset, request.bias_initializer
    output = spec.output_initializer
    data = load_data(dataset.name, data_dir, train_samples=dataset.train_samples, subset_seed=dataset.subset_seed,
                     download=False)
    networks = []
    for ref in request.initializers:
        config = RunConfig(
            run_id=0, seed=request.seed, dataset=dataset.name, hidden_units=list(spec.hidden_units),
            activation=spec.activation, dropout=spec.dropout, initializer=ref.id, initializer_params=ref.params,
            bias_initializer=bias.id, bias_initializer_params=bias.params,
            output_initializer=output.id if output else None, output_initializer_params=output.params if output else {},
        )
        signal = measure(config, data, request.probe_samples)
        networks.append({"id": ref.id, "params": ref.params, "name": REGISTRY[ref.id].name,
                         "seconds": round(signal.seconds, 4), "layers": [vars(layer) for layer in signal.layers]})
    return {"dataset": dataset.name, "activation": spec.activation, "depth": len(spec.hidden_units),
            "probe_samples": signal.samples, "seed": request.seed, "initializers": networks}


@router.post("/api/diagnostics/signal-propagation", response_model=SignalResponse, tags=["diagnostics"],
             responses={401: COMMON_RESPONSES[401],
                        503: {"model": ErrorMessage, "description": "the data set is not available to the API"}})
def signal_propagation(request: SignalRequest) -> dict[str, Any]:
    """Per layer of the untrained network: activation and gradient variance, dead-unit fraction."""
    try:
        with _lock:
            return _propagate(request.model_dump_json(), get_settings().data_dir)
    except DatasetUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc


@router.get("/diagnostics/signal-propagation", response_class=HTMLResponse, include_in_schema=False)
def signal_page(request: Request) -> HTMLResponse:
    """Activation variance, gradient variance and dead units against depth, one line per initializer."""
    settings = get_settings()
    return templates.TemplateResponse(request, "signal.html", _context(
        page="signal", max_depth=settings.max_hidden_layers, max_units=settings.max_hidden_units,
        activations=list(get_args(Activation)), max_samples=MAX_PROBE_SAMPLES))

