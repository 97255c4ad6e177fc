"""Every knob initlab has, in one place, read from ``INITLAB_*`` environment variables.

The API, the worker, the launcher and Alembic all call ``get_settings()`` so that
one environment configures the whole deployment; nothing else reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    fuse_max: int = Field(default=16, ge=1)

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
    page_refresh_ms: int = 2000

    # Limits on what one study may ask for (the API answers 422 past them).
    max_hidden_layers: int = 50
    max_hidden_units: int = 4096
    max_epochs: int = 500
    max_runs_per_study: int = 512
    max_seeds: int = 64

    max_train_samples: int = 60000
    max_parameters: int = 20_000_000

    # Writes (create, cancel, retry, delete) need "Authorization: Bearer <token>"
    # when a token is set; reads too when read_requires_token. CORS stays closed
    # unless origins are listed.
    api_token: SecretStr | None = None
    read_requires_token: bool = False
    cors_origins: list[str] = Field(default_factory=list)

    log_level: str = Field(default="INFO")

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.state_dir / 'initlab.sqlite').as_posix()}"
        if not self.broker_url:
            self.broker_url = "filesystem://"
        return self

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.state_dir / "broker"


@lru_cache
def get_settings() -> Settings:
    return Settings()
