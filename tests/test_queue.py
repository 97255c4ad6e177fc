"""How dispatch splits queued runs into fused groups (a pure function; no broker, no database),
and the memory caps it is given for each study's cells (read from the stored spec)."""

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


def test_a_memory_cap_below_fuse_max_makes_more_groups_still_a_multiple_of_the_workers():
    runs = dict.fromkeys(range(1, 17), 7)
    groups = plan_groups(runs, fuse_max=16, workers=2, max_runs={7: 3})
    assert sizes(groups) == [3, 3, 3, 3, 2, 2]  # 6 groups of at most 3, sizes within one of each other
    assert sorted(run for group in groups for run in group) == list(range(1, 17))
    assert sizes(plan_groups(runs, fuse_max=4, workers=2, max_runs={7: 10})) == [4, 4, 4, 4]  # fuse_max still binds


def test_memory_caps_are_per_cell_and_never_below_one_run():
    runs = {1: "big", 2: "small", 3: "big", 4: "small", 5: "big"}
    assert plan_groups(runs, fuse_max=8, workers=1, max_runs={"big": 1}) == [[1], [3], [5], [2, 4]]
    assert plan_groups(runs, fuse_max=8, workers=1, max_runs={"big": 0, "small": 0}) == [[1], [3], [5], [2], [4]]


def test_a_cells_memory_cap_comes_from_its_stored_spec(migrated):
    """dispatch's caps: the most runs of each (study, activation, depth) one worker's memory holds."""
    from app.domain.memory import GiB, runs_that_fit
    from app.domain.spec import StudySpec
    from app.queue import runs_that_fit_of
    from app.storage import studies

    migrated()
    spec = StudySpec.model_validate({"model": {"hidden_units": [2048, 2048]}, "training": {"batch_size": 4096},
                                     "initializers": ["he_normal"], "seeds": list(range(8)), "depths": [1, 3]})
    study = studies.create_study(spec)[0]
    caps = runs_that_fit_of({(study.id, "", 1), (study.id, "", 3)}, 3 * GiB)
    assert caps == {(study.id, "", 1): runs_that_fit(spec, 3 * GiB, 1), (study.id, "", 3): runs_that_fit(spec, 3 * GiB, 3)}
    assert 1 <= caps[(study.id, "", 3)] < caps[(study.id, "", 1)]  # deeper: fewer runs per group
    assert runs_that_fit_of({(study.id, "", 3)}, 1 * GiB) == {(study.id, "", 3): 1}  # accepted: one always goes


def test_dispatch_sends_groups_that_fit_the_worker_memory(migrated, tmp_path):
    from app.domain.spec import StudySpec
    from app.queue import dispatch
    from app.storage import studies
    from worker.broker_inspect import run_ids_in_messages

    migrated(INITLAB_WORKER_MEMORY="3G", INITLAB_FUSE_MAX="16", INITLAB_WORKER_CONCURRENCY="1")
    spec = StudySpec.model_validate({"model": {"hidden_units": [2048, 2048, 2048]}, "training": {"batch_size": 4096},
                                     "initializers": ["he_normal"], "seeds": list(range(8))})
    study = studies.create_study(spec)[0]
    assert sorted(dispatch()) == [run.id for run in study.runs]
    messages = sorted((tmp_path / "state" / "broker" / "in").glob("*.initlab.msg"))
    groups = [run_ids_in_messages([path.read_bytes()]) for path in messages]
    assert sorted(len(group) for group in groups) == [2, 3, 3]  # 16 allowed by fuse_max, 3 fit in 3 GiB
