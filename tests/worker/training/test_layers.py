"""layers.rows_variable: a data set's bytes go into the model as they are, and the model reads the same
float32 rows whether it was handed the bytes or the floats."""

from __future__ import annotations

import numpy as np

from worker.training.datasets import as_float
from worker.training.layers import IndexedRows, rows_variable


def _rows(variable, as_bytes, index):
    return np.asarray(IndexedRows(variable, as_bytes)(np.asarray(index, np.int32)))


def test_bytes_and_their_floats_give_the_same_rows():
    rng = np.random.default_rng(0)
    train, val = (rng.integers(0, 256, (n, 784), dtype=np.uint8) for n in (40, 10))
    from_bytes = rows_variable(train, val)
    from_floats = rows_variable(as_float(train), as_float(val))
    assert from_bytes[1] is True and from_floats[1] is True  # both stored as a quarter-size uint8 variable
    assert np.array_equal(np.asarray(from_bytes[0]), np.asarray(from_floats[0]))
    index = [0, 39, 40, 49]  # training rows, then validation rows after them
    expected = np.concatenate([as_float(train), as_float(val)])[index]
    assert np.array_equal(_rows(*from_bytes, index), expected)
    assert rows_variable(train, val)[0] is from_bytes[0]  # kept for the worker's next group


def test_rows_that_are_not_bytes_stay_float():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(20, 784)).astype(np.float32)
    val = rng.normal(size=(5, 784)).astype(np.float32)
    variable, as_bytes = rows_variable(train, val)
    assert as_bytes is False and np.asarray(variable).dtype == np.float32
    assert np.array_equal(_rows(variable, as_bytes, [3, 22]), np.concatenate([train, val])[[3, 22]])
