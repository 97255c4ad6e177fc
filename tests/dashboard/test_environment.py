"""The study header's "Trained with": one environment in words, or each with its runs when they differ."""

from __future__ import annotations

from app.dashboard.environment import describe, environments

TF = {"backend": "tensorflow", "keras": "3.15.1", "tensorflow": "2.21.0", "onednn": True, "threads": 1,
      "numpy": "2.4.6", "python": "3.11.7", "data": "sha256:0123456789abcdef"}
JAX = {"backend": "jax", "keras": "3.15.1", "jax": "0.8.0", "data": "sha256:0123456789abcdef"}


def test_an_environment_in_words():
    assert describe(TF) == "Keras 3.15.1 on TensorFlow 2.21.0 (oneDNN on, 1 thread) · data sha256:0123456789abcdef"
    assert describe({**TF, "onednn": False, "threads": 0}) == (
        "Keras 3.15.1 on TensorFlow 2.21.0 (oneDNN off) · data sha256:0123456789abcdef")
    assert describe(JAX) == "Keras 3.15.1 on JAX 0.8.0 · data sha256:0123456789abcdef"


def test_runs_are_counted_per_environment_and_untrained_ones_left_out():
    runs = [{"environment": TF}, {"environment": JAX}, {"environment": dict(TF)}, {"environment": None}, {}]
    assert environments(runs) == [(describe(TF), 2), (describe(JAX), 1)]
    assert environments([{"environment": None}]) == []
