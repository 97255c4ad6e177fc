"""Draw a tensor from a registry entry the way the worker does (Keras, seeded)."""

from __future__ import annotations

import numpy as np


def draw(init_id: str, params: dict | None = None, seed: int | None = 1234, shape=(512, 512)) -> np.ndarray:
    import keras

    from app.domain.spec import InitializerRef
    from worker.training.initializers import build

    initializer = build(InitializerRef(id=init_id, params=dict(params or {})), seed)
    return keras.ops.convert_to_numpy(initializer(shape, dtype="float32")).astype(np.float64)
