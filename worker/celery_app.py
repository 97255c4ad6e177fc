"""The worker's Celery application: the API's configuration (app/queue.py) plus the task module.

Importing this module stays cheap and TensorFlow-free; the training core loads when the
worker process starts (worker/tasks.py).
"""

from __future__ import annotations

from app.queue import create_celery

celery_app = create_celery(include=["worker.tasks"])
