"""How dispatch splits queued runs into fused groups (a pure function; no broker, no database)."""

from __future__ import annotations

from app.queue import plan_groups


def sizes(groups: list[list[int]]) -> list[int]:
    return [len(group) for group in groups]


def test_a_study_is_split_evenly_within_the_limit():
    runs = dict.fromkeys(range(1, 17), 7)
    groups = plan_groups(runs, fuse_max=16, workers=2)
    assert groups == [list(range(1, 9)), list(range(9, 17))]
    assert sizes(plan_groups(runs, fuse_max=16, workers=1)) == [16]
    assert sizes(plan_groups(runs, fuse_max=5, workers=1)) == [4, 4, 4, 4]


def test_the_group_count_is_a_multiple_of_the_workers():
    # 3 groups on 2 workers would leave one worker idle while the other trains the third.
    assert sizes(plan_groups(dict.fromkeys(range(1, 18), 7), fuse_max=8, workers=2)) == [5, 4, 4, 4]
    assert sizes(plan_groups(dict.fromkeys(range(1, 41), 7), fuse_max=16, workers=2)) == [10, 10, 10, 10]


def test_every_worker_gets_a_share_of_a_small_study():
    assert sizes(plan_groups(dict.fromkeys(range(1, 5), 1), fuse_max=8, workers=2)) == [2, 2]
    assert sizes(plan_groups(dict.fromkeys(range(1, 4), 1), fuse_max=8, workers=4)) == [1, 1, 1]


def test_fuse_max_one_sends_every_run_alone():
    assert plan_groups(dict.fromkeys([3, 1, 2], 1), fuse_max=1, workers=2) == [[1], [2], [3]]


def test_runs_of_different_studies_never_share_a_group():
    runs = {1: 10, 2: 11, 3: 10, 4: 11, 5: 10}
    groups = plan_groups(runs, fuse_max=8, workers=1)
    assert groups == [[1, 3, 5], [2, 4]]
    assert plan_groups({}, fuse_max=8, workers=2) == []
