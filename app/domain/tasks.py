"""The names the API and the workers agree on: Celery task names and queue names.

The API publishes by name (app/queue.py) and never imports the task code; the worker
registers its tasks under these names (worker/tasks.py).
"""

from __future__ import annotations

TRAIN_GROUP_TASK = "initlab.train_group"  # a list of run ids of one study, trained fused
TRAIN_RUN_TASK = "initlab.train_run"  # one run id (kept for messages sent before groups)
SIGNAL_PROBE_TASK = "initlab.signal_probe"  # one stored signal-propagation request


def probe_queue(queue: str) -> str:
    """The queue of the signal-propagation probes that belong to training queue ``queue``.

    Apart from training so that a probe (a second of work) never waits behind a study:
    ``initlab up`` starts one worker process for it.
    """
    return f"{queue}.probe"
