"""Data sets load from the real IDX files, fail loudly, and subset reproducibly."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from app.domain.datasets import DATASETS, catalog
from worker.training import datasets
from worker.training.datasets import DatasetUnavailable, load_dataset, prepare_data, stratified_subset

# From /work/shared/datasets/README.md.
LABEL_COUNTS = {
    "mnist": (
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ),
    "fashion_mnist": ([6000] * 10, [1000] * 10),
}


@pytest.fixture(autouse=True)
def isolated_keras_cache(tmp_path, monkeypatch):
    """No test may read the developer's ~/.keras or reuse another test's cached arrays."""
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    datasets._load_cached.cache_clear()
    yield
    datasets._load_cached.cache_clear()


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_real_data_set_loads_with_expected_shapes_and_labels(name, data_dir):
    x_train, y_train, x_test, y_test = load_dataset(name, data_dir, download=False)
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32
    assert 0.0 == x_train.min() and x_train.max() == 1.0
    train_counts, test_counts = LABEL_COUNTS[name]
    assert np.bincount(y_train).tolist() == train_counts
    assert np.bincount(y_test).tolist() == test_counts
    assert not x_train.flags.writeable, "cached arrays are shared between runs"


def test_idx_files_directly_in_data_dir_are_accepted(data_dir, tmp_path):
    for file in datasets.IDX_FILES.values():
        (tmp_path / file).symlink_to(data_dir / "mnist" / file)
    x_train, _, x_test, _ = load_dataset("mnist", tmp_path, download=False)
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)


def test_missing_directory_names_the_paths_and_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetUnavailable) as caught:
        load_dataset("mnist", missing, download=False)
    message = str(caught.value)
    assert str(missing / "mnist") in message
    assert "train-images-idx3-ubyte.gz" in message
    assert "INITLAB_DATA_DIR" in message


@pytest.mark.parametrize(
    "content",
    [b"this is not gzip", gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 12)],
    ids=["not-gzip", "bad-magic"],
)
def test_corrupt_file_names_the_file(content, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for file in datasets.IDX_FILES.values():
        (folder / file).write_bytes(content)
    with pytest.raises(DatasetUnavailable, match=str(folder)):
        load_dataset("mnist", tmp_path, download=False)


def test_truncated_file_is_reported(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    header = (2049).to_bytes(4, "big") + (100).to_bytes(4, "big")
    for file in datasets.IDX_FILES.values():
        (folder / file).write_bytes(gzip.compress(header + bytes(10)))
    with pytest.raises(DatasetUnavailable, match="truncated"):
        load_dataset("mnist", tmp_path, download=False)


def _write_fake_mnist_npz(folder):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    np.savez(
        folder / "mnist.npz",
        x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        y_train=np.arange(50, dtype=np.uint8) % 10,
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        y_test=np.arange(20, dtype=np.uint8) % 10,
    )


def test_keras_cache_npz_under_home_is_used(tmp_path, monkeypatch):
    home = tmp_path / "fakehome"
    monkeypatch.setenv("HOME", str(home))
    _write_fake_mnist_npz(home / ".keras" / "datasets")
    x_train, y_train, x_test, y_test = load_dataset("mnist", None, download=False)
    assert x_train.shape == (50, 784) and x_test.shape == (20, 784)
    assert x_train.dtype == np.float32 and x_train.max() <= 1.0
    assert y_test.dtype == np.int32 and np.bincount(y_test).tolist() == [2] * 10


def test_keras_home_env_var_wins_over_home(tmp_path, monkeypatch):
    keras_home = tmp_path / "kerashome"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    _write_fake_mnist_npz(keras_home / "datasets")
    assert load_dataset("mnist", tmp_path / "empty", download=False)[0].shape == (50, 784)


def test_stratified_subset_keeps_label_shares_and_is_seeded():
    y = np.repeat(np.arange(10), [100, 200, 100, 100, 100, 100, 100, 100, 50, 50])
    x = np.arange(len(y))[:, None].astype(np.float32)
    xs, ys = stratified_subset(x, y, 100, seed=3)
    assert len(ys) == 100
    assert np.bincount(ys, minlength=10).tolist() == [10, 20, 10, 10, 10, 10, 10, 10, 5, 5]
    assert np.array_equal(y[xs[:, 0].astype(int)], ys), "rows and labels stay paired"
    again, _ = stratified_subset(x, y, 100, seed=3)
    other, _ = stratified_subset(x, y, 100, seed=4)
    assert np.array_equal(xs, again) and not np.array_equal(xs, other)


def test_stratified_subset_returns_everything_when_asked_for_all():
    y = np.arange(30) % 3
    x = y[:, None]
    for n in (None, 30, 1000):
        assert len(stratified_subset(x, y, n, seed=0)[1]) == 30


def test_stratified_subset_rounds_to_exact_size():
    y = np.repeat(np.arange(3), [10, 10, 10])
    _, ys = stratified_subset(y[:, None], y, 7, seed=0)
    assert len(ys) == 7 and sorted(np.bincount(ys).tolist()) == [2, 2, 3]


def test_prepare_data_draws_validation_from_the_test_split(data_dir):
    prepared = prepare_data("fashion_mnist", 300, 200, data_dir, subset_seed=5, download=False)
    assert prepared.x_train.shape == (300, 784) and prepared.x_val.shape == (200, 784)
    assert np.bincount(prepared.y_train).tolist() == [30] * 10
    assert np.bincount(prepared.y_val).tolist() == [20] * 10
    _, _, x_test, _ = load_dataset("fashion_mnist", data_dir, download=False)
    test_rows = {row.tobytes() for row in x_test}
    assert all(row.tobytes() in test_rows for row in prepared.x_val)
    same = prepare_data("fashion_mnist", 300, 200, data_dir, subset_seed=5, download=False)
    assert np.array_equal(prepared.x_train, same.x_train)


def test_catalog_lists_both_data_sets():
    entries = {entry["id"]: entry for entry in catalog()}
    assert set(entries) == {"mnist", "fashion_mnist"}
    assert entries["fashion_mnist"]["classes"][9] == "Ankle boot"
    assert entries["mnist"]["train_size"] == 60000 and entries["mnist"]["input_dim"] == 784


def test_prepared_data_keeps_the_bytes_and_makes_floats_only_when_asked(data_dir):
    prepared = prepare_data("mnist", None, None, data_dir, download=False)
    assert prepared.images_train.dtype == np.uint8 and prepared.images_train.shape == (60000, 784)
    assert prepared.images_val.shape == (10000, 784) and not prepared.images_train.flags.writeable
    assert "x_train" not in vars(prepared)  # no 188 MB float copy until something asks for it
    index = np.array([[0, 5], [59999, 7], [123, 123]])  # (samples, runs), as the recorder's probe asks
    rows = prepared.train_rows(index)
    assert rows.shape == (3, 2, 784) and rows.dtype == np.float32
    x_train, _, x_test, _ = load_dataset("mnist", data_dir, download=False)
    assert np.array_equal(rows, x_train[index]) and np.array_equal(prepared.x_train, x_train)
    assert np.array_equal(prepared.x_val, x_test) and prepared.x_train is prepared.x_train
    # A worker's next group on the same set gets the same bytes, which layers.rows_variable keeps.
    assert prepare_data("mnist", None, None, data_dir, download=False).images_train is prepared.images_train
    subset = prepare_data("mnist", 500, 100, data_dir, subset_seed=2, download=False)
    assert subset.images_train.dtype == np.uint8
    assert np.array_equal(subset.x_train, subset.images_train / np.float32(255))
