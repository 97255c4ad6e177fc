"""The study summary's verdicts on a real (migrated) SQLite database: a grid study's comparisons stay
inside their cells, and a study whose runs all diverged has no leader.

Studies are written through storage, as a worker writes them; the answers come from
app/dashboard/summary.py, the same function the API serves.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.dashboard.summary import study_summary
from support.factories import record_run

SEEDS = (0, 1, 2)
# Per cell a level far from the others, so a cross-cell pair would be a large "difference".
CELL_LEVEL = {("relu", 1): 0.90, ("relu", 3): 0.70, ("tanh", 1): 0.50, ("tanh", 3): 0.30}
# Within every cell: he_normal the level, glorot_uniform 2 points above it on every seed (+-0.3), lsuv = he + noise.
GAIN = {0: 0.023, 1: 0.017, 2: 0.020}
NOISE = {0: 0.004, 1: -0.005, 2: 0.001}
SEED_EFFECT = {0: 0.0, 1: 0.03, 2: -0.02}


def _create(**spec):
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    return studies.create_study(StudyCreate(
        dataset={"name": "mnist", "train_samples": 100, "validation_samples": 50},
        seeds=list(SEEDS), **spec))[0]


def _final(run) -> float:
    offset = {"he_normal": 0.0, "glorot_uniform": GAIN[run.seed], "lsuv": NOISE[run.seed]}[run.initializer]
    return CELL_LEVEL[(run.activation, run.depth)] + SEED_EFFECT[run.seed] + offset


def _cli_text(view: dict) -> str:
    """What `initlab submit --wait` prints for this summary (app/cli_summary.py)."""
    from rich.console import Console

    from app.cli_summary import summary_table

    console = Console(record=True, width=240)
    console.print(summary_table(view))
    return console.export_text()


def _grid_study() -> int:
    study = _create(name="grid", model={"hidden_units": [16], "activation": "relu"}, training={"epochs": 2},
                    initializers=["lsuv", "glorot_uniform", "he_normal"], activations=["relu", "tanh"], depths=[1, 3])
    for run in study.runs:
        record_run(run, [_final(run) - 0.05, _final(run)])
    return study.id


def test_grid_study_compares_each_group_within_its_cell_only(sqlite_app):
    study_id = _grid_study()
    view = study_summary(study_id, with_runs=False).model_dump()
    groups = {g["key"]: g for g in view["groups"]}
    assert len(groups) == 12
    cells = ["relu · 1 layer", "relu · 3 layers", "tanh · 1 layer", "tanh · 3 layers"]
    info = view["statistics"]
    assert [c["cell"] for c in info["cells"]] == cells
    # ReLU cells default to He, tanh cells to Glorot: each cell by its own activation.
    assert [(c["baseline"], c["default_baseline"]) for c in info["cells"]] == [
        ("he_normal|relu|d1", "he_normal"), ("he_normal|relu|d3", "he_normal"),
        ("glorot_uniform|tanh|d1", "glorot_uniform"), ("glorot_uniform|tanh|d3", "glorot_uniform")]
    for key, group in groups.items():
        stats = group["stats"]
        assert stats["cell"] == group["cell"] and group["cell"] in cells
        # The baseline is in the group's own cell: same activation and depth, only the initializer differs.
        assert stats["baseline"].split("|")[1:] == key.split("|")[1:], key
        # Every difference is within-cell: glorot is 2 points above he on every seed, whatever the cell's level.
        diff = stats["difference"]["final_val_accuracy"]
        initializer, activation, depth = key.split("|")
        if stats["baseline"] == key:
            assert diff["verdict"] == "baseline"
            continue
        against = stats["baseline"].split("|")[0]
        expected = {("glorot_uniform", "he_normal"): np.mean(list(GAIN.values())),
                    ("he_normal", "glorot_uniform"): -np.mean(list(GAIN.values())),
                    ("lsuv", "he_normal"): np.mean(list(NOISE.values())),
                    ("lsuv", "glorot_uniform"): np.mean([NOISE[s] - GAIN[s] for s in SEEDS])}[(initializer, against)]
        assert diff["mean"] == pytest.approx(expected, abs=1e-6), key
        assert abs(diff["mean"]) < 0.05, f"{key} was compared with another cell"
    # Ranks are per cell: each cell has its own rank 1, and the ranking lists the cells in order.
    assert [groups[k]["stats"]["rank"] for k in info["ranking"]].count(1) >= 4
    assert [groups[k]["cell"] for k in info["ranking"]] == [c for c in cells for _ in range(3)]
    for cell in info["cells"]:
        assert {groups[k]["cell"] for k in cell["ranking"]} == {cell["cell"]}
        for key in cell["ranking"]:
            assert all(groups[other]["cell"] == cell["cell"] for other in groups[key]["stats"]["tied_with"])
    # One leader per cell (glorot: 2 points up on every seed), not one for the whole study.
    leaders = sorted(k for k, g in groups.items() if g["table"]["leader"])
    assert leaders == sorted(f"glorot_uniform|{a}|d{d}" for a in ("relu", "tanh") for d in (1, 3))
    text = _cli_text(study_summary(study_id, with_runs=False).model_dump(mode="json"))
    assert sum(line.count("★") for line in text.splitlines() if "layer" in line) == 4 and "per grid cell" in text


def test_grid_study_requested_baseline_names_the_initializer_in_every_cell(sqlite_app):
    study_id = _grid_study()
    info = study_summary(study_id, with_runs=False, baseline="lsuv").model_dump()["statistics"]
    assert [c["baseline"] for c in info["cells"]] == [f"lsuv|{a}|d{d}" for a in ("relu", "tanh") for d in (1, 3)]
    assert {c["baseline_reason"] for c in info["cells"]} == {"requested"}
    assert info["baseline"] == "lsuv|relu|d1" and info["baseline_reason"] == "requested"


def test_a_study_without_grid_is_one_cell_with_its_old_answer(sqlite_app):
    study = _create(name="plain", model={"hidden_units": [16], "activation": "relu"}, training={"epochs": 1},
                    initializers=["he_normal", "glorot_uniform"])
    for run in study.runs:
        record_run(run, [0.8 + SEED_EFFECT[run.seed] + (GAIN[run.seed] if run.initializer == "glorot_uniform" else 0.0)])
    view = study_summary(study.id, with_runs=False).model_dump()
    info = view["statistics"]
    assert info["baseline"] == "he_normal" and info["baseline_reason"] == "default for relu: he_normal"
    assert info["ranking"] == ["glorot_uniform", "he_normal"]
    assert [(c["cell"], c["baseline"], c["ranking"]) for c in info["cells"]] == [(None, "he_normal", info["ranking"])]
    he, glorot = view["groups"]
    assert he["cell"] is None and glorot["stats"]["baseline"] == "he_normal" and glorot["table"]["leader"]
    assert glorot["stats"]["difference"]["final_val_accuracy"]["verdict"] == "higher"


def test_all_diverged_study_has_no_leader_and_its_means_keep_the_chance_accuracy(sqlite_app):
    """Linear, SGD at learning rate 10: every run's loss becomes NaN and its accuracy ends at chance (9.80 %)."""
    study = _create(name="all diverged", model={"hidden_units": [16], "activation": "linear"},
                    training={"epochs": 3, "optimizer": "sgd", "learning_rate": 10.0},
                    initializers=["he_normal", "glorot_uniform", "lsuv"])
    for run in study.runs:
        record_run(run, [0.35, 0.098, 0.098], status="diverged", nan_from=2)
    view = study_summary(study.id, with_runs=False).model_dump()
    for group in view["groups"]:
        table = group["table"]
        assert not table["leader"], group["key"]
        assert table["diverged"] == 3 and table["undiverged"] == 0
        # The stated rule (page, CLI, API): a diverged run's last finite accuracy stays in the mean, as in the
        # statistics; one definition of the spread, the sample std, 0 for equal values.
        assert table["final_val_accuracy"] == {"mean": pytest.approx(0.098), "std": 0.0, "n": 3}
        assert table["final_val_accuracy"]["mean"] == group["stats"]["final_val_accuracy"]["mean"]
        assert group["stats"]["diverged"] == 3
        assert group["stats"]["rank"] == 1 and len(group["stats"]["tied_with"]) == 2  # one tier: nothing tells them apart
        assert table["final_val_loss"]["n"] == 0, "NaN never reaches a mean"
    text = _cli_text(study_summary(study.id, with_runs=False).model_dump(mode="json"))
    rows = [line for line in text.splitlines() if "9.80 ± 0.00 %" in line]
    assert len(rows) == 3 and not any("★" in row for row in rows)
    assert "left out of the means" not in text and "last finite" in text


def test_a_diverged_group_cannot_lead_and_a_tie_has_no_leader(sqlite_app):
    study = _create(name="one survives", model={"hidden_units": [16], "activation": "relu"}, training={"epochs": 2},
                    initializers=["he_normal", "zeros", "glorot_uniform"])
    for run in study.runs:
        if run.initializer == "he_normal":  # diverged high: 0.6 before its loss went NaN, then stopped
            record_run(run, [0.5, 0.6], status="diverged", nan_from=2)
        else:  # zeros and glorot: both at chance, a tie
            record_run(run, [0.098, 0.098])
    view = study_summary(study.id, with_runs=False).model_dump()
    assert not any(g["table"]["leader"] for g in view["groups"])


def test_table_std_is_the_statistics_sample_std(sqlite_app):
    study = _create(name="spread", model={"hidden_units": [16], "activation": "relu"}, training={"epochs": 1},
                    initializers=["he_normal"])
    finals = {0: 0.40, 1: 0.46, 2: 0.53}
    for run in study.runs:
        record_run(run, [finals[run.seed]])
    group = study_summary(study.id, with_runs=False).model_dump()["groups"][0]
    expected = np.std(list(finals.values()), ddof=1)
    assert group["table"]["final_val_accuracy"]["std"] == pytest.approx(expected)
    assert group["stats"]["final_val_accuracy"]["std"] == pytest.approx(expected)
    assert group["curves"]["val_accuracy"]["std"] == [pytest.approx(expected)]
    assert not group["table"]["leader"], "a study's only initializer leads nothing (mark_leader)"
