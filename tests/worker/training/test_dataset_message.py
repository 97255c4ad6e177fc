"""The missing-data-set message names each place it looked once (issue 11, item 9)."""

from __future__ import annotations

import pytest

from worker.training import datasets
from worker.training.datasets import DatasetUnavailable, load_dataset


@pytest.fixture(autouse=True)
def isolated_keras_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    datasets._load_cached.cache_clear()
    yield
    datasets._load_cached.cache_clear()


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_each_path_is_listed_once(tmp_path, name):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetUnavailable) as caught:
        load_dataset(name, missing, download=False)
    places = [line.strip() for line in str(caught.value).splitlines() if line.startswith("  ")]
    assert places and len(places) == len(set(places)), places
    assert any(place.startswith(str(missing / name)) for place in places)
    assert any(place.endswith(f"{name}.npz") for place in places)
