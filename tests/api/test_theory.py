"""GET /api/studies/{id}/theory on a real (migrated) SQLite database, in-process.

Epoch-0 tensors are drawn by the registry's own Keras initializers and summarized by the
worker's own stats code, then written through the storage layer; one run is written with
weights from the wrong initializer, as a registry bug would produce, and must be flagged.
"""

from __future__ import annotations

import numpy as np
import pytest

from support.draw import draw
from worker.training.stats import tensor_summary
from app.storage import runs as run_store  # noqa: E402

SHAPES = (("dense_0", (784, 32)), ("output", (32, 10)))


def write_study(drawn_by: dict[str, str]) -> tuple[int, dict[str, int]]:
    """Runs of he_uniform and glorot_normal whose epoch-0 kernels come from ``drawn_by[id]``."""
    from app.schemas.studies import StudyCreate
    from app.storage import records, studies

    study = studies.create_study(StudyCreate(
        name="theory", dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        model={"hidden_units": [32]}, training={"epochs": 1}, initializers=["he_uniform", "glorot_normal"], seeds=[0]))[0]
    run_ids = {}
    for run in study.runs:
        run_store.claim_run(run.id, worker_host="test")
        source = drawn_by.get(run.initializer, run.initializer)
        rows = []
        for index, (name, shape) in enumerate(SHAPES):
            kernel = draw(source, None, 7 + index, shape).astype(np.float32)
            rows.append({"layer": name, "index": index, "kind": "kernel", **tensor_summary(kernel)})
            rows.append({"layer": name, "index": index, "kind": "bias", **tensor_summary(np.zeros(shape[1]))})
        records.record_layers(run.id, 0, rows)
        run_ids[run.initializer] = run.id
    return study.id, run_ids


def test_runs_match_their_theory_and_a_wrong_draw_is_flagged(sqlite_app):
    # glorot_normal's runs were (as a bug would do) drawn with he_uniform.
    study_id, run_ids = write_study({"glorot_normal": "he_uniform"})
    view = sqlite_app.get(f"/api/studies/{study_id}/theory").json()
    first = view["layers"][0]
    assert (first["layer"], first["fan_in"], first["fan_out"], first["size"]) == ("dense_0", 784, 32, 784 * 32)
    checks = {row["initializer"]: row for row in first["runs"]}
    assert checks["he_uniform"]["theory"] == "U[±0.08748]" and checks["he_uniform"]["mismatch"] is False
    assert checks["glorot_normal"]["theory"].endswith("truncated at ±2σ") and checks["glorot_normal"]["mismatch"] is True
    assert checks["glorot_normal"]["ks"] > checks["glorot_normal"]["threshold"] > checks["he_uniform"]["ks"]
    flagged = [(layer["layer"], row["initializer"]) for layer in view["layers"] for row in layer["runs"] if row["mismatch"]]
    assert ("dense_0", "glorot_normal") in flagged and all(name == "glorot_normal" for _, name in flagged), flagged
    assert view["mismatches"] == len(flagged)
    curve = next(c for c in first["curves"] if c["initializer"] == "he_uniform")
    assert curve["run_ids"] == [run_ids["he_uniform"]] and len(curve["x"]) == len(curve["y"]) > 100
    assert max(curve["y"]) == pytest.approx(1 / (2 * 0.08748), rel=1e-3)  # the uniform's flat density

    biases = sqlite_app.get(f"/api/studies/{study_id}/theory?kind=bias").json()
    assert [row["initializer"] for row in biases["layers"][0]["runs"]] == ["zeros", "zeros"]  # both runs' bias scheme
    for row in biases["layers"][0]["runs"]:
        assert (row["theory"], row["ks"], row["mismatch"]) == ("W = 0", 0.0, False)
    assert biases["layers"][0]["curves"][0]["point"] == 0.0


# The bias tensors a worker builds (app/domain/architecture.py, worker/training/model.py): a hidden
# layer followed by BatchNorm has none; LayerNorm keeps them, as does a residual block's projection.
VARIANTS = [
    ({"hidden_units": [8, 8], "normalization": "batchnorm"}, ["output"]),
    ({"hidden_units": [8, 8], "normalization": "layernorm"}, ["dense_0", "dense_1", "output"]),
    ({"hidden_units": [8, 16, 16], "normalization": "batchnorm", "residual": True}, ["proj_1", "output"]),
    ({"hidden_units": [8, 16, 16], "normalization": "layernorm", "residual": True},
     ["dense_0", "dense_1", "dense_2", "proj_1", "output"]),
    ({"family": "cnn", "conv_channels": [4, 8], "hidden_units": [8], "normalization": "batchnorm"}, ["output"]),
    ({"hidden_units": [8, 8]}, ["dense_0", "dense_1", "output"]),
]


@pytest.mark.parametrize(("model", "biases"), VARIANTS, ids=lambda value: "-".join(map(str, value.values()))
                         if isinstance(value, dict) else None)
def test_only_the_biases_the_network_has_are_checked(sqlite_app, model, biases):
    from app.domain.spec import StudySpec
    from app.storage import records, studies

    spec = StudySpec.model_validate({
        "name": "bias", "dataset": {"name": "mnist", "train_samples": 100, "validation_samples": 50},
        "model": model, "training": {"epochs": 1}, "initializers": ["he_normal"], "seeds": [0]})
    study = studies.create_study(spec)[0]
    (run,) = study.runs
    run_store.claim_run(run.id, worker_host="test")
    rows = []
    for index, (name, shape) in enumerate(spec.kernel_shapes()):  # epoch 0 as the worker records it
        rows.append({"layer": name, "index": index, "kind": "kernel", **tensor_summary(draw("he_normal", None, index, shape))})
        if name in biases:
            rows.append({"layer": name, "index": index, "kind": "bias", **tensor_summary(np.zeros(shape[-1]))})
    records.record_layers(run.id, 0, rows)

    view = sqlite_app.get(f"/api/studies/{study.id}/theory?kind=bias").json()
    assert [layer["layer"] for layer in view["layers"]] == biases
    assert all(layer["runs"][0]["theory"] == "W = 0" and layer["runs"][0]["mismatch"] is False
               for layer in view["layers"])
    kernels = sqlite_app.get(f"/api/studies/{study.id}/theory").json()
    assert [layer["layer"] for layer in kernels["layers"]] == [name for name, _ in spec.kernel_shapes()]


def test_a_recorded_bias_is_listed_even_where_the_architecture_has_none(sqlite_app):
    # rows written before hidden layers lost their bias in front of BatchNorm are still checked
    from app.domain.spec import StudySpec
    from app.storage import records, studies

    spec = StudySpec.model_validate({
        "name": "old bias", "dataset": {"name": "mnist", "train_samples": 100, "validation_samples": 50},
        "model": {"hidden_units": [8], "normalization": "batchnorm"}, "training": {"epochs": 1},
        "initializers": ["he_normal"], "seeds": [0]})
    study = studies.create_study(spec)[0]
    run_store.claim_run(study.runs[0].id, worker_host="test")
    records.record_layers(study.runs[0].id, 0, [
        {"layer": name, "index": index, "kind": "bias", **tensor_summary(np.zeros(shape[-1]))}
        for index, (name, shape) in enumerate(spec.kernel_shapes())])
    view = sqlite_app.get(f"/api/studies/{study.id}/theory?kind=bias").json()
    assert [layer["layer"] for layer in view["layers"]] == ["dense_0", "output"]
    assert view["layers"][0]["runs"][0]["ks"] == 0.0


def test_unknown_study_and_bad_kind(sqlite_app):
    assert sqlite_app.get("/api/studies/999/theory").status_code == 404
    response = sqlite_app.get("/api/studies/1/theory?kind=gradient")
    assert response.status_code == 422
    assert [item["field"] for item in response.json()["detail"]] == ["kind"]
