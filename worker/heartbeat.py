"""A worker process announces itself in the database: who it is, where, what it serves and trains.

One row per worker process (app/storage/workers.py), written only from here: registered when
Celery says the worker is ready, beaten every few seconds from a thread of its own (with the
runs it trains now and, from the first beat on, its device), marked stopped on a clean
shutdown. A SIGKILLed worker just stops beating, and the dashboard shows it as lost. The
database is already the one thing every host reaches, so this needs no broker feature
(initlab turns Celery's remote control and gossip off). No Celery here: worker/tasks.py calls
``set_node``, ``start`` and ``stop`` from Celery's signals, and worker/execution.py ``now_training``.

The host a worker names is its Celery node name's (``-n name@host``; ``%h``, the machine's
name, by default): what the workers table shows, and what each run it trains records as its
``worker_host`` (``host:pid``, which also fences the run's writes). Nothing here blocks a
task: ``now_training`` only notes what the next beat (woken at once) writes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from app.settings import get_settings
from app.storage import runs as run_store
from app.storage import workers as worker_store

log = logging.getLogger("initlab.worker")

_node: dict[str, str | None] = {"name": None, "host": None}
_queues: list[str] = []
_training: dict[str, object] = {"runs": [], "changed": False}
_warned: set[int] = set()  # pids of namesakes already warned about
_lock = threading.Lock()
_wake = threading.Event()
_stop = threading.Event()


def interval_s() -> float:
    """Seconds between beats: about 5, shorter under a short run lease (tests), as the reconciler's sweeps."""
    return min(5.0, max(1.0, get_settings().run_lease_s / 3))


def worker_host() -> str:
    """The host this worker names (its Celery node name's), or the machine's before Celery has said."""
    return _node["host"] or socket.gethostname()


def identity() -> str:
    """``host:pid``: what a claimed run records as its worker_host, and what fences its writes."""
    return f"{worker_host()}:{os.getpid()}"


def node_name() -> str:
    """The Celery node name, or what `initlab worker` would call it on this machine."""
    return _node["name"] or f"initlab@{socket.gethostname()}"


def set_node(name: str) -> None:
    """Take the Celery node name (``name@host``); its host part becomes this worker's host."""
    _node["name"] = name
    _node["host"] = name.partition("@")[2] or socket.gethostname()


def now_training(run_ids: list[int]) -> None:
    """What this worker trains from now on (empty: idle); the heartbeat thread writes it at once."""
    with _lock:
        _training["runs"] = list(run_ids)
        _training["changed"] = True
    _wake.set()


def _device() -> dict[str, str | None]:
    # By worker_ready the training core (and its backend) is imported (worker/tasks.py), so this is cheap.
    try:
        import keras

        from worker.training.device import describe_device

        return {"device": describe_device(), "backend": keras.backend.backend()}
    except Exception as exc:  # informative only
        log.debug("could not describe the device: %s", exc)
        return {"device": None, "backend": None}


def _announce_or_beat(pid: int, registered: bool, device: dict[str, str | None]) -> None:
    """Register (first time, or when the row is gone: a fresh database) or beat with what changed."""
    name = _node["name"]
    with _lock:
        runs, changed = list(_training["runs"]), bool(_training["changed"])
        _training["changed"] = False
    try:
        values: dict = {}
        if changed or not registered:
            values = {"current_runs": runs, "current_study": run_store.study_of_run(runs[0]) if runs else None}
        if not (registered and worker_store.beat(name, pid, **values)):
            worker_store.register_worker(name, worker_host(), pid, _queues, interval_s())
            worker_store.beat(name, pid, **values, **device)
    except Exception:
        if changed:
            with _lock:
                _training["changed"] = True  # say it again next beat
        raise
    _warn_of_namesakes(name, pid)


def _warn_of_namesakes(name: str, pid: int) -> None:
    """Say once per other process that it runs under this worker's node name too.

    Both still show in the workers panel (a row per process), but their logs and events cannot be
    told apart by name: each worker on a host wants its own (``initlab worker --name``).
    """
    try:
        others = [other for other in worker_store.namesakes(name, pid) if other not in _warned]
    except Exception as exc:  # informative only: the beat itself was written
        log.debug("could not look for namesakes: %s", exc)
        return
    if others:
        _warned.update(others)
        log.warning("another worker process (pid %s) runs under this worker's node name %s; both are listed, "
                    "but give each its own (`initlab worker --name NAME`)",
                    ", ".join(map(str, others)), name)


def start(name: str, queues: list[str]) -> threading.Thread:
    """Announce this worker process and beat from a daemon thread until ``stop``.

    The first beat registers it (and, while the database is unreachable, the next one tries again);
    the device is looked up once, in this thread, so that the worker's start never waits on it.
    """
    set_node(name)
    _stop.clear()
    _queues[:] = sorted(set(queues))
    pid = os.getpid()

    def loop() -> None:
        registered = False
        device = _device()
        while not _stop.is_set():
            try:
                _announce_or_beat(pid, registered, device)
                registered = True
            except Exception as exc:  # a database blip: the next beat tries again
                log.debug("worker heartbeat failed: %s", exc)
            _wake.wait(interval_s())
            _wake.clear()

    thread = threading.Thread(target=loop, name="initlab-heartbeat", daemon=True)
    thread.start()
    return thread


def stop() -> None:
    """A clean shutdown: stop beating and mark the row stopped."""
    _stop.set()
    _wake.set()
    if _node["name"]:
        try:
            worker_store.mark_stopped(_node["name"], os.getpid())
        except Exception as exc:
            log.debug("could not mark the worker stopped: %s", exc)
