"""The embedded broker's message files (app/broker_files.py): a reader racing a writer sees every
message whole, and a real worker that meets an unreadable message file drops it and goes on.

Both faults are caused for real: a writer thread publishing large messages while a reader
polls the same folder, and an empty message file, which is what kombu's own writer leaves
between its open() and write() (and what stopped CI's probe worker).
"""

from __future__ import annotations

import threading
import time
import uuid

from kombu import Connection
from kombu.transport import filesystem

from app.broker_files import PARTIAL_SUFFIX, TRANSPORT, Transport
from support import processes

QUEUE = "initlab.race"


def _channel(folder, transport):
    for sub in ("in", "processed"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    options = {"data_folder_in": str(folder / "in"), "data_folder_out": str(folder / "in"),
               "processed_folder": str(folder / "processed"), "polling_interval": 0}
    return Connection("filesystem://", transport=transport, transport_options=options).default_channel


def _race(folder, transport, messages: int = 60) -> tuple[list[int], list[Exception]]:
    """One thread publishes `messages` 2 MB messages while this one reads them as they come."""
    writer, reader = _channel(folder, transport), _channel(folder, transport)
    blob = "x" * 2_000_000
    done = threading.Event()

    def publish():
        for index in range(messages):
            writer._put(QUEUE, {"index": index, "blob": blob})
        done.set()

    thread = threading.Thread(target=publish)
    thread.start()
    received, errors = [], []
    deadline = time.monotonic() + 120
    while len(received) + len(errors) < messages and time.monotonic() < deadline:
        try:
            payload = reader._get(QUEUE)
        except filesystem.Empty:
            if done.is_set() and not list((folder / "in").glob(f"*.{QUEUE}.msg")):
                break
            continue
        except ValueError as exc:  # a message read before it was written whole
            errors.append(exc)
            continue
        assert payload["blob"] == blob
        received.append(payload["index"])
    thread.join()
    return received, errors


def test_a_reader_racing_the_writer_gets_every_message_whole(tmp_path):
    received, errors = _race(tmp_path / "ours", Transport)
    assert errors == []
    assert sorted(received) == list(range(60))
    assert list((tmp_path / "ours" / "in").iterdir()) == []  # no partial file left behind


def test_kombus_own_writer_is_read_half_written_in_the_same_race(tmp_path):
    """The fault this module exists for, reproduced with kombu's own channel: the same race loses
    messages (a reader that catches the error; a Celery worker stops on it instead)."""
    received, errors, attempt = [], [], 0
    # A race: on a quiet machine usually the first attempt, under load up to a few in 4 missed
    # (5 attempts failed 2 runs in 8), so it is run again until caught, for up to a minute.
    deadline = time.monotonic() + 60
    while not errors and time.monotonic() < deadline:
        attempt += 1
        received, errors = _race(tmp_path / f"kombu{attempt}", filesystem.Transport)
    assert errors, f"kombu's writer was never caught half-written in {attempt} races of 60 messages"
    assert len(received) < 60


def test_a_worker_drops_an_unreadable_message_and_answers_the_next(migrated, data_dir, tmp_path):
    from app.domain.probe import SignalProbeSpec
    from app.queue import send_probe
    from app.settings import get_settings
    from app.storage import probes

    env = migrated(INITLAB_DATA_DIR=str(data_dir))
    inbox = get_settings().broker_folder / "in"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / f"{int(time.monotonic() * 1000)}_{uuid.uuid4()}.initlab.probe.msg").touch()  # read before written
    (inbox / f"{int(time.monotonic() * 1000)}_{uuid.uuid4()}.initlab.probe.msg{PARTIAL_SUFFIX}").write_text("{")
    spec = SignalProbeSpec.model_validate({"model": {"hidden_units": [16]}, "initializers": ["he_normal"],
                                           "probe_samples": 64})
    probe, to_send = probes.probe_for(spec.key(), spec.model_dump(mode="json"))
    assert to_send
    send_probe(probe["id"])
    log = tmp_path / "worker.log"
    worker = processes.start(["worker", "--name", "files", "--queues", "initlab.probe"],
                             {**env, "INITLAB_WORKER_THREADS": "1"}, log)
    try:
        deadline = time.monotonic() + 120
        while probes.get_probe(probe["id"])["status"] in ("queued", "running") and time.monotonic() < deadline:
            assert worker.poll() is None, f"the worker stopped:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        assert probes.get_probe(probe["id"])["status"] == "succeeded", log.read_text()[-3000:]
        assert worker.poll() is None
        assert "dropped an unreadable message on queue initlab.probe" in log.read_text()
        # A message still being written (its partial name) is not the reader's to take.
        assert [path.name.endswith(PARTIAL_SUFFIX) for path in inbox.iterdir()] == [True]
    finally:
        processes.stop(worker)


def test_the_embedded_broker_uses_this_transport(settings_env):
    from app.queue import create_celery

    settings_env(INITLAB_BROKER_URL="", INITLAB_DATABASE_URL="")
    assert create_celery().conf.broker_transport == TRANSPORT
    with create_celery().connection_for_write() as connection:
        assert isinstance(connection.default_channel, Transport.Channel)
    settings_env(INITLAB_BROKER_URL="redis://127.0.0.1:6379/0")
    assert create_celery().conf.broker_transport is None
