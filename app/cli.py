"""The ``initlab`` command: start the whole app, or one of its parts.

``initlab up`` is what ``make up`` runs: migrate, then the API and the worker
processes, stopped together on Ctrl-C or SIGTERM. A worker that exits is started
again, with a growing pause if it keeps exiting, and never takes the API down (see
``Supervisor``); the API exiting stops everything. docker-compose runs
the same ``migrate``, ``api`` and ``worker`` sub-commands, one per service.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from app.cli_config import EXIT_CONFIG, CheckedCommands, redacted, storage_problem
from app.cli_summary import noun
from app.launch import QUIET_TF, gpu_workers, thread_env, up_workers, worker_command, worker_env
from app.settings import get_settings, parse_gpus

# CheckedCommands: a bad INITLAB_* value ends any command with one line naming it (exit 78), no traceback.
cli = typer.Typer(help="initlab: measure how weight initialization shapes training.", no_args_is_help=True,
                  cls=CheckedCommands)
console = Console(stderr=True)
ROOT = Path(__file__).resolve().parents[1]
# worker.watchdog.EXIT_STALLED, spelled out here: importing that module pulls in Celery.
EXIT_RESTART_ME = 75


def _require_state_dir(create: bool) -> None:
    """Exit with one line on stderr, no traceback, when the database URL or the state directory cannot be used."""
    problem = storage_problem(create)
    if problem:
        typer.echo(f"initlab: {problem}", err=True)
        raise typer.Exit(EXIT_CONFIG)


def api_command(host: str, port: int) -> list[str]:
    # Without a bound, uvicorn waits on Ctrl-C for every open server-sent-event stream
    # (a dashboard tab left open) to end, which they never do by themselves.
    return [sys.executable, "-m", "uvicorn", "app.main:app", "--host", host, "--port", str(port),
            "--log-level", "warning", "--timeout-graceful-shutdown", "3"]


@cli.command()
def migrate() -> None:
    """Apply the Alembic migrations to the configured database."""
    from alembic import command
    from alembic.config import Config

    from sqlalchemy.exc import OperationalError

    settings = get_settings()
    _require_state_dir(create=True)
    try:
        command.upgrade(Config(str(ROOT / "alembic.ini")), "head")
    except OperationalError as exc:  # the database refused (unreachable, read-only, ...): one line
        typer.echo(f"initlab: cannot migrate {redacted(settings.database_url)}: {exc.orig}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    console.print(f"[green]database at head[/green]: {redacted(settings.database_url)}")


@cli.command()
def api(host: str = typer.Option(None, help="address to serve on (default: INITLAB_HOST)"),
        port: int = typer.Option(None, help="port to serve on (default: INITLAB_PORT)")) -> None:
    """Serve the API and dashboard (no worker)."""
    # The options are the variables: the app reads INITLAB_HOST for the Host names it answers to
    # (a server started with --host vm answers http://vm:port/), and uvicorn, exec'd below, gets
    # this environment.
    if host is not None:
        os.environ["INITLAB_HOST"] = host
    if port is not None:
        os.environ["INITLAB_PORT"] = str(port)
    get_settings.cache_clear()
    settings = get_settings()
    _require_state_dir(create=False)
    os.execv(sys.executable, api_command(settings.host, settings.port))


@cli.command()
def worker(name: str = typer.Option("initlab", help="Celery node name"),
           queues: str = typer.Option(None, help="comma-separated queues (default: INITLAB_QUEUE and its probe queue)"),
           gpus: str = typer.Option(None, help="comma-separated GPU ids: one worker process per GPU, each seeing "
                                               "only its own (default: INITLAB_WORKER_GPUS)"),
           ) -> None:
    """Run one training worker process, or one per GPU; each is started again when it exits."""
    settings = get_settings()
    try:
        devices = parse_gpus(gpus) if gpus is not None else settings.worker_gpus
    except ValueError as exc:
        typer.echo(f"initlab: --gpus: {exc}", err=True)
        raise typer.Exit(2) from None
    _require_state_dir(create=False)
    chosen = [queue.strip() for queue in queues.split(",") if queue.strip()] if queues else None
    if devices:
        raise typer.Exit(_supervise_gpu_workers(devices, name, chosen))
    env = worker_env(os.environ, settings)
    if settings.worker_threads > 0:  # by default a lone worker keeps TensorFlow's own choice (every core)
        env.update(thread_env(settings.worker_threads))
    # Supervised, not exec'd: a worker whose broker consumer went quiet exits 75 (worker/watchdog.py)
    # and must be started again, on a bare host as under `initlab up` or compose's restart policy.
    raise typer.Exit(_supervise([Child(f"worker {name}", worker_command(name, chosen), env, restartable=True)],
                                f"worker {name} ({settings.keras_backend}, CPU); Ctrl-C stops"))


def _supervise_gpu_workers(gpus: list[str], name: str, queues: list[str] | None) -> int:
    """Run one worker per GPU until SIGTERM or Ctrl-C, each restarted as ``initlab up``'s are."""
    launches = gpu_workers(gpus, name, queues, os.environ)
    return _supervise([Child(f"worker {launch.name} (GPU {launch.gpu})", launch.args, launch.env, restartable=True)
                       for launch in launches],
                      f"{noun(len(gpus), 'worker')} on {noun(len(gpus), 'GPU')} {', '.join(gpus)} "
                      f"({get_settings().keras_backend}); Ctrl-C stops")


def _supervise(children: list[Child], banner: str) -> int:
    """Run the worker children until SIGTERM or Ctrl-C, each restarted as ``initlab up``'s are."""
    supervisor = Supervisor(children)
    supervisor.start()
    console.print(f"[bold]initlab[/bold] {banner}")
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    supervisor.run()
    supervisor.stop()
    return 0


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
        _stop_children([child.process for child in self.children if child.process is not None], grace_s)


@cli.command()
def up() -> None:
    """Migrate, then run the API, dashboard and worker(s) until Ctrl-C."""
    settings = get_settings()
    migrate()
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in QUIET_TF.items()}}
    children = [Child("api", api_command(settings.host, settings.port), env, restartable=False)]
    for launch in up_workers(settings, os.environ):
        label = "probe worker" if launch.name == "initlab-probe" else f"worker {launch.name}"
        children.append(Child(label, launch.args, launch.env, restartable=True))
    supervisor = Supervisor(children)
    supervisor.start()
    console.print(f"[bold]initlab[/bold] dashboard at http://{settings.host}:{settings.port}  "
                  f"(database {redacted(settings.database_url)}, broker {redacted(settings.broker_url)}); Ctrl-C stops")
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    # Everything imported so far lives until exit: frozen, the collector never walks it again,
    # so Ctrl-C is not kept waiting on the interpreter's last collection (worker/tasks.py, too).
    gc.freeze()
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


from app.cli_client import register  # noqa: E402  (`initlab submit`, `export` and `delete`)
register(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
