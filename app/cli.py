"""The ``initlab`` command: start the whole app, or one of its parts.

``initlab up`` is what ``make up`` runs: migrate, then the API and the worker
processes, stopped together on Ctrl-C or SIGTERM. A worker that exits is started
again (see ``Supervisor``); the API exiting stops everything. docker-compose runs
the same ``migrate``, ``api`` and ``worker`` sub-commands, one per service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from app.settings import get_settings

cli = typer.Typer(help="initlab: measure how weight initialization shapes training.", no_args_is_help=True)
console = Console(stderr=True)
ROOT = Path(__file__).resolve().parents[1]
QUIET_TF = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
# worker.watchdog.EXIT_STALLED, spelled out here: importing that module pulls in Celery.
EXIT_RESTART_ME = 75


def api_command(host: str, port: int) -> list[str]:
    # Without a bound, uvicorn waits on Ctrl-C for every open server-sent-event stream
    # (a dashboard tab left open) to end, which they never do by themselves.
    return [sys.executable, "-m", "uvicorn", "app.main:app", "--host", host, "--port", str(port),
            "--log-level", "warning", "--timeout-graceful-shutdown", "3"]


def worker_command(name: str = "initlab") -> list[str]:
    settings = get_settings()
    # solo pool: TensorFlow must never run in a process that later forks (a
    # prefork child deadlocks), and one training run already uses the cores it gets.
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app:celery_app", "worker", "--pool=solo",
            "-Q", settings.queue, "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", settings.log_level]


def thread_env(threads: int) -> dict[str, str]:
    """Thread counts for one worker process (TensorFlow's pools, BLAS and OpenMP).

    Several single-threaded workers beat one multi-threaded one on small MLPs: one
    TensorFlow process kept about one core busy on the 2-core VM. A variable already
    set in the environment wins.
    """
    names = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {name: os.environ.get(name, str(threads)) for name in names}


@cli.command()
def migrate() -> None:
    """Apply the Alembic migrations to the configured database."""
    from alembic import command
    from alembic.config import Config

    settings = get_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")
    console.print(f"[green]database at head[/green]: {_redacted(settings.database_url)}")


@cli.command()
def api(host: str = typer.Option(None), port: int = typer.Option(None)) -> None:
    """Serve the API and dashboard (no worker)."""
    settings = get_settings()
    os.execv(sys.executable, api_command(host or settings.host, port or settings.port))


@cli.command()
def worker(name: str = typer.Option("initlab", help="Celery node name")) -> None:
    """Run one training worker process."""
    os.environ.update({k: os.environ.get(k, v) for k, v in QUIET_TF.items()})
    threads = get_settings().worker_threads
    if threads > 0:  # by default a lone worker keeps TensorFlow's own choice (every core)
        os.environ.update(thread_env(threads))
    os.execv(sys.executable, worker_command(name))


@dataclass
class Child:
    """One supervised process: what starts it, and when it was last started again."""

    name: str
    args: list[str]
    env: dict[str, str]
    restartable: bool  # a worker; the API is not: it exiting ends `initlab up`
    process: subprocess.Popen | None = None
    crashes: deque[float] = field(default_factory=deque)  # restart times after unexpected exits, in the window


class Supervisor:
    """Keeps the children of ``initlab up`` running, or says why it gave up.

    A worker may exit on its own: its watchdog exits with status 75 when Celery's
    broker consumer went quiet (worker/watchdog.py), and the fix is a fresh process,
    so it is started again, same command, env and node name; its runs are safe in
    SQL. Any other worker exit is restarted too, but a slot that needed more than
    ``max_restarts`` such restarts within ``window_s`` is broken (bad settings, a
    broker that refuses it) and restarting it forever would only hide that, so
    ``poll`` then gives up. The API is never restarted: it exiting ends everything.
    Plain processes and a poll loop, so tests drive it with tiny ``python -c`` children.
    """

    def __init__(self, children: list[Child], cwd: Path = ROOT, max_restarts: int = 5, window_s: float = 60.0,
                 say=console.print) -> None:
        self.children, self.cwd, self.max_restarts, self.window_s, self.say = children, cwd, max_restarts, window_s, say
        self.stopping = False  # set by a signal handler: exits from now on are the stop, not a crash

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(child.args, cwd=self.cwd, env=child.env)

    def request_stop(self, _signum=None, _frame=None) -> None:
        self.stopping = True

    def poll(self) -> str | None:
        """Start again every worker that exited; returns why everything must stop, or None."""
        for child in self.children:
            code = child.process.poll()
            if code is None or self.stopping:
                continue
            if not child.restartable:
                return f"{child.name} exited (status {code})"
            if code == EXIT_RESTART_ME:
                self.say(f"[yellow]{child.name}: its watchdog found the broker consumer stuck (exit {code}); "
                         "starting it again[/yellow]")
            else:
                now = time.monotonic()
                while child.crashes and now - child.crashes[0] > self.window_s:
                    child.crashes.popleft()
                child.crashes.append(now)
                if len(child.crashes) > self.max_restarts:
                    return (f"{child.name} exited {len(child.crashes)} times within {self.window_s:.0f}s "
                            f"(last status {code}); giving up")
                self.say(f"[yellow]{child.name} exited unexpectedly (status {code}); starting it again[/yellow]")
            self._spawn(child)
        return None

    def run(self, interval_s: float = 0.2) -> str | None:
        """Poll until a stop is requested (returns None) or ``poll`` gives up (returns why)."""
        while not self.stopping:
            reason = self.poll()
            if reason:
                return reason
            time.sleep(interval_s)
        return None

    def stop(self, grace_s: float = 10.0) -> None:
        _stop_children([child.process for child in self.children], grace_s)


@cli.command()
def up() -> None:
    """Migrate, then run the API, dashboard and worker(s) until Ctrl-C."""
    settings = get_settings()
    migrate()
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in QUIET_TF.items()}}
    children = [Child("api", api_command(settings.host, settings.port), env, restartable=False)]
    workers = max(1, settings.worker_concurrency)
    worker_env = {**env, **thread_env(settings.worker_threads or max(1, (os.cpu_count() or 1) // workers))}
    for index in range(workers):
        name = f"initlab-{index}"
        children.append(Child(f"worker {name}", worker_command(name), worker_env, restartable=True))
    supervisor = Supervisor(children)
    supervisor.start()
    console.print(f"[bold]initlab[/bold] dashboard at http://{settings.host}:{settings.port}  "
                  f"(database {_redacted(settings.database_url)}, broker {_redacted(settings.broker_url)}); Ctrl-C stops")
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    reason = supervisor.run()
    supervisor.stop()
    stopping = supervisor.stopping
    # Ctrl-C reaches every process of the group. Celery ends a warm shutdown begun by
    # SIGINT with status 1 (EX_FAILURE) where SIGTERM gives 0; an idle worker is gone
    # before the SIGTERM above, so after a stop request its 1 is no error.
    expected = {0, -signal.SIGTERM, -signal.SIGINT, None}
    failed = [f"{child.name} (exit {child.process.returncode})" for child in children
              if child.process.returncode not in expected
              and not (stopping and child.restartable and child.process.returncode == 1)]
    if failed:
        console.print(f"[red]exited with an error: {'; '.join(failed)}[/red]")
    if reason:
        console.print(f"[red]{reason}; stopped the others[/red]")
        raise typer.Exit(1)
    raise typer.Exit(1 if failed else 0)


def _stop_children(children: list[subprocess.Popen], grace_s: float = 10.0) -> None:
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


def _redacted(url: str) -> str:
    """A URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}" if ":" in credentials else url
    return url


from app.cli_client import register  # noqa: E402  (`initlab submit` and `initlab export`)
register(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
