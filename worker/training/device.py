"""What a run trains on, for its record and for sizing its group.

``describe_device`` gives "CPU" or the accelerator's own name (e.g. "NVIDIA H200"), stored on
each run and shown in the runs table. ``device_memory`` gives the accelerator's memory as the
backend reports it, which INITLAB_FUSE_MAX=auto sizes groups against (app/domain/memory.py).
Both ask the backend Keras was imported with, and import nothing else: a JAX worker has no
TensorFlow.
"""

from __future__ import annotations

import keras


def describe_device() -> str:
    """"CPU", or the accelerator's name, for the run's record."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return str(details.get("device_name") or gpus[0].name)
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                return str(getattr(device, "device_kind", device.platform))
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
    except Exception:  # device listing is informative only; never fail a run over it
        return "unknown"
    return "CPU"


def device_memory() -> int | None:
    """Bytes of memory of the accelerator training runs here; None on a CPU or when unknown.

    JAX reports its allocator's limit (``bytes_limit``: the device's memory less what the
    driver keeps, or XLA_PYTHON_CLIENT_MEM_FRACTION of it); torch the device's total. The
    TensorFlow backend reports no total, so its groups are sized as on a CPU.
    """
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            stats = device.memory_stats() or {}
            limit = stats.get("bytes_limit")
            return int(limit) if limit else None
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return int(torch.cuda.get_device_properties(0).total_memory)
    except Exception:  # sizing falls back to the CPU's groups rather than failing the runs
        return None
    return None
