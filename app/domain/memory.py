"""How much memory a worker needs to train a group of runs: an estimate made before a study is accepted.

Pure arithmetic on the spec (no I/O, no TensorFlow), used twice: a study whose single run
cannot fit in one worker's memory (``INITLAB_WORKER_MEMORY``) is refused with a 422 that
says what to reduce (app/domain/limits.py), and dispatch sizes fused groups so that each
fits (app/queue.py ``plan_groups``). A worker that runs out of memory is killed by the
kernel without a word; this keeps it from being handed such work.

The estimate of a group of K runs of one grid cell, in bytes (float32 = 4 bytes):

    process                      PROCESS_BYTES: Python, TensorFlow, Keras and Celery, before any data
    + TRAINING_OVERHEAD          the first model's traced functions and allocator pools
    + data                       what the worker holds of the data set (shared by the runs):
                                   the whole set as float32, train + test split (worker/training/datasets.py
                                   caches it; since 2026-12-02 as its uint8 bytes, a quarter of that, so
                                   this term is now ~165 MiB above MNIST's real share: left as a margin),
                                   the subsets' float32 copies when a subset is asked, and the
                                   rows the model holds as uint8 (layers.py ``rows_variable``) three times
                                   over while it is built (the bytes, their concatenation, the variable)
    + largest tensor x 16        the recorder's statistics of one kernel slice (a float64 copy, a sorted
                                   float32 copy, masks), one tensor at a time
    + K x per run, where per run =
        parameters P x 4 x (1 weights + 1 gradients + 2 Adam moments and 1 update temporary
                                   (SGD: the temporary only) + 2 recorder copies: get_weights and the
                                   probe's kernel gradients)
      + activations of one batch, B = min(batch_size, training samples):
          B x input_dim x 9      the gathered rows: uint8, then float32 twice (cast, / 255)
          + B x units x 4 x 3    every hidden layer's output (a convolution's h·w·c values), its
                                   activation and its gradient, and the logits'
          + B x values x 4 x 5   each normalized value: its output, gradient, centred and squared
                                   copies, and the activation after it (NORM_TENSORS)
          + B x values x 4 x 2   each pooled value and each residual sum, with their gradients
          + B x hidden x 4 x 2   dropout's mask and output, when dropout > 0
      + samples x 24             the run's sample order and labels (int32), train and validation,
                                   and Keras's copies of them

Checked against the peak RSS (``resource.getrusage``) of real trainings on the training path
(``train_group`` with the recorder), each in a fresh process that had imported the worker as
Celery does (2026-11-30, 2-core VM, TensorFlow on CPU, 1-2 threads; MNIST unless said; Adam
unless said). The estimate was above every measured peak: by 8 to 18 % where parameters
dominate or after several epochs, by up to 53 % for full-size batches, whose activations
TensorFlow frees sooner than the three tensors per unit counted here:

    group                                                      epochs  estimate   measured   ratio
    A 16 runs 128-64, all 60000 samples, batch 128                  1  1331 MiB   1089 MiB   1.22
    B 2 runs 2048-2048, 4096 samples, batch 1024                    1  1593 MiB   1344 MiB   1.19
    C 2 runs 1024-1024, SGD, 16384 samples, batch 16384             1  2252 MiB   1504 MiB   1.50
    D 4 runs 512-512, dropout 0.5, 16384 samples, batch 8192        1  2121 MiB   1731 MiB   1.23
    E 2 runs 6 x 512 tanh, 16384 samples, batch 8192                1  1959 MiB   1362 MiB   1.44
    F 32 runs 256-256, 12000 samples, batch 512                     1  1606 MiB   1359 MiB   1.18
    G 2 runs 1024-1024, 16384 samples, batch 16384                  1  2281 MiB   1493 MiB   1.53
    H 2 runs 4096, Fashion-MNIST, 4096 samples, batch 256           1  1359 MiB   1177 MiB   1.15
    H the same                                                      4  1359 MiB   1251 MiB   1.09
    I 2 runs 4096, Fashion-MNIST, 1024 samples, batch 256          16  1340 MiB   1240 MiB   1.08
    J 2 runs 512-512, dropout 0.5, 8192 samples, batch 4096         4  1388 MiB   1179 MiB   1.18
    K 2 runs conv 16-32 max + 64, F-MNIST, 4096 samples, batch 1024  2  1645 MiB   1542 MiB   1.07
    L 2 runs conv 16-32-32 residual BatchNorm + 64, F-MNIST,
      4096 samples, batch 512                                       2  1995 MiB   1823 MiB   1.09
    M 2 runs 512-512 LayerNorm, 8192 samples, batch 4096            2  1484 MiB   1382 MiB   1.07

(K-M: 2026-12-01, the same way; NORM_TENSORS was raised from 2 to 5 after L measured 0.89.)
tests/domain/test_memory.py measures three such groups again (I, J with 3 epochs; L) on every run
of the slow tests. Not counted: data sets a long-lived worker loaded for earlier studies (it caches them,
about 105 MiB each for MNIST and Fashion-MNIST: the bytes and the rows variable), so a worker
alternating between the two holds that much more than its estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.domain.datasets import DATASETS
from app.domain.spec import StudySpec

MiB = 2**20
GiB = 2**30
FLOAT = 4
# RSS of a worker process that has imported Celery, TensorFlow, Keras and the training core,
# before it loads data: 641 MiB measured (Linux x86-64, TensorFlow 2 on CPU). The same package
# versions in a fresh `make venv` measured 781-800 MiB on 2026-12-01 (not explained); the
# admission check keeps the smaller figure, tests/domain/test_memory.py compares what training
# adds above each process's own baseline.
PROCESS_BYTES = 680 * MiB
# What training adds beyond its data and tensors (traced functions, allocator pools): 46 MiB
# measured in the first epoch of a one-run, 16-unit model; the peak then grows by 50-75 MiB
# over the next epochs and levels off (a 2-run 4096-unit group: 1178, 1225, 1240 MiB after
# 1, 4, 16 epochs), and one and the same training varied by up to 58 MiB between runs.
TRAINING_OVERHEAD = 192 * MiB
# Adam keeps two moments per parameter and its update makes about one more parameter-sized
# temporary; SGD keeps nothing but its update's temporary.
OPTIMIZER_COPIES = {"adam": 3, "sgd": 1}
RECORDER_COPIES = 2
STATISTICS_BYTES_PER_VALUE = 16
INPUT_BYTES_PER_PIXEL = 1 + FLOAT + FLOAT
ACTIVATION_TENSORS = 3
DROPOUT_TENSORS = 2
# A normalization's output and gradient, the centred values its per-run batch moments keep for
# the backward pass and their square, and the separate activation after it; a pooling's output
# and gradient; a residual block's sum and its gradient. Fitted to two measured CNN groups
# (below): with 2 per normalized value, a BatchNorm residual CNN's estimate was 0.89 of its peak.
NORM_TENSORS = 5
POOL_TENSORS = 2
RESIDUAL_TENSORS = 2
SAMPLE_BYTES = 2 * 4 * 3  # order and labels, int32, and Keras's copies


@dataclass(frozen=True)
class RunMemory:
    """One run's share of a group, by what it is spent on."""

    parameters: int  # weights, gradients, optimizer slots, recorder copies
    activations: int  # one batch, forward and backward
    samples: int  # the run's sample order and labels

    @property
    def total(self) -> int:
        return self.parameters + self.activations + self.samples


@dataclass(frozen=True)
class GroupMemory:
    """What one worker process needs to train ``runs`` runs of one cell together."""

    fixed: int  # the process and the first training's overhead
    data: int  # the data set as the worker holds it
    statistics: int  # the recorder's statistics of the largest kernel slice
    run: RunMemory
    runs: int

    @property
    def shared(self) -> int:
        """What the group needs whatever its size."""
        return self.fixed + self.data + self.statistics

    @property
    def total(self) -> int:
        return self.shared + self.runs * self.run.total


def run_memory(spec: StudySpec, depth: int | None = None, batch_size: int | None = None) -> RunMemory:
    """One run of the cell with ``depth`` (None: the model's own layers); ``batch_size`` overrides the spec's."""
    info = DATASETS[spec.dataset.name]
    network = spec.architecture(depth)
    hidden = sum(math.prod(layer.output_shape) for layer in network.hidden)  # values per sample
    normalized = sum(math.prod(layer.output_shape) for layer in network.hidden if layer.norm)
    summed = sum(math.prod(block.layers[-1].output_shape) for block in network.blocks if block.residual)
    pooled = network.activation_values() - hidden
    train, validation = spec.dataset.sizes()
    batch = min(batch_size or spec.training.batch_size, train)
    copies = 1 + 1 + OPTIMIZER_COPIES[spec.training.optimizer] + RECORDER_COPIES
    activations = (batch * info.input_dim * INPUT_BYTES_PER_PIXEL
                   + batch * (hidden + info.num_classes) * FLOAT * ACTIVATION_TENSORS
                   + batch * (normalized * NORM_TENSORS + pooled * POOL_TENSORS + summed * RESIDUAL_TENSORS) * FLOAT
                   + (batch * hidden * FLOAT * DROPOUT_TENSORS if spec.model.dropout > 0 else 0))
    return RunMemory(parameters=spec.parameter_count(depth) * FLOAT * copies, activations=activations,
                     samples=(train + validation) * SAMPLE_BYTES)


def data_memory(spec: StudySpec) -> int:
    """The data set as a worker holds it while training a run of the study."""
    info = DATASETS[spec.dataset.name]
    train, validation = spec.dataset.sizes()
    whole = (info.train_size + info.test_size) * info.input_dim * FLOAT
    subsets = ((spec.dataset.train_samples or 0) + (spec.dataset.validation_samples or 0)) * info.input_dim * FLOAT
    rows = (train + validation) * info.input_dim * 3
    return whole + subsets + rows


def statistics_memory(spec: StudySpec, depth: int | None = None) -> int:
    """The recorder's temporaries while it summarizes the largest kernel slice of one run."""
    return max(math.prod(shape) for _, shape in spec.kernel_shapes(depth)) * STATISTICS_BYTES_PER_VALUE


def group_memory(spec: StudySpec, runs: int, depth: int | None = None, batch_size: int | None = None) -> GroupMemory:
    return GroupMemory(fixed=PROCESS_BYTES + TRAINING_OVERHEAD, data=data_memory(spec),
                       statistics=statistics_memory(spec, depth), run=run_memory(spec, depth, batch_size), runs=runs)


def runs_that_fit(spec: StudySpec, memory: int, depth: int | None = None) -> int:
    """The most runs of the cell one worker with ``memory`` bytes can train together (0: not even one)."""
    group = group_memory(spec, 1, depth)
    room = memory - group.shared
    return max(0, room // group.run.total) if room > 0 else 0


# INITLAB_FUSE_MAX=auto on a CPU: today's fixed group size (the default of INITLAB_FUSE_MAX).
AUTO_CPU_FUSE_MAX = 16
# The share of an accelerator's memory (as JAX reports it, ``bytes_limit``) that groups are sized
# to: the rest is left to XLA's compiled programs, their scratch space and fragmentation. A margin
# chosen, not measured: no GPU has checked this estimate yet (bench/gpu_check.py prints the groups).
DEVICE_USABLE_FRACTION = 0.75


def device_runs_that_fit(spec: StudySpec, device_memory: int, depth: int | None = None) -> int:
    """The most runs of the cell one accelerator with ``device_memory`` bytes can train together.

    What lives on the device: the data rows the model holds (uint8, training and validation, once)
    and, per run, the terms of ``run_memory`` (parameters with their gradients and optimizer slots,
    one batch's activations, the sample order and labels). The per-run term also counts the
    recorder's two host copies, so it errs on the safe side; the process itself and the data set's
    float32 copies stay in host memory (``group_memory``, checked against INITLAB_WORKER_MEMORY).
    """
    info = DATASETS[spec.dataset.name]
    train, validation = spec.dataset.sizes()
    room = int(device_memory * DEVICE_USABLE_FRACTION) - (train + validation) * info.input_dim
    per_run = run_memory(spec, depth).total
    return max(0, room // per_run) if room > 0 else 0


def auto_group_size(spec: StudySpec, runs: int, device_memory: int | None, depth: int | None = None) -> int:
    """INITLAB_FUSE_MAX=auto: how many of a cell's ``runs`` a worker trains as one group.

    On a CPU (``device_memory`` None) the fixed default, which measured best there; on an
    accelerator as many as its memory holds, at most the runs there are, and at least one.
    """
    if device_memory is None:
        return max(1, min(runs, AUTO_CPU_FUSE_MAX))
    return max(1, min(runs, device_runs_that_fit(spec, device_memory, depth)))


def largest_batch_that_fits(spec: StudySpec, memory: int, depth: int | None = None) -> int:
    """The largest batch size with which one run of the cell fits in ``memory`` (0: none does)."""
    low, high = 0, min(spec.training.batch_size, spec.dataset.sizes()[0])
    while low < high:  # the estimate grows with the batch
        middle = (low + high + 1) // 2
        if group_memory(spec, 1, depth, middle).total <= memory:
            low = middle
        else:
            high = middle - 1
    return low


def size(value: int) -> str:
    """Bytes for people: "1.5 GiB", "320 MiB"."""
    return f"{value / GiB:.1f} GiB" if value >= GiB else f"{value / MiB:.0f} MiB"

