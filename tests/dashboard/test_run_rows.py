"""A run's heatmap and percentile bands (app/dashboard/run_rows.py): each new epoch is read and
re-binned once, the answers equal a recomputation from scratch, and a new attempt starts over."""

from __future__ import annotations

import numpy as np

from app.dashboard import histograms
from app.dashboard.run_rows import RUN_ROWS
from app.storage import records, runs, views
from support.factories import layer_rows, training_study


def record(run_id: int, epoch: int, scale: float = 0.05) -> None:
    records.record_layers(run_id, epoch, layer_rows(np.random.default_rng(epoch), scale, epoch))


def from_scratch(run_id: int, study_id: int, layer: str) -> tuple[list, list]:
    """The heatmap's counts and the bands, computed without the kept rows."""
    edges = histograms.shared_edges(study_id, "kernel", 64, False)[layer][1]
    rows = views.tensors_of_run(run_id, "kernel", layer)
    counts = [histograms._rounded(b["counts"]) for b in histograms._binned_all(edges, rows, 64)]
    bands = [histograms._percentiles(row)[0] for row in rows]
    return counts, bands


def test_new_epochs_are_read_once_and_answers_equal_a_fresh_computation(sqlite_app, monkeypatch):
    study_id, run_id = training_study()
    read = []
    original = views.tensors_of_run
    # Counts the kept rows' reads (they say after which epoch); from_scratch reads everything, unnamed.
    monkeypatch.setattr(views, "tensors_of_run",
                        lambda *a, **k: ("after_epoch" in k and read.append(k["after_epoch"])) or original(*a, **k))
    for epoch in (1, 2, 3):
        record(run_id, epoch)
        heat = histograms.run_histograms(run_id, study_id, "dense_0", "kernel", 64, False)
        bands = histograms.run_percentiles(run_id, study_id, "dense_0", "kernel")
        assert heat.epochs == bands.epochs == list(range(epoch + 1))
        counts, expected = from_scratch(run_id, study_id, "dense_0")
        assert heat.counts == counts and bands.values == expected
    # The two views share the kept rows: everything once, then only what was new after each epoch.
    assert read == [-1, 1, 1, 2, 2, 3], read
    # A wider epoch moves the shared edges: every epoch is re-binned on the new ones.
    record(run_id, 4, scale=5.0)
    heat = histograms.run_histograms(run_id, study_id, "dense_0", "kernel", 64, False)
    assert heat.counts == from_scratch(run_id, study_id, "dense_0")[0]
    assert sum(heat.counts[0]) > 0 and heat.edges[-1] > 1.0


def test_a_new_attempt_reads_its_rows_again(sqlite_app):
    study_id, run_id = training_study()
    record(run_id, 1)
    assert histograms.run_percentiles(run_id, study_id, "dense_0", "kernel").epochs == [0, 1]
    runs.release_run(run_id, note="requeued for the test")
    runs.claim_run(run_id, worker_host="test")  # attempt 2: its own rows from epoch 0
    records.record_layers(run_id, 0, layer_rows(np.random.default_rng(9), 0.05, 0))
    answer = histograms.run_percentiles(run_id, study_id, "dense_0", "kernel")
    assert answer.values[0] == histograms._percentiles(views.tensors_of_run(run_id, "kernel", "dense_0")[0])[0]
    assert len(RUN_ROWS._entries) >= 2  # one entry per attempt
