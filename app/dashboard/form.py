"""What the new-study form needs from the server: the bounds it checks against, and the presets.

``limits`` flattens the request model's own JSON schema (so the form and the API can never
disagree about a bound) and lays this deployment's ``INITLAB_MAX_*`` settings over it;
``presets`` are ready-made studies the form can start from.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.schemas.dashboard import Limits, Preset, PresetVariant
from app.schemas.studies import StudyCreate, study_limits
from app.settings import get_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _constraints(schema: dict[str, Any], defs: dict[str, Any], prefix: str, out: dict[str, dict[str, Any]]) -> None:
    """Flatten a JSON schema into dotted field -> constraints (nullable fields say so)."""
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        if "$ref" in prop:
            _constraints(defs[prop["$ref"].rsplit("/", 1)[1]], defs, f"{path}.", out)
            continue
        options = prop.get("anyOf", [prop])
        concrete = [option for option in options if option.get("type") != "null"]
        if len(concrete) != 1:
            continue
        keep = {key: value for key, value in concrete[0].items() if key not in ("title", "description", "default")}
        if "anyOf" in keep.get("items", {}):
            del keep["items"]  # initializer refs: checked against the registry, not by bounds
        if len(options) > len(concrete):
            keep["nullable"] = True
        out[path] = keep


def limits() -> Limits:
    """What POST /api/studies accepts: the INITLAB_MAX_* settings and every field's bounds."""
    in_force = vars(study_limits(get_settings()))
    schema = StudyCreate.model_json_schema()
    fields: dict[str, dict[str, Any]] = {}
    _constraints(schema, schema.get("$defs", {}), "", fields)
    fields["training.epochs"]["maximum"] = in_force["max_epochs"]
    fields["model.hidden_units"]["maxItems"] = in_force["max_hidden_layers"]
    fields["model.hidden_units"]["items"] = {**fields["model.hidden_units"].get("items", {}),
                                             "maximum": in_force["max_hidden_units"]}
    fields["seeds"]["maxItems"] = in_force["max_seeds"]
    if "max_train_samples" in in_force:
        fields["dataset.train_samples"]["maximum"] = in_force["max_train_samples"]
    return Limits(settings=in_force, fields=fields)


@lru_cache
def presets() -> tuple[Preset, ...]:
    found = []
    for preset_id, file, description in (
        ("seed-001", "seed-mnist.json", "TensorFlow's tutorial: MNIST, Dense 128-64 ReLU, four initializers, 3 seeds."),
        ("seed-000", "seed-fashion.json", "The W&B report: Fashion-MNIST, dropout + dense, six initializers, 3 seeds."),
    ):
        path = EXAMPLES / file
        if path.is_file():
            study = json.loads(path.read_text())
            found.append(Preset(id=preset_id, name=study.get("name", file), description=description, study=study))
    found.append(Preset(
        id="activation-grid", name="activation × initializer (seed 001's table)",
        description="Seed 001's recommendation table, measured: Glorot vs He under relu, leaky_relu, tanh, sigmoid "
                    "and linear, 3 seeds each, shown as a heatmap of final validation accuracy.",
        study={"name": "activation x initializer",
               "dataset": {"name": "mnist", "train_samples": 10000, "validation_samples": 5000},
               "model": {"hidden_units": [128, 64], "activation": "relu", "dropout": 0.0, "output_initializer": None},
               "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 5},
               "initializers": ["glorot_uniform", "he_normal"], "bias_initializer": "zeros", "seeds": [0, 1, 2],
               "activations": ["relu", "leaky_relu", "tanh", "sigmoid", "linear"]}))
    found.append(Preset(
        id="deep-10", name="deep network: 10 hidden layers",
        description="Seed 001's exercise: ten ReLU layers of 64, where a too-small normal makes gradients vanish "
                    "and He keeps them alive. 20000 training images to keep it quick.",
        study={"name": "deep network: 10 hidden layers",
               "dataset": {"name": "mnist", "train_samples": 20000, "validation_samples": 5000},
               "model": {"hidden_units": [64] * 10, "activation": "relu", "dropout": 0.0, "output_initializer": None},
               "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 10},
               "initializers": [{"id": "random_normal", "params": {"stddev": 0.01}}, "glorot_uniform", "he_normal"],
               "bias_initializer": "zeros", "seeds": [0, 1, 2]}))
    found.append(Preset(
        id="edge-of-chaos", name="Edge of chaos (Schoenholz et al. 2017), MNIST, tanh",
        description="A phase diagram: tanh networks of width 100, weights of variance σ_w²/fan_in for σ_w² from 0.5 "
                    "to 4, biases of variance 0.05, depths 5 to 100, seeds 0 and 1, 320 steps of SGD each (10 epochs of 2000 "
                    "images). Mean-field theory puts the edge of chaos at σ_w² ≈ 1.76 and predicts the trainable "
                    "depth 6·ξ_c; the phase section draws both on what was measured.",
        study={"name": "edge of chaos: tanh, sigma_b^2 = 0.05",
               "dataset": {"name": "mnist", "train_samples": 2000, "validation_samples": 1000},
               "model": {"hidden_units": [100], "activation": "tanh", "dropout": 0.0, "output_initializer": None},
               "training": {"optimizer": "sgd", "learning_rate": 0.01, "batch_size": 64, "epochs": 10},
               "weight_variances": [0.5, 1.0, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0], "bias_variances": [0.05],
               "scaled_initializer": {"distribution": "normal", "mode": "fan_in"},
               "depths": [5, 10, 20, 30, 45, 60, 80, 100], "seeds": [0, 1]}))
    found.append(Preset(
        id="cnn-fashion", name="CNN on Fashion-MNIST: He vs Glorot vs LeCun vs delta-orthogonal",
        description="Seed 000 notes that Conv2D layers take a kernel_initializer too: conv 16-32 with 2×2 max "
                    "pooling and a Dense 64 head, four initializers drawn with Keras's conv fans (delta-orthogonal: "
                    "an orthogonal matrix at each kernel's centre tap), 3 seeds, 10000 training images.",
        study={"name": "cnn: He vs Glorot vs LeCun vs delta-orthogonal",
               "dataset": {"name": "fashion_mnist", "train_samples": 10000, "validation_samples": 2000},
               "model": {"family": "cnn", "conv_channels": [16, 32], "pooling": "max", "hidden_units": [64],
                         "activation": "relu", "dropout": 0.0, "output_initializer": None},
               "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 3},
               "initializers": ["he_normal", "glorot_uniform", "lecun_normal", "delta_orthogonal"],
               "bias_initializer": "zeros", "seeds": [0, 1, 2]}))
    found.append(Preset(
        id="batchnorm-rescue", name="Does BatchNorm rescue a bad initializer?",
        description="Seed 002's question: the same MLP (Dense 128-64 ReLU) without and with BatchNorm, each with "
                    "uniform [0, 1], ±1/√fan_in, Glorot and He, 3 seeds, 5 epochs on 10000 MNIST images: two linked "
                    "studies, opened side by side.",
        study={"name": "BatchNorm rescue",
               "dataset": {"name": "mnist", "train_samples": 10000, "validation_samples": 5000},
               "model": {"hidden_units": [128, 64], "activation": "relu", "dropout": 0.0, "output_initializer": None},
               "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 5},
               "initializers": ["uniform_0_1", "uniform_fan_in", "glorot_uniform", "he_normal"],
               "bias_initializer": "zeros", "seeds": [0, 1, 2]},
        variants=[PresetVariant(label="without BatchNorm", model={"normalization": "none"}),
                  PresetVariant(label="with BatchNorm", model={"normalization": "batchnorm"})]))
    found.append(Preset(
        id="deep-residual", name="Deep residual net: zero-init residual vs He",
        description="Goyal et al. 2017: a residual MLP of 21 layers of 64 with BatchNorm (10 blocks of two after a "
                    "plain first layer), He normal, with each block's last BatchNorm scale starting at 1 (plain He) "
                    "or at 0 (zero-init residual: every block starts as its skip), 3 seeds, 5 epochs on 10000 MNIST "
                    "images: two linked studies, opened side by side.",
        study={"name": "deep residual",
               "dataset": {"name": "mnist", "train_samples": 10000, "validation_samples": 5000},
               "model": {"hidden_units": [64] * 21, "activation": "relu", "dropout": 0.0, "output_initializer": None,
                         "normalization": "batchnorm", "residual": True},
               "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 5},
               "initializers": ["he_normal"], "bias_initializer": "zeros", "seeds": [0, 1, 2]},
        variants=[PresetVariant(label="He", model={"zero_init_residual": False}),
                  PresetVariant(label="He + zero-init residual", model={"zero_init_residual": True})]))
    return tuple(found)

