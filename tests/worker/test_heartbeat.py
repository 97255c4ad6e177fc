"""The worker's own row in the workers table (worker/heartbeat.py): two processes under one Celery node
name each keep their row, and each says once, as a warning, that the other runs under its name.

Real storage (SQLite); the two "processes" are two pids beating through this module, as two
`initlab worker` processes on one host would (the module's node name is the same for both).
"""

from __future__ import annotations

import logging

import pytest

from app.storage import workers
from worker import heartbeat

NAME = "initlab@hostB"
NO_DEVICE = {"device": None, "backend": None}


@pytest.fixture
def node(migrated, monkeypatch):
    migrated()
    monkeypatch.setattr(heartbeat, "_node", {"name": None, "host": None})
    monkeypatch.setattr(heartbeat, "_warned", set(), raising=False)
    monkeypatch.setattr(heartbeat, "_queues", ["initlab"])
    heartbeat.set_node(NAME)


def _warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "initlab.worker" and record.levelno == logging.WARNING]


def test_two_processes_under_one_name_keep_their_rows_and_each_warns_once(node, caplog):
    with caplog.at_level(logging.WARNING, logger="initlab.worker"):
        heartbeat._announce_or_beat(101, registered=False, device=NO_DEVICE)
        heartbeat._announce_or_beat(202, registered=False, device=NO_DEVICE)  # 101 has not beaten since
        assert _warnings(caplog) == []
        for _ in range(3):  # each beat used to find its row taken over, and register again
            heartbeat._announce_or_beat(101, registered=True, device=NO_DEVICE)
            heartbeat._announce_or_beat(202, registered=True, device=NO_DEVICE)
    listed = [(worker.name, worker.host, worker.pid, worker.state) for worker in workers.list_workers()]
    assert listed == [(NAME, "hostB", 101, "idle"), (NAME, "hostB", 202, "idle")]
    said = _warnings(caplog)
    assert len(said) == 2 and "pid 202" in said[0] and "pid 101" in said[1], said
    assert all(NAME in message and "initlab worker --name" in message for message in said)


def test_a_lone_worker_says_nothing(node, caplog):
    with caplog.at_level(logging.WARNING, logger="initlab.worker"):
        heartbeat._announce_or_beat(101, registered=False, device=NO_DEVICE)
        heartbeat._announce_or_beat(101, registered=True, device=NO_DEVICE)
    assert _warnings(caplog) == [] and [worker.pid for worker in workers.list_workers()] == [101]
