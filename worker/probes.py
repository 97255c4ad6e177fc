"""Answer a stored signal-propagation probe: claim it, measure the networks, store the answer.

The probe is validated by the API when it is asked (app/domain/probe.py) and parsed here;
a probe another worker took, or one already answered, is left alone.
"""

from __future__ import annotations

import logging

from app.domain.numbers import json_safe
from app.domain.probe import SignalProbeSpec
from app.domain.registry import REGISTRY
from app.settings import get_settings
from app.storage import probes
from worker.events import event
from worker.retry import with_storage_retry

log = logging.getLogger("initlab.worker")


def execute_probe(probe_id: int) -> str:
    """Run one queued probe to an answer or a failure; returns which, in one word."""
    probe = with_storage_retry(probes.claim_probe, probe_id)
    if probe is None:
        return "skipped"
    try:
        answer = answer_probe(SignalProbeSpec.model_validate(probe["request"]))
    except Exception as exc:  # the page shows why; the API maps a missing data set to 503
        log.debug("probe %s failed", probe_id, exc_info=True)
        with_storage_retry(probes.finish_probe, probe_id, error=f"{exc.__class__.__name__}: {exc}")
        event("probe_failed", None, logging.WARNING, probe_id=probe_id, error=str(exc).split("\n", 1)[0])
        return "failed"
    with_storage_retry(probes.finish_probe, probe_id, result=answer)
    event("probe_answered", None, probe_id=probe_id, networks=len(answer["initializers"]))
    return "succeeded"


def answer_probe(spec: SignalProbeSpec) -> dict:
    """The answer as the API serves it: per initializer, per layer, the measured signal."""
    from worker.training.signal import load_data, measure

    dataset = spec.dataset
    data = load_data(dataset.name, get_settings().data_dir, train_samples=dataset.train_samples,
                     subset_seed=dataset.subset_seed)
    signals = measure(spec.setups(), data, spec.probe_samples)
    networks = [{"id": ref.id, "params": ref.params, "name": REGISTRY[ref.id].name, "seconds": round(signal.seconds, 4),
                 "layers": [vars(layer) for layer in signal.layers]}
                for ref, signal in zip(spec.initializers, signals)]
    return json_safe({"dataset": dataset.name, "activation": spec.model.activation, "depth": len(spec.study().architecture().hidden),
                      "probe_samples": signals[0].samples, "seed": spec.seed, "initializers": networks})
