"""The settings issue 15 added: the Keras backend, the GPUs a worker starts on, and INITLAB_FUSE_MAX=auto."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def settings(monkeypatch, **env: str) -> Settings:
    for name in ("INITLAB_FUSE_MAX", "INITLAB_KERAS_BACKEND", "INITLAB_WORKER_GPUS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_defaults_keep_todays_behaviour(monkeypatch):
    current = settings(monkeypatch)
    assert (current.fuse_max, current.keras_backend, current.worker_gpus) == (16, "tensorflow", [])


@pytest.mark.parametrize("text, value", [("auto", "auto"), (" AUTO ", "auto"), ("1", 1), ("64", 64)])
def test_fuse_max_is_a_count_or_auto(monkeypatch, text, value):
    assert settings(monkeypatch, INITLAB_FUSE_MAX=text).fuse_max == value


@pytest.mark.parametrize("text", ["0", "-3", "max", ""])
def test_fuse_max_refuses_anything_else(monkeypatch, text):
    with pytest.raises(ValidationError, match="fuse_max"):
        settings(monkeypatch, INITLAB_FUSE_MAX=text)


def test_backend_and_gpus_from_the_environment(monkeypatch):
    current = settings(monkeypatch, INITLAB_KERAS_BACKEND="jax", INITLAB_WORKER_GPUS="0, 1,2")
    assert (current.keras_backend, current.worker_gpus) == ("jax", ["0", "1", "2"])
    with pytest.raises(ValidationError, match="keras_backend"):
        settings(monkeypatch, INITLAB_KERAS_BACKEND="theano")
    with pytest.raises(ValidationError, match="not a GPU id"):
        settings(monkeypatch, INITLAB_WORKER_GPUS="gpu0")
