"""INITLAB_FUSE_MAX=auto on the worker: its share of a cell is cut into groups its device holds.

The API sends each worker an even share of a cell (app/queue.py); the worker asks its device
(worker/training/device.py) and trains the share in groups of ``auto_group_size`` runs.
"""

from __future__ import annotations

import pytest

import worker.execution as execution
import worker.training.device as device
from app.domain.memory import GiB, device_runs_that_fit
from app.domain.spec import StudySpec
from app.settings import Settings

SEED_001 = StudySpec.model_validate({
    "name": "seed 001", "dataset": {"name": "mnist"},
    "model": {"hidden_units": [128, 64], "activation": "relu", "output_initializer": "glorot_uniform"},
    "training": {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 2},
    "initializers": ["zeros", "glorot_uniform"], "seeds": list(range(20))})


@pytest.fixture
def worker_on(monkeypatch):
    def configure(fuse_max, memory):
        monkeypatch.setattr(execution, "get_settings", lambda: Settings(fuse_max=fuse_max))
        monkeypatch.setattr(execution.studies, "spec_of_run", lambda run_id: SEED_001)
        monkeypatch.setattr(device, "device_memory", lambda: memory)
    return configure


def sizes(groups):
    return [len(group) for group in groups]


def test_on_a_cpu_a_share_trains_in_even_groups_of_at_most_16(worker_on):
    worker_on("auto", None)
    groups = execution._device_groups(list(range(1, 41)), (1, "relu", 0))
    assert sizes(groups) == [14, 13, 13]
    assert [run for group in groups for run in group] == list(range(1, 41))  # every run once, in order
    # Two workers' shares of 40 runs are 20 each: 10 + 10, as INITLAB_FUSE_MAX=16 made them.
    assert sizes(execution._device_groups(list(range(1, 21)), (1, "relu", 0))) == [10, 10]
    assert sizes(execution._device_groups(list(range(1, 17)), (1, "relu", 0))) == [16]


def test_on_a_gpu_the_whole_share_trains_as_one_group_when_it_fits(worker_on):
    worker_on("auto", 80 * GiB)
    assert sizes(execution._device_groups(list(range(1, 41)), (1, "relu", 0))) == [40]
    small = 256 * 2**20  # a device that holds only some of them
    fit = device_runs_that_fit(SEED_001, small)
    assert 1 <= fit < 40
    worker_on("auto", small)
    groups = execution._device_groups(list(range(1, 41)), (1, "relu", 0))
    assert max(sizes(groups)) <= fit and sum(sizes(groups)) == 40 and max(sizes(groups)) - min(sizes(groups)) <= 1


def test_a_fixed_fuse_max_trains_the_group_as_the_api_sent_it(worker_on):
    worker_on(4, None)
    assert execution._device_groups(list(range(1, 41)), (1, "relu", 0)) == [list(range(1, 41))]
