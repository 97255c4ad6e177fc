"""`initlab up`'s supervision, driven with tiny real `python -c` children instead of Celery.

The worker watchdog exits with 75 to be started again at once (worker/watchdog.py); other
worker exits (a crash, the OOM killer's SIGKILL) are restarted after a pause that grows while
they keep coming, and never stop the API; the API exiting stops everything.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from app.cli import api_command
from app.supervisor import EXIT_RESTART_ME, WORKER_OOM_SCORE_ADJ, Child, Supervisor, describe_exit

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def supervise(tmp_path):
    """Build a Supervisor over the given children in tmp_path; every child is stopped afterwards."""
    made: list[Supervisor] = []

    def build(*children: Child, **options) -> tuple[Supervisor, list[str]]:
        said: list[str] = []
        supervisor = Supervisor(list(children), cwd=tmp_path, say=said.append, **options)
        supervisor.start()
        made.append(supervisor)
        return supervisor, said

    yield build
    for supervisor in made:
        supervisor.stop(grace_s=2)


def _poll_for(supervisor: Supervisor, seconds: float, until=lambda: False) -> str | None:
    """Poll like `run` does, for `seconds` or until `until()` (then 0.3 s more, to see what follows).

    Returns the first reason to give up, or None.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reason = supervisor.poll()
        if reason:
            return reason
        if until():
            deadline, until = min(deadline, time.monotonic() + 0.3), (lambda: False)
        time.sleep(0.02)
    return None


def test_a_worker_exiting_75_is_started_again_with_the_same_command_and_env(supervise, tmp_path):
    # Each start appends its argv and env to starts.log; the first start exits 75, the next stays up.
    code = ("import os, sys, time\n"
            "log = 'starts.log'\n"
            "first = not os.path.exists(log)\n"
            "open(log, 'a').write(repr((sys.argv[1:], os.environ['SLOT'])) + '\\n')\n"
            f"sys.exit({EXIT_RESTART_ME}) if first else time.sleep(60)\n")
    worker = Child("worker w0", [*_python(code), "-n", "w0"], {"SLOT": "w0", "PATH": "/usr/bin"}, restartable=True)
    api = Child("api", SLEEPER, {}, restartable=False)
    supervisor, said = supervise(api, worker)
    first = worker.process

    log = tmp_path / "starts.log"
    assert _poll_for(supervisor, 5.0, until=lambda: log.exists() and len(log.read_text().splitlines()) == 2) is None
    assert first.returncode == EXIT_RESTART_ME
    assert worker.process is not first and worker.process.poll() is None  # a fresh one, still running
    assert api.process.poll() is None
    assert log.read_text().splitlines() == ["(['-n', 'w0'], 'w0')"] * 2
    assert len(said) == 1 and "watchdog" in said[0] and "w0" in said[0]
    assert worker.failures == 0  # a watchdog exit is no crash: no pause, none counted


def test_watchdog_exits_are_restarted_at_once(supervise, tmp_path):
    # Seven quick 75s in a row, then it stays up: each started again without a pause.
    code = ("import os, sys, time\n"
            "n = len(os.listdir('.'))\n"
            "open(f'start-{n}', 'w').close()\n"
            f"sys.exit({EXIT_RESTART_ME}) if n < 7 else time.sleep(60)\n")
    worker = Child("worker w0", _python(code), {}, restartable=True)
    supervisor, said = supervise(worker, backoff_s=30)
    assert _poll_for(supervisor, 8.0, until=lambda: len(list(tmp_path.iterdir())) == 8) is None
    assert len(said) == 7 and worker.process.poll() is None


def test_a_crashing_worker_is_restarted_with_growing_pauses_and_never_stops_the_api(supervise, tmp_path):
    """Issue 11, §3: a worker OOM-killed again and again (SIGKILL, as the kernel's OOM killer sends)
    used to make `initlab up` give up after 5 restarts a minute, and stop the API with it."""
    code = ("import os, signal, time\n"
            "open('starts.log', 'a').write(f'{time.monotonic()}\\n')\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    worker = Child("worker w0", _python(code), {}, restartable=True)
    api = Child("api", SLEEPER, {}, restartable=False)
    supervisor, said = supervise(api, worker, backoff_s=0.2, max_backoff_s=0.8, stable_s=60)

    log = tmp_path / "starts.log"
    starts = lambda: [float(line) for line in log.read_text().split()] if log.exists() else []  # noqa: E731
    assert _poll_for(supervisor, 15.0, until=lambda: len(starts()) >= 8) is None  # no reason to stop, ever
    assert len(starts()) >= 8 and api.process.poll() is None  # more than the old bound, and the API lives
    gaps = [later - earlier for earlier, later in zip(starts(), starts()[1:])][:7]
    pauses = [0.2, 0.4, 0.8, 0.8, 0.8, 0.8, 0.8]  # doubling, then capped
    assert [supervisor.delay(n) for n in range(1, 8)] == pauses
    # Each gap is the pause plus a Python start-up.
    assert all(pause <= gap < pause + 1.0 for gap, pause in zip(gaps, pauses)), gaps
    assert all("killed by SIGKILL (out of memory?)" in line for line in said)
    assert "starting it again in 0.2s" in said[0] and "in 0.8s (5 exits in a row)" in said[4]


def test_a_worker_that_lived_long_enough_starts_again_after_the_first_pause(supervise):
    # Each child lives 0.3 s, longer than stable_s: every exit is a first one.
    worker = Child("worker w0", _python("import sys, time; time.sleep(0.3); sys.exit(1)"), {}, restartable=True)
    supervisor, said = supervise(worker, backoff_s=0.05, stable_s=0.2)
    assert _poll_for(supervisor, 1.5) is None
    assert len(said) >= 2 and all("status 1); starting it again in 0.05s" in line for line in said), said
    assert worker.failures == 1


def test_workers_are_the_oom_killers_first_choice_not_the_api(supervise):
    api = Child("api", SLEEPER, {}, restartable=False)
    worker = Child("worker w0", SLEEPER, {}, restartable=True)
    supervise(api, worker)
    score = lambda child: int(open(f"/proc/{child.process.pid}/oom_score_adj").read())  # noqa: E731
    assert score(worker) == WORKER_OOM_SCORE_ADJ > score(api)


def test_exits_are_described_for_people():
    assert describe_exit(3) == "status 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL (out of memory?)"
    assert describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"


def test_the_api_exiting_stops_everything(supervise):
    api = Child("api", _python("import time; time.sleep(0.3)"), {}, restartable=False)
    workers = [Child(f"worker w{i}", SLEEPER, {}, restartable=True) for i in range(2)]
    supervisor, said = supervise(api, *workers)

    reason = supervisor.run(interval_s=0.02)
    assert reason == "api exited (status 0)"
    assert said == []  # nothing was restarted
    supervisor.stop(grace_s=2)
    assert [worker.process.returncode for worker in workers] == [-signal.SIGTERM] * 2


def test_a_stop_request_ends_the_loop_and_exits_after_it_are_not_restarted(supervise):
    api = Child("api", SLEEPER, {}, restartable=False)
    worker = Child("worker w0", SLEEPER, {}, restartable=True)
    supervisor, said = supervise(api, worker)
    timer = threading.Timer(0.3, supervisor.request_stop)
    timer.start()
    assert supervisor.run(interval_s=0.02) is None
    timer.join()
    first = worker.process
    first.send_signal(signal.SIGINT)  # Ctrl-C reaches the whole group: the worker goes first
    first.wait(timeout=5)
    assert supervisor.poll() is None and worker.process is first and said == []
    supervisor.stop(grace_s=2)
    assert api.process.returncode == -signal.SIGTERM


def test_api_command_bounds_graceful_shutdown_with_a_flag_uvicorn_knows():
    command = api_command("127.0.0.1", 8000)
    assert command[command.index("--timeout-graceful-shutdown") + 1] == "3"
    help_text = subprocess.run([sys.executable, "-m", "uvicorn", "--help"], capture_output=True, text=True,
                               timeout=30, check=True).stdout
    assert "--timeout-graceful-shutdown" in help_text
