"""How a worker process is started: its command line and its environment.

``initlab up`` and ``initlab worker`` (app/cli.py) build their workers here. A worker's
environment carries what must be decided before Python imports Keras: the backend
(INITLAB_KERAS_BACKEND, exported as KERAS_BACKEND), thread counts, and on a GPU machine the
one device the process may see. One process per GPU, each with CUDA_VISIBLE_DEVICES pinned
to its own, because a JAX (or TensorFlow) process otherwise claims every device it sees; and
preallocation off, because JAX by default reserves 75 % of a device's memory at its first
operation, so a second process on the same device (a probe worker, a benchmark) would fail.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from app.domain.tasks import probe_queue
from app.settings import Settings, get_settings

# TensorFlow's quiet logs, and glibc's malloc limited to two arenas: a worker's many
# TensorFlow threads would otherwise each grow an arena, and its peak memory with them, which
# the admission check's estimate (app/domain/memory.py) must bound. (oneDNN: INITLAB_ONEDNN.)
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2", "MALLOC_ARENA_MAX": "2"}


def tensorflow_env(settings: Settings) -> dict[str, str]:
    """What a worker's TensorFlow reads once, at import: quiet logs and the oneDNN choice."""
    return {"TF_CPP_MIN_LOG_LEVEL": QUIET_TF["TF_CPP_MIN_LOG_LEVEL"],
            "TF_ENABLE_ONEDNN_OPTS": "1" if settings.onednn else "0"}
# A GPU worker allocates device memory as it needs it, never all at once: JAX's default
# preallocation, and TensorFlow's, would each take the device from every other process.
# A value already in the environment wins (XLA_PYTHON_CLIENT_MEM_FRACTION=.45, say, to
# reserve a set share instead).
GPU_MEMORY = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


@dataclass(frozen=True)
class WorkerLaunch:
    """One worker process to start: its node name, command line and whole environment."""

    name: str
    args: list[str]
    env: dict[str, str]
    gpu: str | None = None


def default_queues() -> list[str]:
    """A lone worker serves training and the signal probes; ``initlab up`` gives each its own."""
    queue = get_settings().queue
    return [queue, probe_queue(queue)]


def worker_command(name: str = "initlab", queues: list[str] | None = None) -> list[str]:
    settings = get_settings()
    # solo pool: TensorFlow must never run in a process that later forks (a
    # prefork child deadlocks), and one training run already uses the cores it gets.
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app:celery_app", "worker", "--pool=solo",
            "-Q", ",".join(queues or default_queues()), "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel", settings.log_level]


def thread_env(threads: int) -> dict[str, str]:
    """Thread counts for one worker process (TensorFlow's pools, BLAS and OpenMP).

    Several single-threaded workers beat one multi-threaded one on small MLPs: one
    TensorFlow process kept about one core busy on the 2-core VM. A variable already
    set in the environment wins.
    """
    names = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {name: os.environ.get(name, str(threads)) for name in names}


def worker_env(environ: Mapping[str, str], settings: Settings, gpu: str | None = None) -> dict[str, str]:
    """A worker's environment: ``environ`` with the quiet TensorFlow defaults (where unset),
    the configured Keras backend, and for a GPU worker its one visible device."""
    env = {**QUIET_TF, **tensorflow_env(settings), **environ}
    env["KERAS_BACKEND"] = settings.keras_backend  # INITLAB_KERAS_BACKEND decides, as every other setting
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    if gpu is not None or settings.keras_backend == "jax":  # unpinned JAX workers may still share a GPU
        env.update({key: environ.get(key, value) for key, value in GPU_MEMORY.items()})
    return env


def gpu_workers(gpus: list[str], name: str, queues: list[str] | None, environ: Mapping[str, str],
                settings: Settings | None = None) -> list[WorkerLaunch]:
    """One worker per GPU id, node ``{name}-gpu{id}``, seeing only that GPU (as its device 0)."""
    settings = settings or get_settings()
    launches = []
    for gpu in gpus:
        node = f"{name}-gpu{gpu}"
        launches.append(WorkerLaunch(node, worker_command(node, queues), worker_env(environ, settings, gpu), gpu))
    return launches


def up_workers(settings: Settings, environ: Mapping[str, str]) -> list[WorkerLaunch]:
    """The workers ``initlab up`` starts: one per GPU of INITLAB_WORKER_GPUS, or else
    INITLAB_WORKER_CONCURRENCY CPU workers sharing the cores; then the probe worker (its own
    queue, one thread, on the first GPU when there are GPUs), last."""
    queue = settings.queue
    if settings.worker_gpus:
        launches = gpu_workers(settings.worker_gpus, "initlab", [queue], environ, settings)
        probe_gpu = settings.worker_gpus[0]
    else:
        workers = max(1, settings.worker_concurrency)
        env = {**worker_env(environ, settings),
               **thread_env(settings.worker_threads or max(1, (os.cpu_count() or 1) // workers))}
        launches = [WorkerLaunch(f"initlab-{index}", worker_command(f"initlab-{index}", [queue]), env)
                    for index in range(workers)]
        probe_gpu = None
    # Signal-propagation probes get a worker of their own, so a probe (a second of work)
    # never waits behind a study; it sleeps on its queue the rest of the time.
    probe_env = {**worker_env(environ, settings, probe_gpu), **thread_env(1)}
    launches.append(WorkerLaunch("initlab-probe", worker_command("initlab-probe", [probe_queue(queue)]), probe_env,
                                 probe_gpu))
    return launches
