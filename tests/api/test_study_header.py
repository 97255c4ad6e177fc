"""The study page's header names what a study needs to be run again: the subset's seed, the output
layer's initializer, the bias's parameters, and the environment(s) its runs trained in."""

from __future__ import annotations

from app.schemas.studies import StudyCreate
from app.storage import runs, studies

SPEC = {"name": "header", "dataset": {"name": "mnist", "train_samples": 300, "validation_samples": 200, "subset_seed": 1},
        "model": {"hidden_units": [8], "output_initializer": {"id": "glorot_uniform"}},
        "bias_initializer": {"id": "constant", "params": {"value": 0.1}},
        "initializers": ["he_normal", "zeros"], "seeds": [0, 1]}
TF = {"backend": "tensorflow", "keras": "3.15.1", "tensorflow": "2.21.0", "onednn": True, "data": "sha256:0123456789abcdef"}


def test_the_header_says_what_two_otherwise_equal_studies_differ_in(sqlite_app):
    study = studies.create_study(StudyCreate.model_validate(SPEC))[0]
    header = sqlite_app.get(f"/studies/{study.id}").text
    assert "300 train / 200 validation, subset seed 1" in header
    assert "output layer Glorot (Xavier) uniform" in header and "Constant (value=0.1)" in header
    assert "Trained with" not in header  # nothing trained yet

    first, second, third, fourth = (run.id for run in study.runs)
    for run_id in (first, second, third):
        runs.set_device(run_id, "CPU", TF)
    runs.set_device(fourth, "CPU", {**TF, "onednn": False})
    header = sqlite_app.get(f"/studies/{study.id}").text
    assert "<strong>2 environments, whose numbers differ</strong>" in header
    assert "Keras 3.15.1 on TensorFlow 2.21.0 (oneDNN on) · data sha256:0123456789abcdef (3 runs)" in header
    assert "(oneDNN off) · data sha256:0123456789abcdef (1 run)" in header
