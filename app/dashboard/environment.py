"""What trained a study's runs, in words, for the study page's header.

The same spec and seed repeat bit for bit only within one environment: Keras draws other
initial weights on JAX than on TensorFlow, and oneDNN's kernels round differently from
Eigen's (README, "Reproducibility"). So the header names the environment, and when a study's
runs trained in more than one (a worker upgraded, a JAX host beside a TensorFlow one, oneDNN
switched), it lists each with its runs, so that nobody compares across them unknowingly.
"""

from __future__ import annotations

from typing import Any

BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def describe(environment: dict[str, Any]) -> str:
    """ "Keras 3.15.1 on TensorFlow 2.21.0 (oneDNN on, 1 thread) · data sha256:…"."""
    backend = str(environment.get("backend") or "?")
    text = f"Keras {environment.get('keras', '?')} on {BACKEND_NAMES.get(backend, backend)} {environment.get(backend, '')}".rstrip()
    details = []
    if "onednn" in environment:
        details.append(f"oneDNN {'on' if environment['onednn'] else 'off'}")
    threads = environment.get("threads")
    if isinstance(threads, int) and threads > 0:
        details.append(f"{threads} thread{'s' if threads != 1 else ''}")
    if details:
        text += f" ({', '.join(details)})"
    if environment.get("data"):
        text += f" · data {environment['data']}"
    return text


def environments(runs: list[Any]) -> list[tuple[str, int]]:
    """Each distinct environment the runs trained in, described, with how many runs; runs that
    have not trained yet (or trained before environments were kept) are not counted."""
    counts: dict[str, int] = {}
    for run in runs:
        environment = run.get("environment") if isinstance(run, dict) else getattr(run, "environment", None)
        if environment:
            text = describe(environment)
            counts[text] = counts.get(text, 0) + 1
    return sorted(counts.items(), key=lambda item: -item[1])
