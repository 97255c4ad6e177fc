"""A worker waits out a brief database outage instead of failing the run it trains."""

from __future__ import annotations

import pytest

from app.storage.db import StorageUnavailable
from worker.retry import with_storage_retry


class Flaky:
    """Unavailable ``failures`` times, then answers: the outage a worker must wait out."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0
        self.__name__ = "flaky"

    def __call__(self, value: int, *, scale: int = 1) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise StorageUnavailable("database unavailable: OperationalError")
        return value * scale


def test_retries_until_the_database_answers(settings_env):
    settings_env(INITLAB_STORAGE_RETRY_S="5")
    call = Flaky(failures=3)
    assert with_storage_retry(call, 7, scale=2) == 14
    assert call.calls == 4


def test_gives_up_once_the_budget_is_spent(settings_env):
    settings_env(INITLAB_STORAGE_RETRY_S="0.5")
    call = Flaky(failures=10**6)
    with pytest.raises(StorageUnavailable):
        with_storage_retry(call, 1)
    assert 3 <= call.calls < 20  # backoff: 0.1 s, 0.2 s, ... within half a second


def test_other_errors_are_not_retried(settings_env):
    settings_env(INITLAB_STORAGE_RETRY_S="5")
    calls = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        with_storage_retry(broken)
    assert calls == [1]
