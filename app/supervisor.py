"""Keeping ``initlab up``'s and ``initlab worker``'s processes running, and stopping them together.

Plain processes and a poll loop that never sleeps, so tests drive it with tiny ``python -c``
children (tests/cli/test_supervision.py).
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

console = Console(stderr=True)
ROOT = Path(__file__).resolve().parents[1]
# worker.watchdog.EXIT_STALLED, spelled out here: importing that module pulls in Celery.
EXIT_RESTART_ME = 75


# Workers are what the kernel should kill first when memory runs out, never the API: Linux
# picks the process with the highest badness, and this adds to a worker's (any process may
# raise its own; 1000 would be "always first").
WORKER_OOM_SCORE_ADJ = 500


def _worker_child() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The kernel's first choice under memory pressure, and gone with its supervisor: a supervisor
    killed outright (SIGKILL, no chance to stop its children) must not leave a worker training on."""
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write(str(WORKER_OOM_SCORE_ADJ))
    except OSError:
        pass
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: Linux only
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    """One supervised process: what starts it, and when it is to be started again."""

    name: str
    args: list[str]
    env: dict[str, str]
    restartable: bool  # a worker; the API is not: it exiting ends `initlab up`
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # unexpected exits in a row, each soon after its start
    restart_at: float | None = None  # when a worker that exited is started again


def describe_exit(code: int) -> str:
    """ "status 3", or "killed by SIGKILL (out of memory?)" for a signal."""
    if code >= 0:
        return f"status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")


class Supervisor:
    """Keeps the children of ``initlab up`` running; the API exiting is the one reason to stop.

    A worker may exit on its own: its watchdog exits with status 75 when Celery's broker
    consumer went quiet (worker/watchdog.py), and the fix is a fresh process, started again
    at once, same command, env and node name; its runs are safe in SQL. Any other worker
    exit (a crash, the kernel's OOM killer) is restarted too, after a pause that doubles with
    each exit in a row that came within ``stable_s`` of its start (``backoff_s``, then 2x,
    4x, ... up to ``max_backoff_s``), and starts again from ``backoff_s`` once a worker has
    lived ``stable_s``. A worker is never given up on: stopping would take the API (and the
    studies' pages) down with it, for a fault that the lost run's own limit already bounds
    (the reconciler fails a run after INITLAB_MAX_ATTEMPTS lost workers). The API is never
    restarted: it exiting ends everything. Plain processes and a poll loop that never
    sleeps, so tests drive it with tiny ``python -c`` children.
    """

    def __init__(self, children: list[Child], cwd: Path = ROOT, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 stable_s: float = 60.0, say=console.print) -> None:
        self.children, self.cwd, self.say = children, cwd, say
        self.backoff_s, self.max_backoff_s, self.stable_s = backoff_s, max_backoff_s, stable_s
        self.stopping = False  # set by a signal handler: exits from now on are the stop, not a crash

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        child.process = subprocess.Popen(child.args, cwd=self.cwd, env=child.env,
                                         preexec_fn=_worker_child if child.restartable else None)

    def request_stop(self, _signum=None, _frame=None) -> None:
        self.stopping = True

    def delay(self, failures: int) -> float:
        """The pause before the next start of a worker that failed ``failures`` times in a row."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** max(0, failures - 1))

    def poll(self) -> str | None:
        """Start again every worker that exited (at once, or when its pause is over); returns why
        everything must stop (the API exited), or None."""
        now = time.monotonic()
        for child in self.children:
            if self.stopping:
                break
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._spawn(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            if not child.restartable:
                return f"{child.name} exited ({describe_exit(code)})"
            if code == EXIT_RESTART_ME:
                self.say(f"[yellow]{child.name}: its watchdog found the broker consumer stuck (exit {code}); "
                         "starting it again[/yellow]")
                self._spawn(child)
                continue
            child.failures = child.failures + 1 if now - child.started_at < self.stable_s else 1
            pause = self.delay(child.failures)
            child.restart_at = now + pause
            self.say(f"[yellow]{child.name} exited unexpectedly ({describe_exit(code)}); starting it again in "
                     f"{pause:.3g}s{f' ({child.failures} exits in a row)' if child.failures > 1 else ''}[/yellow]")
        return None

    def run(self, interval_s: float = 0.2) -> str | None:
        """Poll until a stop is requested (returns None) or the API exits (returns why)."""
        while not self.stopping:
            reason = self.poll()
            if reason:
                return reason
            time.sleep(interval_s)
        return None

    def stop(self, grace_s: float = 10.0) -> None:
        stop_children([child.process for child in self.children if child.process is not None], grace_s)


def stop_children(children: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
