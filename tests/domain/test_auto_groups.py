"""INITLAB_FUSE_MAX=auto: group sizes that follow the device (app/domain/memory.py ``auto_group_size``).

The GPU sizes here are the estimate's arithmetic for a given memory, not measurements: no GPU
has checked them (bench/gpu_check.py prints the size it chose on the device it runs on).
"""

from __future__ import annotations

from app.domain.memory import (AUTO_CPU_FUSE_MAX, DEVICE_USABLE_FRACTION, GiB, auto_group_size,
                               device_runs_that_fit, run_memory)
from app.domain.spec import StudySpec

SEED_001 = StudySpec.model_validate({
    "name": "seed 001", "dataset": {"name": "mnist"},
    "model": {"hidden_units": [128, 64], "activation": "relu", "output_initializer": "glorot_uniform"},
    "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 2},
    "initializers": ["zeros", {"id": "random_normal", "params": {"stddev": 0.01}}, "glorot_uniform", "he_uniform"],
    "seeds": [0, 1, 2, 3]})


def test_on_a_cpu_auto_is_todays_default():
    assert AUTO_CPU_FUSE_MAX == 16
    assert auto_group_size(SEED_001, 16, None) == 16
    assert auto_group_size(SEED_001, 40, None) == 16
    assert auto_group_size(SEED_001, 3, None) == 3


def test_on_a_gpu_a_group_is_as_large_as_memory_allows_up_to_the_runs_there_are():
    # Seed 001's MLP needs a few MB a run (parameters, Adam's slots, one batch, its sample order):
    # hundreds of runs fit in a few GiB, and a 16-run study trains as one group on any GPU.
    per_run = run_memory(SEED_001).total
    assert 2 * 2**20 < per_run < 16 * 2**20
    fit = device_runs_that_fit(SEED_001, 4 * GiB)
    assert fit >= 300
    assert fit == (int(4 * GiB * DEVICE_USABLE_FRACTION) - 70000 * 784) // per_run
    assert device_runs_that_fit(SEED_001, 80 * GiB) > 20 * fit - 20
    assert auto_group_size(SEED_001, 16, 80 * GiB) == 16
    assert auto_group_size(SEED_001, 512, 80 * GiB) == 512
    assert auto_group_size(SEED_001, 512, 1 * GiB) == device_runs_that_fit(SEED_001, GiB) < 512


def test_a_device_too_small_for_one_run_still_trains_runs_one_by_one():
    assert device_runs_that_fit(SEED_001, 2**20) == 0
    assert auto_group_size(SEED_001, 16, 2**20) == 1
