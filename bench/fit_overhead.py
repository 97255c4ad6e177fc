"""What initlab costs over a plain Keras ``model.fit`` of the same model and data.

Plain side: the few lines a user would write (seed 001's model, default initializer,
Adam, validation on the test split). initlab side: the run as a group of one
(``train_group``, the one training path) with its recorder and a ``MemorySink``, given the
same prepared arrays so data loading is excluded on both.
Prints the figures, then a last line ``overhead_pct=...`` (initlab over plain: median of
the per-repeat wall-time ratios, in %); ``overhead_cpu_pct`` is the same for CPU time.

    python bench/fit_overhead.py                      # full MNIST, 2 epochs
    python bench/fit_overhead.py --train-samples 5000 --repeats 1
"""

from __future__ import annotations

from _harness import (
    describe_machine, describe_workload, load, parse_args, report_ratio, run_config, time_alternating,
)

from worker.training.sink import MemorySink
from worker.training.trainer import train_group


def plain_keras_fit(args, data):
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input(shape=(data.x_train.shape[1],))]
        + [keras.layers.Dense(width, activation="relu") for width in args.hidden]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
              epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=0)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    data = load(args)
    config = run_config(args)
    print(f"machine:  {describe_machine()}")
    print(f"workload: {describe_workload(args, data)}")
    times = time_alternating(
        {
            "plain keras fit": lambda: plain_keras_fit(args, data),
            "initlab group of one": lambda: train_group([config], MemorySink(), data=data),
        },
        args.repeats,
    )
    plain, initlab = times["plain keras fit"], times["initlab group of one"]
    print(f"plain keras fit       {plain.summary()}")
    print(f"initlab group of one  {initlab.summary()}")
    overhead = report_ratio("initlab / plain", plain, initlab)
    print(f"overhead_pct={overhead:.2f}")

if __name__ == "__main__":
    main()
