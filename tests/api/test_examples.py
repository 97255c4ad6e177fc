"""The example studies in examples/ are valid and say what the README says they say."""

from __future__ import annotations

import json
from pathlib import Path

from app.schemas.studies import StudyCreate

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


def test_edge_of_chaos_is_the_form_preset_schoenholz_2017():
    from app.dashboard.form import presets

    body = json.loads((EXAMPLES / "edge-of-chaos.json").read_text())
    (preset,) = [p for p in presets() if p.id == "edge-of-chaos"]
    assert body == preset.study  # curl and the form submit the same study
    spec = StudyCreate.model_validate(body)
    assert spec.model.activation == "tanh" and spec.bias_variances == [0.05] and spec.training.optimizer == "sgd"
    assert min(spec.weight_variances) == 0.5 and max(spec.weight_variances) == 4.0 and max(spec.depths) >= 60
