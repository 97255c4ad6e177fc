"""worker/training/feed.py: fit sees the batches Keras makes of plain arrays, without tf.data's autotuner.

The batches are compared with what Keras's own array adapter yields (order, a partial last
batch, dtypes), and the training a group records is compared with the same group fed plain
arrays, bit for bit: the feed changes how batches reach the step, never which.
"""

from __future__ import annotations

import numpy as np
from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

from app.domain.spec import run_setup
from worker.training import feed
from worker.training.sink import MemorySink
from worker.training.trainer import train_group

ROWS, RUNS, BATCH = 300, 3, 64  # 300 = 4 full batches and one of 44


def arrays():
    rng = np.random.default_rng(0)
    return rng.permutation(ROWS * RUNS).reshape(ROWS, RUNS).astype(np.int32), rng.integers(0, 10, (ROWS, RUNS))


def batches(dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_the_batches_are_keras_own_in_order_with_autotuning_off():
    x, y = arrays()
    fed = feed.fit_data(x, y, BATCH)
    assert set(fed) == {"x"}  # a dataset: fit gets no batch_size beside it
    keras_own = ArrayDataAdapter(x, y, batch_size=BATCH, shuffle=False).get_tf_dataset()
    ours, theirs = batches(fed["x"]), batches(keras_own)
    assert [len(batch_x) for batch_x, _ in ours] == [64, 64, 64, 64, 44]
    assert len(ours) == len(theirs)
    for (our_x, our_y), (their_x, their_y) in zip(ours, theirs):
        assert our_x.dtype == their_x.dtype and our_y.dtype == their_y.dtype
        np.testing.assert_array_equal(our_x, their_x)
        np.testing.assert_array_equal(our_y, their_y)
    assert fed["x"].options().autotune.enabled is False
    validation = feed.validation_data(x, y, BATCH)
    assert validation.options().autotune.enabled is False
    assert [len(batch_x) for batch_x, _ in batches(validation)] == [64, 64, 64, 64, 44]


def test_a_group_fed_through_the_feed_records_what_plain_arrays_give(data, monkeypatch):
    setups = [run_setup(index + 1, index, dataset="fashion_mnist", train_samples=300, validation_samples=200,
                        epochs=2, batch_size=BATCH, initializer=initializer, hidden_units=[16], dropout=0.2)
              for index, initializer in enumerate(["he_normal", "glorot_uniform", "uniform_0_1"])]

    def recorded():
        sink = MemorySink()
        train_group(setups, sink, data=data)
        epochs = {run: [{name: value for name, value in entry.items() if name != "seconds"} for entry in entries]
                  for run, entries in sink.epochs.items()}
        return epochs, sink.layers, sink.diagnostics

    through_feed = recorded()
    monkeypatch.setattr(feed, "fit_data", lambda x, y, batch_size: {"x": x, "y": y, "batch_size": batch_size})
    monkeypatch.setattr(feed, "validation_data", lambda x, y, batch_size: (x, y))
    plain = recorded()
    assert through_feed[0][1][1]["val_accuracy"] > 0  # trained and validated
    assert through_feed == plain
