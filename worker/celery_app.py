"""The Celery application, configured from Settings.

Importing this module must stay cheap and TensorFlow-free: the API imports it to
publish tasks by name. Task code (and with it TensorFlow) loads only in the worker.
"""

from __future__ import annotations

from celery import Celery

from app.settings import Settings, get_settings

TRAIN_RUN_TASK = "initlab.train_run"  # one run id (kept for messages sent before groups)
TRAIN_GROUP_TASK = "initlab.train_group"  # a list of run ids of one study, trained fused


def broker_options(settings: Settings) -> dict:
    if settings.uses_filesystem_broker:
        folder = settings.broker_folder
        for sub in ("in", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        # Both directions use one folder: API and worker are peers on one machine.
        return {
            "data_folder_in": str(folder / "in"),
            "data_folder_out": str(folder / "in"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "polling_interval": settings.broker_polling_interval_s,
        }
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": settings.visibility_timeout_s}
    # Other transports (e.g. kombu's SQLAlchemy one) pass every option to their
    # own engine, so nothing is added for them.
    return {}


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("initlab", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.queue,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # No remote control: initlab steers runs through SQL, and the control
        # queue costs every worker a poll loop (and seconds at shutdown).
        worker_enable_remote_control=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


celery_app = create_celery()
