"""Every knob initlab has, in one place, read from ``INITLAB_*`` environment variables.

The API, the worker, the launcher and Alembic all call ``get_settings()`` so that
one environment configures the whole deployment; nothing else reads the environment.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The names a loopback server is reached by; INITLAB_HOST joins them when it is a real name.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "*")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INITLAB_", extra="ignore")

    state_dir: Path = Path(".initlab")
    # Empty means the embedded default: SQLite and a filesystem broker under state_dir.
    database_url: str = ""
    broker_url: str = ""
    data_dir: Path | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    queue: str = "initlab"
    # Worker processes `initlab up` starts, and the TensorFlow threads of each (0: the
    # CPU cores shared out among them). On the 2-core VM two single-threaded workers
    # trained twice what one two-threaded worker did (bench/RESULTS.md, fused runs).
    worker_concurrency: int = 2
    worker_threads: int = 0
    # Runs of one study train together in one fused model, at most this many per group
    # (1: every run alone); a study is split into a multiple of worker_concurrency
    # groups, so that every worker gets an equal share. A single-threaded worker used
    # 4-12 % less CPU for 16 runs of seed 001's model fused at once than in two groups of 8.
    # "auto": the worker sizes groups to its device (app/domain/memory.py ``auto_group_size``):
    # 16 on a CPU, as many as the accelerator's memory holds on a GPU; the API then splits a
    # cell only over the workers and by host memory, and each worker trains its share in groups
    # of that size.
    fuse_max: int | Literal["auto"] = Field(default=16)
    # The Keras backend workers train on (exported as KERAS_BACKEND to each worker process):
    # TensorFlow on CPU machines; JAX is the GPU path (the image's `gpu` target installs CUDA JAX).
    keras_backend: Literal["tensorflow", "jax", "torch"] = "tensorflow"
    # TensorFlow's oneDNN kernels for the workers (TF_ENABLE_ONEDNN_OPTS; one already in the
    # environment wins). On an Intel Xeon they trained seed 000's fused groups 23 % and the CNN
    # workload's 3× faster, and fused runs still equal their runs alone (bench/RESULTS.md,
    # "oneDNN"). The tests run with them on too; the benchmarks pin them off unless
    # TF_ENABLE_ONEDNN_OPTS is set, so recorded figures stay comparable.
    onednn: bool = True
    # GPUs `initlab worker` starts one process for, each seeing only its own device
    # (CUDA_VISIBLE_DEVICES): "0,1", or empty for one process on whatever the machine has.
    worker_gpus: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Redis redelivers an unacknowledged task after this long: it must exceed the
    # longest run we accept, or a slow run would be trained twice at once.
    visibility_timeout_s: int = 12 * 3600
    broker_polling_interval_s: float = 0.1
    heartbeat_interval_s: float = 2.0
    # A running run whose heartbeat is older than this is taken as orphaned
    # (its worker died) and goes back to the queue, at most max_attempts times.
    run_lease_s: float = 60.0
    max_attempts: int = 3
    # A queued run whose message was sent this long ago but is no longer in the
    # broker (Redis restarted or flushed) is sent again by the reconciler.
    dispatch_grace_s: float = 10.0
    # An idle worker that sees messages waiting this long exits (see worker/watchdog.py).
    consumer_stall_s: float = 30.0
    # How long a worker keeps retrying a write while the database is unreachable.
    storage_retry_s: float = 120.0
    # A statement waits at most this long for a row lock another connection holds (SQLite's
    # busy timeout, PostgreSQL's lock_timeout), then fails: the API answers 503 "retry" instead
    # of hanging behind a worker frozen mid-write. On PostgreSQL a session left idle inside a
    # transaction for idle_transaction_s (a process stopped between two statements) is ended by
    # the server, which releases its locks; a live worker's writes are milliseconds apart.
    lock_timeout_s: float = 30.0
    idle_transaction_s: float = 300.0
    page_refresh_ms: int = 2000
    # Signal-propagation probes run on a worker (the API imports no Keras): the API waits this
    # long for the answer before answering 202 with a URL to poll, and a probe no worker has
    # finished after probe_timeout_s is failed (asking again retries it).
    probe_wait_s: float = 30.0
    probe_timeout_s: float = 300.0
    # Bounds on one probe's cost: 16 M weights are 50 layers of 512 units once (1.5 s on 2
    # cores) or of 256 units four times; 32 Mi probe activations, every network's (per array,
    # float32: 128 MB), are seed 002's 20 layers of 256 units × 256 samples for 25 networks, or
    # a conv 16-32 net (23 k values a sample) × 256 samples for 5.
    max_probe_weights: int = 16_000_000
    max_probe_activations: int = 32 * 2**20

    # Limits on what one study may ask for (the API answers 422 past them).
    max_hidden_layers: int = 100  # phase diagrams reach past the 60 layers of Schoenholz et al.'s figure
    max_hidden_units: int = 4096
    max_conv_layers: int = 16  # a cnn's Conv2D layers (model.conv_channels, or a cnn's depths)
    max_conv_channels: int = 256  # channels of one Conv2D layer
    max_epochs: int = 500
    max_runs_per_study: int = 512
    max_seeds: int = 64

    max_train_samples: int = 60000
    # A request body's bytes (413 past it, before anything parses it): the largest study a user
    # writes is a few kB, and a 26 MB one held the API for 20 s while pydantic read it.
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_parameters: int = 20_000_000
    # Memory (MiB, estimated: app/dashboard/memo.py) of the study page's answers the API keeps for
    # reuse until their study changes, least recently used dropped first; 0 keeps none. Each distinct
    # view is kept apart (every epoch of the histogram slider, every summary threshold), and one
    # histogram view of a 512-run study holds about 8 MB: unbounded, 126 of them took the API to 1.2 GB.
    view_memo_mb: int = Field(default=256, ge=0)
    # Memory one training worker process may use, whole (bytes, or a size such as "4G", binary
    # like docker's; 0: the machine's memory, or its cgroup limit when lower, divided by the
    # training workers `initlab up` starts plus one share for the probe worker and the API). A
    # study whose single run would not fit is refused (422, naming what to reduce) and fused
    # groups are sized to fit (app/domain/memory.py): a worker killed for memory says nothing.
    worker_memory: int = 0

    # Writes (create, cancel, retry, delete) need "Authorization: Bearer <token>"
    # when a token is set; reads too when read_requires_token. CORS stays closed
    # unless origins are listed.
    api_token: SecretStr | None = None
    read_requires_token: bool = False
    cors_origins: list[str] = Field(default_factory=list)
    # Host names (the Host header, port aside) the server answers to, besides IP addresses; any other
    # name gets a 400, so a DNS-rebinding page (evil.example resolving to 127.0.0.1) can neither read
    # nor write. Empty: the loopback names and INITLAB_HOST when it is not a wildcard; "*": any host
    # (behind a proxy that checks it). Comma-separated or a JSON list.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    log_level: str = Field(default="INFO")

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.state_dir / 'initlab.sqlite').as_posix()}"
        if not self.broker_url:
            self.broker_url = "filesystem://"
        return self

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value):
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        return [str(name).strip().lower() for name in value if str(name).strip()]

    @field_validator("fuse_max", mode="before")
    @classmethod
    def _fuse_max(cls, value):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        number = int(value)
        if number < 1:
            raise ValueError("fuse_max is a number of runs (at least 1) or auto")
        return number

    @field_validator("worker_gpus", mode="before")
    @classmethod
    def _gpu_list(cls, value):
        return parse_gpus(value)

    @property
    def trusted_hosts(self) -> frozenset[str]:
        """The Host names requests may carry (``allowed_hosts`` or the loopback default); "*": any."""
        if self.allowed_hosts:
            return frozenset(name.strip("[]") for name in self.allowed_hosts)
        own = self.host.strip().strip("[]").lower()
        return frozenset((*LOOPBACK_HOSTS, *(() if own in WILDCARD_HOSTS else (own,))))

    @field_validator("worker_memory", mode="before")
    @classmethod
    def _memory_size(cls, value):
        return parse_size(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_worker_per_gpu(self) -> "Settings":
        # `initlab up` starts one training worker per GPU; the API splits a cell over as many.
        if self.worker_gpus and "worker_concurrency" not in self.model_fields_set:
            self.worker_concurrency = len(self.worker_gpus)
        return self

    @model_validator(mode="after")
    def _default_worker_memory(self) -> "Settings":
        if self.worker_memory <= 0:
            self.worker_memory = machine_memory() // (max(1, self.worker_concurrency) + 1)
        return self

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.state_dir / "broker"


def parse_gpus(value: str | list | None) -> list[str]:
    """GPU ids from "0,1", " 0, 1 ", a JSON list or a list; duplicates dropped, order kept.

    Ids are what CUDA_VISIBLE_DEVICES takes: indices, or "GPU-<uuid>" names.
    """
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else text.split(",")
    ids = [str(item).strip() for item in value if str(item).strip()]
    for gpu in ids:
        if not (gpu.isdigit() or gpu.upper().startswith(("GPU-", "MIG-"))):
            raise ValueError(f"not a GPU id: {gpu!r} (an index such as 0, or a GPU-<uuid>)")
    return list(dict.fromkeys(ids))


def parse_size(text: str | int) -> int:
    """Bytes from "4G", "512M", "4GiB", "1.5g" or a number of bytes; K, M, G, T are binary, as docker's."""
    if isinstance(text, int):
        return text
    value = str(text).strip().upper().replace(" ", "")
    for suffix in ("IB", "B"):
        if value.endswith(suffix) and value[:-len(suffix)][-1:] in ("K", "M", "G", "T"):
            value = value[:-len(suffix)]
            break
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(value[-1:], 1)
    try:
        amount = float(value[:-1] if scale > 1 else value)
    except ValueError:
        raise ValueError(f"not a memory size: {text!r} (bytes, or a number with K, M, G or T: 4G)") from None
    if not amount >= 0:
        raise ValueError(f"a memory size cannot be negative: {text!r}")
    return int(amount * scale)


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")) -> int | None:
    """The lowest memory limit of this process's cgroup and its ancestors (v2, or v1's memory
    controller); None when there is none."""
    files: list[Path] = []
    try:
        lines = own.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        number, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = Path(path.lstrip("/"))
        if number == "0" and not controllers:  # v2: one hierarchy
            files += [root / parent / "memory.max" for parent in (relative, *relative.parents)]
        elif "memory" in controllers.split(","):  # v1
            files += [root / "memory" / parent / "memory.limit_in_bytes" for parent in (relative, *relative.parents)]
    limits = []
    for file in dict.fromkeys(files):
        try:
            text = file.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max", or v1's "no limit" (about 2^63)
            limits.append(int(text))
    return min(limits) if limits else None


def machine_memory() -> int:
    """This machine's memory in bytes, or its cgroup's limit when that is lower (a container)."""
    import os

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 4 * 2**30  # no way to ask: a small machine's
    limit = cgroup_memory_limit()
    return min(total, limit) if limit else total


@lru_cache
def get_settings() -> Settings:
    return Settings()
