"""What ``model.fit`` reads: each epoch's row indices and labels, in batches, on any backend.

Why not plain arrays on TensorFlow: Keras's TensorFlow trainer wraps numpy arrays in a tf.data
pipeline ending in ``prefetch(AUTOTUNE)``, and tf.data's autotuner runs a background thread in
every iterator it makes. ``train_group`` calls ``fit`` once an epoch, so each epoch made a new
iterator and deleted the last one; in ``initlab up``'s two workers (one TensorFlow thread each,
on 2 cores, beside the API and the probe worker) that deletion blocked for 0.8-2.9 s at about
half of the epoch ends, in ``RootDataset::Iterator::~Iterator`` waiting for that thread
(``py-spy dump --native`` of a worker). Seed 000's study took 28.7-34.2 s end to end in six
runs before, 24.5-26.6 s in five after (bench/RESULTS.md). (Alone in one process the two feeds
train equally fast, paired: the cost is in the deletion, under load.) The indices are tiny and
already in memory, so there is nothing to prefetch or tune: the same batches, in the same order,
from a dataset with autotuning off.

Other backends (JAX) iterate numpy arrays in Keras itself; they get the arrays as they are.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def fit_data(x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, Any]:
    """``fit`` keyword arguments that feed ``x`` and ``y`` in order, ``batch_size`` at a time."""
    if keras.backend.backend() != "tensorflow":
        return {"x": x, "y": y, "batch_size": batch_size}
    return {"x": _untuned_batches(x, y, batch_size)}


def validation_data(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    """``fit``'s ``validation_data``: the same batches Keras would make of (x, y) at ``batch_size``."""
    if keras.backend.backend() != "tensorflow":
        return (x, y)
    return _untuned_batches(x, y, batch_size)


def _untuned_batches(x: np.ndarray, y: np.ndarray, batch_size: int):
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).with_options(options)
