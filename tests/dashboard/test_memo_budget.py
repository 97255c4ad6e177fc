"""The view memo (app/dashboard/memo.py) is bounded by its answers' memory, not only their number:
every epoch of the histogram slider is its own answer, and on a 512-run study each holds about 8 MB."""

from __future__ import annotations

import gc
import threading
import tracemalloc

import numpy as np

from app.dashboard import memo as memo_py
from app.dashboard.memo import ViewMemo
from app.schemas.dashboard import HistogramLayer, HistogramRun, HistogramView
from app.settings import get_settings
from support.factories import training_study

MIB = 2**20


def histogram_view(study_id: int, epoch: int, runs: int = 128) -> HistogramView:
    """A study histogram view as app/dashboard/histograms.py builds it: 4 layers x ``runs`` runs x 64
    bins of two-decimal counts (128 runs: about 2 MB in memory, 200 kB of JSON)."""
    rng = np.random.default_rng(epoch)
    layers = []
    for index in range(4):
        edges = np.linspace(-1, 1, 65) * (index + 1)
        layers.append(HistogramLayer(layer=f"dense_{index}", index=index, edges=edges.tolist(), runs=[
            HistogramRun(run_id=run + 1, counts=np.round(rng.gamma(2.0, 30.0, 64), 2).tolist(), below=0.0, above=0.0,
                         total=4096.0, nonfinite=0, approximate=False) for run in range(runs)]))
    return HistogramView(study_id=study_id, kind="kernel", epoch=epoch, range="full", epochs=list(range(21)),
                         layers=layers, approximate=False)


def ask(memo: ViewMemo, study_id: int, epoch: int, calls: list[int], runs: int = 128) -> HistogramView:
    def compute() -> HistogramView:
        calls.append(epoch)
        return histogram_view(study_id, epoch, runs)

    return memo.answer(study_id, "histograms", ("kernel", epoch, 64, False), compute)


def test_the_estimate_is_what_the_answer_holds(sqlite_app):
    """answer_size against tracemalloc: never below what building the answer kept allocated, and not
    far above it (the walk rounds each object up to the allocator's 16 bytes, as RSS sees it)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        view = histogram_view(1, 3)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held > MIB
    assert held <= memo_py.answer_size(view) <= 1.6 * held
    assert memo_py.answer_size({"answer": 1}) > 0  # not a model: sized all the same


def test_the_memo_stays_within_its_budget_of_memory(sqlite_app, settings_env):
    """Many large distinct answers (the histogram slider swept over 24 epochs): the memo keeps what
    fits in INITLAB_VIEW_MEMO_MB, measured by tracemalloc, and still reuses the recent ones."""
    settings_env(INITLAB_VIEW_MEMO_MB="8")
    assert get_settings().view_memo_mb == 8
    study_id, _ = training_study()
    memo, calls = ViewMemo(), []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for epoch in range(24):
            ask(memo, study_id, epoch, calls)
            gc.collect()
            assert tracemalloc.get_traced_memory()[0] - before <= 8 * MIB, f"after {epoch + 1} answers"
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept > 4 * MIB  # it does keep answers: two 2 MB views at least
    assert memo.size <= 8 * MIB
    last = ask(memo, study_id, 23, calls)
    assert ask(memo, study_id, 23, calls) is last and calls.count(23) == 1  # the latest one is still kept
    ask(memo, study_id, 0, calls)
    assert calls.count(0) == 2  # the first one was dropped


def test_the_least_recently_used_answer_is_dropped_first(sqlite_app):
    study_id, _ = training_study()
    one = memo_py.answer_size(histogram_view(study_id, 0))
    memo, calls = ViewMemo(max_bytes=int(3.5 * one)), []  # room for three views
    first, second, third = (ask(memo, study_id, epoch, calls) for epoch in (0, 1, 2))
    assert ask(memo, study_id, 0, calls) is first  # used again: now the most recent
    ask(memo, study_id, 3, calls)  # a fourth: the least recently used (epoch 1) goes
    assert memo.size <= 3.5 * one
    assert ask(memo, study_id, 0, calls) is first and ask(memo, study_id, 2, calls) is third
    assert calls == [0, 1, 2, 3]
    assert ask(memo, study_id, 1, calls) is not second and calls == [0, 1, 2, 3, 1]


def test_the_count_of_answers_is_bounded_too(sqlite_app):
    study_id, _ = training_study()
    memo, calls = ViewMemo(max_entries=2, max_bytes=64 * MIB), []
    for epoch in range(4):
        ask(memo, study_id, epoch, calls, runs=2)
    ask(memo, study_id, 3, calls, runs=2)
    ask(memo, study_id, 0, calls, runs=2)
    assert calls == [0, 1, 2, 3, 0]


def test_an_answer_larger_than_the_budget_is_returned_but_not_kept(sqlite_app):
    study_id, _ = training_study()
    small = memo_py.answer_size(histogram_view(study_id, 0, runs=2))
    memo, calls = ViewMemo(max_bytes=MIB), []
    assert small < MIB < memo_py.answer_size(histogram_view(study_id, 1))
    kept = ask(memo, study_id, 0, calls, runs=2)
    big = ask(memo, study_id, 1, calls)
    assert len(big.layers[0].runs) == 128 and big.epoch == 1
    again = ask(memo, study_id, 1, calls)
    assert again is not big and calls == [0, 1, 1]  # computed again: it was not kept
    assert ask(memo, study_id, 0, calls, runs=2) is kept  # nothing else was dropped
    assert memo.size == memo_py.answer_size(kept)


def test_requests_waiting_on_an_answer_too_large_to_keep_get_it(sqlite_app):
    study_id, _ = training_study()
    memo, calls, release = ViewMemo(max_bytes=MIB), [], threading.Event()

    def compute():
        calls.append(1)
        release.wait(5)
        return histogram_view(study_id, 0)

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(memo.answer(study_id, "histograms", (), compute)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    while not calls:
        pass
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1 and len(answers) == 4 and all(answer is answers[0] for answer in answers)
    assert memo.size == 0


def test_no_budget_keeps_nothing(sqlite_app, settings_env):
    settings_env(INITLAB_VIEW_MEMO_MB="0")
    study_id, _ = training_study()
    memo, calls = ViewMemo(), []
    assert ask(memo, study_id, 0, calls, runs=2) is not ask(memo, study_id, 0, calls, runs=2)
    assert calls == [0, 0] and memo.size == 0


def test_the_default_budget(settings_env):
    settings_env()
    assert get_settings().view_memo_mb == 256
