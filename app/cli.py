"""The ``initlab`` command: start the whole app, or one of its parts.

``initlab up`` is what ``make up`` runs: migrate, then the API and the worker
processes, stopped together on Ctrl-C or SIGTERM. docker-compose runs the
same ``migrate``, ``api`` and ``worker`` sub-commands, one per service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console

from app.settings import get_settings

cli = typer.Typer(help="initlab: measure how weight initialization shapes training.", no_args_is_help=True)
console = Console(stderr=True)
ROOT = Path(__file__).resolve().parents[1]
QUIET_TF = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}


def api_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "app.main:app", "--host", host, "--port", str(port), "--log-level", "warning"]


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


@cli.command()
def up() -> None:
    """Migrate, then run the API, dashboard and worker(s) until Ctrl-C."""
    settings = get_settings()
    migrate()
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in QUIET_TF.items()}}
    children = [subprocess.Popen(api_command(settings.host, settings.port), cwd=ROOT, env=env)]
    workers = max(1, settings.worker_concurrency)
    worker_env = {**env, **thread_env(settings.worker_threads or max(1, (os.cpu_count() or 1) // workers))}
    for index in range(workers):
        children.append(subprocess.Popen(worker_command(f"initlab-{index}"), cwd=ROOT, env=worker_env))
    console.print(f"[bold]initlab[/bold] dashboard at http://{settings.host}:{settings.port}  "
                  f"(database {_redacted(settings.database_url)}, broker {_redacted(settings.broker_url)}); Ctrl-C stops")
    stopping = False

    def stop(_signum=None, _frame=None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    _stop_children(children)
    # Ctrl-C reaches every process of the group. Celery ends a warm shutdown begun by
    # SIGINT with status 1 (EX_FAILURE) where SIGTERM gives 0; an idle worker is gone
    # before the SIGTERM above, so after a stop request its 1 is no error.
    expected = {0, -signal.SIGTERM, -signal.SIGINT, None}
    failed = [f"{' '.join(child.args[3:6])} (exit {child.returncode})" for index, child in enumerate(children)
              if child.returncode not in expected and not (stopping and index > 0 and child.returncode == 1)]
    if failed:
        console.print(f"[red]exited with an error: {'; '.join(failed)}[/red]")
    if not stopping:
        console.print("[red]a process exited unexpectedly; stopped the others[/red]")
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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
