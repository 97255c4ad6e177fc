"""The tiny data set the training tests share: 300 Fashion-MNIST training images, 200 for validation."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def data(data_dir):
    from worker.training.datasets import prepare_data

    return prepare_data("fashion_mnist", 300, 200, data_dir)
