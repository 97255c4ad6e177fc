"""The plain-Keras baseline of a workload: one ``model.fit`` after another, as the seeds' articles
write their comparisons (seed 000's W&B report, seed 001's tutorial), for any study body.

Each run is a ``keras.Sequential`` of the study's Dense (and Dropout) layers, or a CNN's Conv2D
and pooling blocks then its Dense head, kernels drawn by the same registry initializer
(worker/training/initializers.py builds the Keras object), Adam or SGD, the study's batch size
and epochs, shuffled by Keras, validated on the test subset.
Timed inside the process around the training loop only (imports and data loading excluded).
Writes {"seconds", "runs": [{"initializer", "seed", "val_accuracy"}]} to --json-out.

    python bench/sequential_loop.py study.json --json-out out.json
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


def plain_model(setup, input_dim: int):
    """Run ``setup``'s network as the seeds' articles build it: a compiled ``keras.Sequential`` of Dense
    (and Dropout) layers, or of Conv2D and pooling blocks then the Dense head for a CNN, softmax output,
    each kernel drawn by the registry's initializer with initlab's seed for that layer."""
    import keras

    from app.domain.datasets import DATASETS
    from app.domain.layers import BIAS, KERNEL, layer_seed
    from worker.training.initializers import build

    network = setup.architecture()
    if network.normalization != "none" or any(block.residual for block in network.blocks):
        raise SystemExit("the sequential baseline builds plain networks only (no normalization, no residual blocks)")
    layers = [keras.Input((input_dim,))]
    flat = setup.family != "cnn"
    if not flat:
        layers.append(keras.layers.Reshape(DATASETS[setup.dataset.name].image_shape))
    for block in network.blocks:
        (hidden,) = block.layers
        weighted = hidden.layer
        drawn = dict(kernel_initializer=build(setup.kernel_of(weighted.seed_index),
                                              layer_seed(setup.seed, weighted.seed_index, KERNEL)),
                     bias_initializer=build(setup.bias, layer_seed(setup.seed, weighted.seed_index, BIAS)))
        if weighted.kind == "conv":
            layers.append(keras.layers.Conv2D(weighted.units, weighted.kernel_shape[:2], padding="same",
                                              activation=setup.activation, **drawn))
        else:
            if not flat:
                layers.append(keras.layers.Flatten())
                flat = True
            layers.append(keras.layers.Dense(weighted.units, activation=setup.activation, **drawn))
        if block.pooled_shape is not None:
            layers.append((keras.layers.MaxPooling2D if network.pooling == "max" else keras.layers.AveragePooling2D)(2))
        if setup.dropout:
            layers.append(keras.layers.Dropout(setup.dropout))
    if not flat:
        layers.append(keras.layers.Flatten())
    output = network.output
    layers.append(keras.layers.Dense(output.units, activation="softmax",
                                     kernel_initializer=build(setup.output, layer_seed(setup.seed, output.seed_index, KERNEL))))
    model = keras.Sequential(layers)
    optimizer = (keras.optimizers.Adam if setup.training.optimizer == "adam" else keras.optimizers.SGD)(
        learning_rate=setup.training.learning_rate)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(study_path: str, json_out: str) -> None:
    import keras

    from app.domain.spec import StudySpec
    from worker.training.datasets import prepare_data

    spec = StudySpec.model_validate(json.loads(Path(study_path).read_text()))
    data = prepare_data(spec.dataset.name, spec.dataset.train_samples, spec.dataset.validation_samples,
                        os.environ.get("INITLAB_DATA_DIR"), spec.dataset.subset_seed)
    runs, started = [], time.perf_counter()
    for planned in spec.runs():
        setup = spec.setup(0, planned.initializer, planned.seed, planned.activation, planned.depth)
        keras.utils.set_random_seed(planned.seed)
        model = plain_model(setup, data.x_train.shape[1])
        history = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                            batch_size=setup.training.batch_size, epochs=setup.epochs, verbose=0)
        runs.append({"initializer": planned.initializer.key, "seed": planned.seed,
                     "val_accuracy": float(history.history["val_accuracy"][-1])})
        print(f"{planned.initializer.key} seed {planned.seed}: val_accuracy {runs[-1]['val_accuracy']:.4f}", flush=True)
    Path(json_out).write_text(json.dumps({"seconds": time.perf_counter() - started, "runs": runs}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[sys.argv.index("--json-out") + 1])
