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


def _silence(name: str, seconds: float) -> None:
    with session_scope() as session:
        session.execute(update(Worker).where(Worker.name == name)
                        .values(last_heartbeat=utcnow() - timedelta(seconds=seconds)))


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
    assert refusal and '"gpu"' in refusal and 'served now: "initlab"' in refusal
    workers.register_worker("g@gpuhost", "gpuhost", 5, ["gpu", "gpu.probe"], 2.0)
    assert workers.queue_refusal("gpu", "initlab") is None
    assert workers.queue_refusal("gpu.probe", "initlab")  # a probe queue trains no study
    _silence("g@gpuhost", 60)
    assert "no live worker serves" in workers.queue_refusal("gpu", "initlab")


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
