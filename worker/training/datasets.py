"""The image data sets a run can train on, and how a run's subset of them is drawn.

Loading tries, in order: the configured data directory (the original IDX ``.gz`` files),
the Keras download cache, and finally Keras's own downloader (Keras is imported only for
that last step). Parsed arrays are cached per process because a worker trains many
runs on the same data. The catalogue (names, sizes) is the domain's (app/domain/datasets.py).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.domain.datasets import DATASETS, DatasetInfo  # noqa: F401  (the catalogue)

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
_IMAGE_MAGIC = 2051
_LABEL_MAGIC = 2049
_SPLITS = ("x_train", "y_train", "x_test", "y_test")


class DatasetUnavailable(Exception):
    """The data set could not be found or read; the message says where we looked and how to fix it."""


@dataclass
class PreparedData:
    """A run's training and validation arrays.

    Images stay as the data set's bytes where it has them (``images_*``: uint8, one row of 784
    a sample); ``x_train``/``x_val``, float32 in [0, 1] (bytes / 255), are made on first use,
    and ``train_rows`` makes floats of a few rows only. The fused model reads the bytes
    themselves (layers.rows_variable), so a worker never makes the whole float copy: MNIST's
    is 188 MB, whose allocation and page faults took 0.6 s of a worker's first group.
    """

    images_train: np.ndarray
    y_train: np.ndarray
    images_val: np.ndarray
    y_val: np.ndarray

    @functools.cached_property
    def x_train(self) -> np.ndarray:
        return as_float(self.images_train)

    @functools.cached_property
    def x_val(self) -> np.ndarray:
        return as_float(self.images_val)

    def train_rows(self, index: np.ndarray) -> np.ndarray:
        """Float32 training rows ``images_train[index]``, the values ``x_train[index]`` holds."""
        return as_float(self.images_train[index])


def as_float(images: np.ndarray) -> np.ndarray:
    """Images as the model sees them: bytes / 255 in float32 (read-only); float images as they are."""
    if images.dtype != np.uint8:
        return images
    result = _scaled(images)
    result.setflags(write=False)
    return result


def _scaled(pixels: np.ndarray) -> np.ndarray:
    """pixels / 255 as a new float32 array, divided in place: a second float32 array would cost
    its allocation and page faults again."""
    result = pixels.astype(np.float32)
    result /= np.float32(255.0)
    return result


def keras_cache_dir() -> Path:
    """Where Keras keeps downloads: mirrors keras.src.backend.config without importing it."""
    home = os.environ.get("KERAS_HOME")
    return (Path(home) if home else Path.home() / ".keras") / "datasets"


def load_dataset(
    name: str, data_dir: Path | None, *, download: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): float32 in [0, 1] of shape (n, 784), int32 labels, read-only.

    ``download=False`` stops before Keras's downloader (offline workers, tests).
    """
    x_train, y_train, x_test, y_test = load_images(name, data_dir, download=download)
    return as_float(x_train), y_train, as_float(x_test), y_test


def load_images(
    name: str, data_dir: Path | None, *, download: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``load_dataset`` with the images as the files hold them: uint8 rows of 784 (``as_float`` turns them
    into the model's values). Shared by every run in this process, so read-only."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set '{name}' (known: {', '.join(DATASETS)})")
    folder = str(Path(data_dir).expanduser().resolve()) if data_dir is not None else None
    return _load_cached(name, folder, str(keras_cache_dir()), download)


@functools.lru_cache(maxsize=4)
def fingerprint(name: str, data_dir: Path | None) -> str | None:
    """"sha256:" and 16 hex digits of the data set's arrays as loaded (labels and pixels of both
    splits), so a run's record says which data it saw whether the IDX files, Keras's npz or a
    download supplied them; None when they cannot be loaded (the run then fails saying why).
    Hashing ~55 MB takes ~0.1 s, once a process, like the loading it follows."""
    try:
        arrays = load_images(name, data_dir, download=False)
    except (DatasetUnavailable, ValueError, OSError):
        return None
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).data)
    return f"sha256:{digest.hexdigest()[:16]}"


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, data_dir: str | None, keras_cache: str, download: bool):
    looked: list[str] = []
    raw = _load_from_disk(name, data_dir, Path(keras_cache), looked)
    if raw is None:
        raw = _download(name, looked) if download else None
    if raw is None:
        raise DatasetUnavailable(_not_found_message(name, looked))
    x_train, y_train, x_test, y_test = (_to_model_arrays(name, split, raw[split]) for split in _SPLITS)
    info = DATASETS[name]
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DatasetUnavailable(
            f"{info.name}: images and labels disagree in length "
            f"(train {len(x_train)}/{len(y_train)}, test {len(x_test)}/{len(y_test)}); "
            f"the files found do not belong together (searched: {'; '.join(dict.fromkeys(looked))})"
        )
    return x_train, y_train, x_test, y_test


def _load_from_disk(name: str, data_dir: str | None, keras_cache: Path, looked: list[str]):
    dashed = name.replace("_", "-")
    idx_folders = []
    if data_dir is not None:
        idx_folders += [Path(data_dir) / name, Path(data_dir) / dashed, Path(data_dir)]
    idx_folders += [keras_cache / name, keras_cache / dashed]
    for folder in idx_folders:
        looked.append(f"{folder}/{{{','.join(IDX_FILES.values())}}}")
        if all((folder / file).is_file() for file in IDX_FILES.values()):
            return {split: read_idx(folder / file) for split, file in IDX_FILES.items()}
    for npz in (keras_cache / f"{name}.npz", keras_cache / f"{dashed}.npz"):
        looked.append(str(npz))
        if npz.is_file():
            return _read_npz(npz)
    return None


def read_idx(path: Path) -> np.ndarray:
    """One gzip-compressed IDX file as uint8: (n, 28, 28) images or (n,) labels."""
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise DatasetUnavailable(f"{path} is not a readable gzip file ({error}); "
                                 "replace it with the original download") from error
    if len(data) < 8:
        raise DatasetUnavailable(f"{path} is too short to be an IDX file ({len(data)} bytes)")
    magic, count = int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big")
    if magic == _IMAGE_MAGIC and len(data) >= 16:
        rows, cols = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
        shape, offset = (count, rows, cols), 16
    elif magic == _LABEL_MAGIC:
        shape, offset = (count,), 8
    else:
        raise DatasetUnavailable(
            f"{path} has IDX magic number {magic}, expected {_IMAGE_MAGIC} (images) "
            f"or {_LABEL_MAGIC} (labels): the file is corrupt or not an IDX file"
        )
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise DatasetUnavailable(
            f"{path} header promises shape {shape} ({expected} bytes) but holds "
            f"{len(data) - offset} bytes: the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {split: np.asarray(archive[split]) for split in _SPLITS}
    except (OSError, ValueError, KeyError) as error:
        raise DatasetUnavailable(
            f"{path} is not a usable Keras data set archive ({error}); it must hold "
            f"arrays {', '.join(_SPLITS)}"
        ) from error


def _download(name: str, looked: list[str]):
    looked.append(f"keras.datasets.{name}.load_data() (download)")
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as error:  # no network, blocked proxy, bad checksum: all mean "not here"
        looked[-1] += f" failed: {type(error).__name__}: {error}"
        return None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _to_model_arrays(name: str, split: str, array: np.ndarray) -> np.ndarray:
    info = DATASETS[name]
    if split.startswith("x"):
        if array.ndim < 2 or int(np.prod(array.shape[1:])) != info.input_dim:
            raise DatasetUnavailable(
                f"{info.name} {split} has shape {array.shape}, expected (n, 28, 28)"
            )
        result = array.reshape(len(array), info.input_dim)
        if result.dtype != np.uint8:  # pixel values of another type: scaled the same way, now
            result = _scaled(result)
    else:
        result = array.reshape(-1).astype(np.int32)
        if result.size and (result.min() < 0 or result.max() >= info.num_classes):
            raise DatasetUnavailable(f"{info.name} {split} holds labels outside 0..{info.num_classes - 1}")
    result.setflags(write=False)
    return result


def _not_found_message(name: str, looked: list[str]) -> str:
    # Each place once: for a name without "_" (mnist) the dashed spelling is the same folder.
    where = "\n  ".join(dict.fromkeys(looked))
    return (
        f"data set '{name}' is not available. Looked for the four IDX files "
        f"({', '.join(IDX_FILES.values())}) and for {name}.npz in:\n  {where}\n"
        f"Fix: set INITLAB_DATA_DIR to a folder that holds {name}/ with those four files "
        f"(or holds them directly), or give the worker network access so Keras can download them."
    )


def stratified_subset(x: np.ndarray, y: np.ndarray, n: int | None, seed: int):
    """A seeded sample of ``n`` rows that keeps each label's share of the full set.

    Small subsets are where initializers differ most, and a plain random sample of a few
    hundred images can leave a class nearly empty, which would be mistaken for an effect
    of the initializer. Shares are rounded by largest remainder so exactly ``n`` rows return.
    """
    if n is None or n >= len(y):
        return x, y
    if n < 1:
        raise ValueError(f"a subset needs at least one sample, got n={n}")
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(y, return_counts=True)
    exact = counts * (n / len(y))
    quota = np.floor(exact).astype(int)
    leftover = n - int(quota.sum())
    # Largest remainder first; a stable sort breaks ties by label so the result is repeatable.
    quota[np.argsort(-(exact - quota), kind="stable")[:leftover]] += 1
    chosen = [
        rng.choice(np.flatnonzero(y == label), size=take, replace=False)
        for label, take in zip(labels, quota)
        if take
    ]
    index = np.sort(np.concatenate(chosen))
    return x[index], y[index]


def prepare_data(
    name: str,
    train_samples: int | None,
    validation_samples: int | None,
    data_dir: Path | None,
    subset_seed: int = 0,
    *,
    download: bool = True,
) -> PreparedData:
    """A run's training and validation arrays; validation comes from the test split, as in seed 001."""
    x_train, y_train, x_test, y_test = load_images(name, data_dir, download=download)
    train_seed, val_seed = (int(s) for s in np.random.SeedSequence(subset_seed).generate_state(2))
    x_train, y_train = stratified_subset(x_train, y_train, train_samples, train_seed)
    x_val, y_val = stratified_subset(x_test, y_test, validation_samples, val_seed)
    return PreparedData(x_train, y_train, x_val, y_val)
