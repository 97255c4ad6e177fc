"""Seed 001's comparison loop, as the tutorial writes it: plain Keras, one model after another.

``train_with_initializer`` and the initializers are the tutorial's, line for line
(tf.keras, Dense 128-64 ReLU + softmax output with glorot_uniform, Adam, categorical
cross-entropy on one-hot labels, batch 128, validated on the test set). Two changes,
both outside the timed loop or the model: the arrays come from the IDX files in
INITLAB_DATA_DIR instead of a download (the same arrays: reshape to 784, float32 / 255,
one-hot), and each seed's pass over the initializers starts with
``keras.utils.set_random_seed(seed)`` so that several seeds can be compared (the
tutorial trains each initializer once, unseeded). ``--epochs`` replaces the tutorial's 10.

Prints one line per run and the loop's wall time; ``--json-out`` writes every run's
history and time.

    python bench/seed_loop.py --epochs 2 --seeds 0 1 2 3
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import typer  # noqa: E402

# The tutorial's names, in its order, and the initlab registry ids of the same schemes.
INITIALIZERS = {
    "Zeros": "zeros",
    "Random Normal": "random_normal",
    "Glorot Uniform": "glorot_uniform",
    "He Uniform": "he_uniform",
}

app = typer.Typer(add_completion=False)


def load_mnist(data_dir: Path | None):
    """The tutorial's arrays: x (n, 784) float32 in [0, 1], y one-hot."""
    import tensorflow as tf

    from worker.training.datasets import load_dataset

    x_train, y_train, x_test, y_test = load_dataset("mnist", data_dir, download=False)
    y_train = tf.keras.utils.to_categorical(y_train, 10)
    y_test = tf.keras.utils.to_categorical(y_test, 10)
    return (x_train, y_train), (x_test, y_test)


@app.command()
def main(
    epochs: int = typer.Option(2, help="the tutorial uses 10"),
    seeds: list[int] = typer.Option([0, 1, 2, 3], help="one pass over the initializers per seed"),
    data_dir: Path = typer.Option(None, envvar="INITLAB_DATA_DIR", help="folder with mnist/ IDX files"),
    json_out: Path = typer.Option(None, help="write the runs' histories and times here"),
) -> None:
    import tensorflow as tf

    (x_train, y_train), (x_test, y_test) = load_mnist(data_dir)

    # ---- seed 001, unchanged except epochs ------------------------------------------
    def train_with_initializer(initializer, name):
        model = tf.keras.Sequential([
            tf.keras.layers.Dense(128, activation='relu', kernel_initializer=initializer, input_shape=(784,)),
            tf.keras.layers.Dense(64, activation='relu', kernel_initializer=initializer),
            tf.keras.layers.Dense(10, activation='softmax', kernel_initializer='glorot_uniform')
        ])
        model.compile(
            optimizer='adam',
            loss='categorical_crossentropy',
            metrics=['accuracy']
        )
        history = model.fit(
            x_train, y_train,
            validation_data=(x_test, y_test),
            epochs=epochs,
            batch_size=128,
            verbose=0
        )
        return history.history
    # ----------------------------------------------------------------------------------

    runs = []
    started = time.perf_counter()
    for seed in seeds:
        tf.keras.utils.set_random_seed(seed)
        initializers = {
            'Zeros': tf.keras.initializers.Zeros(),
            'Random Normal': tf.keras.initializers.RandomNormal(stddev=0.01),
            'Glorot Uniform': tf.keras.initializers.GlorotUniform(),
            'He Uniform': tf.keras.initializers.HeUniform()
        }
        for name, initializer in initializers.items():
            run_started = time.perf_counter()
            history = train_with_initializer(initializer, name)
            seconds = time.perf_counter() - run_started
            history = {key: [float(value) for value in values] for key, values in history.items()}
            runs.append({"initializer": INITIALIZERS[name], "name": name, "seed": seed,
                         "seconds": seconds, "history": history})
            print(f"{name:<15} seed {seed}: val_accuracy {history['val_accuracy'][-1]:.4f}  "
                  f"{seconds:6.2f} s", flush=True)
    total = time.perf_counter() - started
    print(f"seed loop: {len(runs)} runs in {total:.2f} s")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"seconds": total, "epochs": epochs, "seeds": seeds, "runs": runs}, indent=1))


if __name__ == "__main__":
    app()
