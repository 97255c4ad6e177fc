"""The example studies in examples/ are valid and say what the README says they say."""

from __future__ import annotations

import json
from pathlib import Path

from app.schemas import StudyCreate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_seed_mnist_is_the_tensorflow_tutorial_comparison():
    spec = StudyCreate.model_validate(json.loads((EXAMPLES / "seed-mnist.json").read_text()))
    assert spec.dataset.name == "mnist" and spec.dataset.train_samples is None
    assert spec.model.hidden_units == [128, 64] and spec.model.activation == "relu"
    assert spec.model.output_initializer.id == "glorot_uniform"
    assert (spec.training.optimizer, spec.training.batch_size, spec.training.epochs) == ("adam", 128, 10)
    assert [(ref.id, ref.params) for ref in spec.initializers] == [
        ("zeros", {}), ("random_normal", {"stddev": 0.01}), ("glorot_uniform", {}), ("he_uniform", {})]


def test_seed_fashion_is_the_wandb_report_comparison():
    spec = StudyCreate.model_validate(json.loads((EXAMPLES / "seed-fashion.json").read_text()))
    assert spec.dataset.name == "fashion_mnist" and spec.model.dropout > 0
    assert spec.model.output_initializer is None  # seed 000 sets every Dense layer's initializer
    assert [ref.id for ref in spec.initializers] == [
        "zeros", "ones", "uniform_0_1", "uniform_fan_in", "normal_fan_in", "keras_default"]
    assert spec.training.epochs == 10
