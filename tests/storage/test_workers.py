"""The workers table on the embedded default: a worker registers, beats, stops or goes silent
(lost); the queues live workers serve decide which study queues are accepted; runs of a study
with a queue are sent, and re-sent by the reconciler, to that queue."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.storage import workers
from app.storage.db import session_scope
from app.storage.models import Worker, utcnow


@pytest.fixture
def db(migrated):
    return migrated()


def _silence(name: str, seconds: float, pid: int | None = None) -> None:
    """Move the last beat of the worker(s) under a node name (one process of them, given its pid) into the past."""
    where = [Worker.name.in_((name, f"{name}#{pid}")), Worker.pid == pid] if pid else [Worker.name.startswith(name)]
    with session_scope() as session:
        session.execute(update(Worker).where(*where).values(last_heartbeat=utcnow() - timedelta(seconds=seconds)))


def test_a_worker_registers_beats_trains_and_stops(db):
    workers.register_worker("w1@hostA", "hostA", 101, ["gpu", "gpu.probe"], 2.0)
    (worker,) = workers.list_workers()
    assert (worker.name, worker.host, worker.pid, worker.queues, worker.state) == \
        ("w1@hostA", "hostA", 101, ["gpu", "gpu.probe"], "idle")
    assert workers.beat("w1@hostA", 101, device="CPU", backend="jax", current_runs=[7, 8], current_study=3)
    (worker,) = workers.list_workers()
    assert (worker.state, worker.current_runs, worker.current_study, worker.device, worker.backend) == \
        ("training", [7, 8], 3, "CPU", "jax")
    assert not workers.beat("w1@hostA", 999)  # another process's beat does not count for this one
    workers.mark_stopped("w1@hostA", 101)
    (worker,) = workers.list_workers()
    assert (worker.state, worker.current_runs) == ("stopped", [])
    assert workers.served_queues() == []


def test_a_silent_worker_is_lost_after_three_intervals_and_a_restart_takes_its_row_over(db):
    workers.register_worker("w1@hostA", "hostA", 101, ["initlab"], 2.0)
    _silence("w1@hostA", 5.0)
    assert workers.list_workers()[0].state == "idle"
    _silence("w1@hostA", 6.5)
    assert workers.list_workers()[0].state == "lost"
    assert workers.served_queues() == []
    workers.register_worker("w1@hostA", "hostA", 202, ["initlab"], 2.0)  # started again under its name
    assert [(w.pid, w.state) for w in workers.list_workers()] == [(202, "idle")]


def test_only_queues_a_live_worker_serves_are_accepted_besides_the_default(db):
    assert workers.queue_refusal(None, "initlab") is None
    assert workers.queue_refusal("initlab", "initlab") is None  # served or not, as ever
    refusal = workers.queue_refusal("gpu", "initlab")
    # No worker: nothing is served, and the default queue is named for what it is (QA pass: "served now: "initlab"").
    assert refusal and '"gpu"' in refusal and 'served now: "initlab"' not in refusal
    assert 'queues served now: none; the default queue "initlab" is always accepted (its runs wait for a worker)' \
        in refusal
    workers.register_worker("g@gpuhost", "gpuhost", 5, ["gpu", "gpu.probe"], 2.0)
    assert workers.queue_refusal("gpu", "initlab") is None
    assert workers.queue_refusal("gpu.probe", "initlab")  # a probe queue trains no study
    workers.register_worker("c@cpuhost", "cpuhost", 6, ["initlab"], 2.0)
    assert workers.queue_refusal("tpu", "initlab").endswith('queues served now: "gpu", "initlab"')
    _silence("g@gpuhost", 60)
    assert "no live worker serves" in workers.queue_refusal("gpu", "initlab")
    _silence("c@cpuhost", 60)
    assert 'queues served now: none; the default queue "initlab"' in workers.queue_refusal("gpu", "initlab")


def test_two_live_processes_under_one_node_name_are_both_listed(db):
    """Plain `initlab worker` twice on one host (both initlab@hostB): each registration deleted the other's
    row, so the panel showed one row whose pid flipped at every beat. Now each process keeps its own."""
    workers.register_worker("initlab@hostB", "hostB", 101, ["initlab"], 2.0)
    workers.register_worker("initlab@hostB", "hostB", 202, ["initlab"], 2.0)
    assert workers.beat("initlab@hostB", 101, current_runs=[6], current_study=2)  # its row was not taken over
    assert workers.beat("initlab@hostB", 202, current_runs=[7], current_study=2)
    listed = [(w.name, w.pid, w.state, w.current_runs) for w in workers.list_workers()]
    assert listed == [("initlab@hostB", 101, "training", [6]), ("initlab@hostB", 202, "training", [7])]
    assert (workers.namesakes("initlab@hostB", 101), workers.namesakes("initlab@hostB", 202)) == ([202], [101])
    workers.mark_stopped("initlab@hostB", 202)
    assert [(w.pid, w.state) for w in workers.list_workers()] == [(101, "training"), (202, "stopped")]
    workers.register_worker("initlab@hostB", "hostB", 303, ["initlab"], 2.0)  # 202 started again: its row goes
    assert [(w.pid, w.state) for w in workers.list_workers()] == [(101, "training"), (303, "idle")]
    assert workers.served_queues() == ["initlab"]


def test_a_worker_killed_just_before_its_restart_is_no_namesake_and_its_row_goes_once_lost(db):
    """kill -9, and `initlab up` starts it again within three beats: the dead one still looks live for a
    few seconds, but it has not beaten since its successor started, so no duplicate is reported; once
    lost, its successor's check removes its row (a restart takes its predecessor's row over, as before)."""
    workers.register_worker("initlab@hostB", "hostB", 101, ["initlab"], 2.0)
    _silence("initlab@hostB", 1.0, pid=101)  # its last beat, just before it was killed
    workers.register_worker("initlab@hostB", "hostB", 202, ["initlab"], 2.0)
    assert [(w.pid, w.state) for w in workers.list_workers()] == [(101, "idle"), (202, "idle")]
    assert workers.namesakes("initlab@hostB", 202) == []
    _silence("initlab@hostB", 6.5, pid=101)
    assert workers.namesakes("initlab@hostB", 202) == []
    assert [(w.name, w.pid, w.state) for w in workers.list_workers()] == [("initlab@hostB", 202, "idle")]
    assert workers.beat("initlab@hostB", 202)


def test_runs_go_to_their_study_queue_and_a_lost_message_is_sent_there_again(migrated, tmp_path):
    from app.domain.spec import StudySpec
    from app.queue import dispatch
    from app.storage import runs, studies
    from worker import reconciler

    migrated(INITLAB_DISPATCH_GRACE_S="0")
    spec = StudySpec.model_validate({"initializers": ["he_normal"], "seeds": [0, 1], "training": {"epochs": 1}})
    routed, _ = studies.create_study(spec, queue="gpu")
    plain, _ = studies.create_study(spec)
    assert (studies.get_study(routed.id).queue, studies.get_study(plain.id).queue) == ("gpu", "initlab")
    assert sorted(dispatch()) == [run.id for run in routed.runs + plain.runs]
    inbox = Path(tmp_path / "state" / "broker" / "in")

    def queued_in(queue: str) -> int:
        return len([path for path in inbox.glob("*.msg") if path.name.partition(".")[2] == f"{queue}.msg"])

    assert (queued_in("gpu"), queued_in("initlab")) == (2, 2)  # a group per worker (INITLAB_WORKER_CONCURRENCY 2)
    for path in inbox.glob("*.gpu.msg"):  # the broker loses the gpu queue's message
        path.unlink()
    assert sorted(reconciler.forget_lost_messages()) == [run.id for run in routed.runs]
    assert sorted(dispatch()) == [run.id for run in routed.runs]
    assert (queued_in("gpu"), queued_in("initlab")) == (2, 2)
    assert all(run.status == "queued" for run in (runs.get_run(r.id) for r in routed.runs))


def test_a_host_whose_default_queue_differs_still_sends_a_study_to_the_queue_it_was_stored_with(migrated, tmp_path,
                                                                                               monkeypatch):
    from app.domain.spec import StudySpec
    from app.queue import dispatch
    from app.settings import get_settings
    from app.storage import studies

    migrated()
    spec = StudySpec.model_validate({"initializers": ["he_normal"], "seeds": [0], "training": {"epochs": 1}})
    study, _ = studies.create_study(spec)  # accepted by an API whose INITLAB_QUEUE is "initlab"
    monkeypatch.setenv("INITLAB_QUEUE", "gpu")  # a GPU host's reconciler, configured differently, sends it
    get_settings.cache_clear()
    assert dispatch() == [study.runs[0].id]
    names = [path.name.partition(".")[2] for path in (tmp_path / "state" / "broker" / "in").glob("*.msg")]
    assert names == ["initlab.msg"]
