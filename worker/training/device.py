"""What a run trains on, for its record and for sizing its group.

``describe_device`` gives "CPU" or the accelerator's own name (e.g. "NVIDIA H200"), stored on
each run and shown in the runs table. ``device_memory`` gives the accelerator's memory as the
backend reports it, which INITLAB_FUSE_MAX=auto sizes groups against (app/domain/memory.py).
``environment`` gives what else decides a run's numbers besides its spec and seed: the same
study repeats bit for bit within one environment, but Keras draws other initial weights on
JAX than on TensorFlow, and oneDNN's kernels round differently from Eigen's; so each run keeps
the environment it trained in, for its page and its export. All ask the backend Keras was
imported with, and import nothing else: a JAX worker has no TensorFlow.
"""

from __future__ import annotations

import os
import platform

import keras
import numpy as np


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


def environment(fingerprint: str | None = None) -> dict[str, object]:
    """The libraries, backend switches and data that trained a run (stored with it, shown with it).

    ``onednn`` is what TensorFlow reads from TF_ENABLE_ONEDNN_OPTS (on unless "0" or "false");
    ``threads`` its intra-op pool (0: TensorFlow's own choice). ``data`` is the loaded arrays'
    fingerprint (worker/training/datasets.py), the same whichever file form they came from.
    """
    backend = keras.backend.backend()
    env: dict[str, object] = {"backend": backend, "keras": keras.__version__, "numpy": np.__version__,
                              "python": platform.python_version()}
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            env["tensorflow"] = tf.__version__
            env["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")
            env["threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        elif backend == "jax":
            import jax

            env["jax"] = jax.__version__
        elif backend == "torch":
            import torch

            env["torch"] = torch.__version__
    except Exception:  # informative only; never fail a run over it
        pass
    if fingerprint:
        env["data"] = fingerprint
    return env
