"""The ``initlab`` command: start the whole app, or one of its parts.

``initlab up`` is what ``make up`` runs: migrate, then the API and the worker
processes, stopped together on Ctrl-C or SIGTERM. A worker that exits is started
again, with a growing pause if it keeps exiting, and never takes the API down (see
app/supervisor.py); the API exiting stops everything. docker-compose runs
the same ``migrate``, ``api`` and ``worker`` sub-commands, one per service.
"""

from __future__ import annotations

import gc
import os
import signal
import sys

import typer
from rich.console import Console

from app.cli_config import EXIT_CONFIG, CheckedCommands, redacted, storage_problem
from app.cli_summary import noun
from app.launch import QUIET_TF, gpu_workers, thread_env, up_workers, worker_command, worker_env
from app.settings import get_settings, parse_gpus
from app.supervisor import ROOT, Child, Supervisor

# CheckedCommands: a bad INITLAB_* value ends any command with one line naming it (exit 78), no traceback.
cli = typer.Typer(help="initlab: measure how weight initialization shapes training.", no_args_is_help=True,
                  cls=CheckedCommands)
console = Console(stderr=True)


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
def compact() -> None:
    """Give deleted studies' space back to the disk (SQLite; PostgreSQL: VACUUM ANALYZE). Run it while nothing trains."""
    from sqlalchemy.exc import OperationalError

    from app.storage.maintenance import compact as compact_database

    settings = get_settings()
    _require_state_dir(create=False)
    try:
        done = compact_database(settings.database_url)
    except OperationalError as exc:  # locked past the busy timeout (a worker writing), unreachable, disk full
        typer.echo(f"initlab: cannot compact {redacted(settings.database_url)}: {exc.orig}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    mb = lambda size: f"{size / 1e6:,.1f} MB"  # noqa: E731
    console.print(f"[green]{redacted(settings.database_url)}[/green]: {mb(done.before)} → {mb(done.after)}"
                  + ("" if done.kind == "sqlite" else " (PostgreSQL keeps freed pages for new rows; VACUUM FULL "
                                                       "returns them to the disk, locking the tables while it runs)"))


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


from app.cli_client import register  # noqa: E402  (`initlab submit`, `export` and `delete`)
register(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
