"""The data sets a study can train on: names, sizes and shapes (the catalogue).

What the API validates against and the form lists; the worker's loader
(worker/training/datasets.py) reads the files these entries describe.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every data set in the catalogue is 28×28 grey images; a CNN's checks (pooling depth) rely on it.
IMAGE_SHAPE = (28, 28, 1)
# ... and ten classes: the accuracy of a network that has learnt nothing (phase diagrams, failure tags).
CHANCE_ACCURACY = 0.1


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    name: str
    description: str
    classes: list[str]
    train_size: int
    test_size: int
    input_dim: int = 784  # the image, flattened
    image_shape: tuple[int, int, int] = IMAGE_SHAPE
    num_classes: int = 10


DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(
        id="fashion_mnist",
        name="Fashion-MNIST",
        description="28×28 grayscale photos of clothing (Zalando, MIT licence); seed 000's data set.",
        classes=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        train_size=60000,
        test_size=10000,
    ),
    "mnist": DatasetInfo(
        id="mnist",
        name="MNIST",
        description="28×28 grayscale handwritten digits (LeCun, Cortes, Burges; CC BY-SA 3.0); "
        "seed 001's data set.",
        classes=[str(digit) for digit in range(10)],
        train_size=60000,
        test_size=10000,
    ),
}


def catalog() -> list[dict]:
    return [
        {
            "id": info.id,
            "name": info.name,
            "description": info.description,
            "classes": list(info.classes),
            "train_size": info.train_size,
            "test_size": info.test_size,
            "input_dim": info.input_dim,
            "num_classes": info.num_classes,
        }
        for info in DATASETS.values()
    ]
