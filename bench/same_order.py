"""Is an accuracy gap between initlab and the plain loop the batch order, or a defect?

For one initializer of a workload (bench/workloads.py), each seed trained three ways on the
same data: plain Keras (bench/sequential_loop.py's model) with its own shuffle, plain Keras fed
initlab's batch order (``trainer.epoch_order``, ``shuffle=False``), and initlab alone (a group
of one). Prints each seed's final validation accuracy (bench/RESULTS.md, "Two more measurements").

    python bench/same_order.py deep he_normal
    python bench/same_order.py seed-000 normal_fan_in --seeds 8   # seeds 0-7 instead of the workload's
    python bench/same_order.py deep lecun_normal --seeds 24 --first-seed 12   # seeds 12-35
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(workload: str = typer.Argument(..., help="a name of workloads.WORKLOADS"),
         initializer: str = typer.Argument(..., help="an initializer key of that workload, e.g. he_normal"),
         seeds: int = typer.Option(None, help="seeds 0 … N-1 instead of the workload's (a gap needs more than 2 to judge)"),
         first_seed: int = typer.Option(0, help="with --seeds: start there (seeds F … F+N-1), to add seeds to an earlier run"),
         ) -> None:
    import keras

    from app.domain.spec import StudySpec
    from sequential_loop import plain_model
    from worker.training.datasets import prepare_data
    from worker.training.sink import MemorySink
    from worker.training.trainer import epoch_order, train_group
    from workloads import WORKLOADS

    body = WORKLOADS[workload] if seeds is None else {**WORKLOADS[workload], "seeds": list(range(first_seed, first_seed + seeds))}
    spec = StudySpec.model_validate(body)
    data = prepare_data(spec.dataset.name, spec.dataset.train_samples, spec.dataset.validation_samples,
                        os.environ.get("INITLAB_DATA_DIR"), spec.dataset.subset_seed)
    batch, epochs = spec.training.batch_size, spec.training.epochs
    found = []
    for planned in spec.runs():
        if planned.initializer.key != initializer:
            continue
        setup = spec.setup(1, planned.initializer, planned.seed, planned.activation, planned.depth)
        keras.utils.set_random_seed(planned.seed)
        shuffled = plain_model(setup, data.x_train.shape[1]).fit(
            data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), batch_size=batch, epochs=epochs,
            verbose=0).history["val_accuracy"][-1]
        keras.utils.set_random_seed(planned.seed)
        model = plain_model(setup, data.x_train.shape[1])
        for epoch in range(1, epochs + 1):
            order = epoch_order(planned.seed, epoch, len(data.y_train))
            history = model.fit(data.x_train[order], data.y_train[order], validation_data=(data.x_val, data.y_val),
                                batch_size=batch, epochs=1, shuffle=False, verbose=0).history
        sink = MemorySink()
        train_group([setup], sink, data=data)
        found.append((shuffled, history["val_accuracy"][-1], sink.epochs[1][-1]["val_accuracy"]))
        print(f"{initializer} seed {planned.seed}: plain Keras shuffled {found[-1][0]:.4f}, plain Keras in initlab's "
              f"order {found[-1][1]:.4f}, initlab {found[-1][2]:.4f}", flush=True)
    if len(found) > 1:
        import numpy as np

        values = np.array(found)
        gap = values[:, 2] - values[:, 0]
        print(f"mean over {len(found)} seeds: plain Keras shuffled {values[:, 0].mean():.4f}, in initlab's order "
              f"{values[:, 1].mean():.4f}, initlab {values[:, 2].mean():.4f}; initlab - shuffled {gap.mean() * 100:+.2f} "
              f"points (standard error {gap.std(ddof=1) / np.sqrt(len(gap)) * 100:.2f})", flush=True)


if __name__ == "__main__":
    typer.run(main)
