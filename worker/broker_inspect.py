"""Which runs do the broker's messages still carry?

SQL says which runs are queued; the broker holds the messages that will train
them. When the broker loses messages (Redis restarted without persistence, or
flushed), queued runs would wait forever. Reading the queue (and the messages
delivered but not yet acknowledged) tells the reconciler which queued runs no
message carries any more, so it can send them again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path

from app.settings import Settings

# kombu's Redis transport keeps unacknowledged deliveries in this hash.
REDIS_UNACKED_KEY = "unacked"


def run_ids_in_messages(raw_messages: Iterable[bytes | str]) -> set[int]:
    """Run ids named by Celery protocol-2 messages (a task takes a run id or a list of them)."""
    ids: set[int] = set()
    for raw in raw_messages:
        try:
            message = json.loads(raw)
            if isinstance(message, list):  # kombu's unacked hash stores [message, exchange, routing_key]
                message = message[0]
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        for arg in args[:1]:
            ids.update(arg if isinstance(arg, list) else [arg])
    return {run_id for run_id in ids if isinstance(run_id, int)}


def run_ids_in_broker(settings: Settings) -> set[int] | None:
    """Run ids some message still carries; None where this transport cannot be read."""
    if settings.broker_url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(settings.broker_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            queue_keys = [settings.queue, *client.scan_iter(f"{settings.queue}\x06\x16*")]  # priority sub-queues
            raw: list[bytes] = []
            for key in queue_keys:
                raw.extend(client.lrange(key, 0, -1))
            raw.extend(client.hvals(REDIS_UNACKED_KEY))
        except redis.RedisError:
            return None  # broker down: nothing can be concluded until it is back
        finally:
            client.close()
        return run_ids_in_messages(raw)
    if settings.uses_filesystem_broker:
        return run_ids_in_messages(path.read_bytes() for path in _queue_files(settings, settings.queue) if path.is_file())
    return None


def ready_message_count(settings: Settings, queues: list[str]) -> int | None:
    """Messages waiting in these queues (not yet delivered); None if unknown."""
    if settings.broker_url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(settings.broker_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            keys = [key for queue in queues for key in (queue, *client.scan_iter(f"{queue}\x06\x16*"))]
            return sum(client.llen(key) for key in keys)
        except redis.RedisError:
            return None
        finally:
            client.close()
    if settings.uses_filesystem_broker:
        return sum(len(_queue_files(settings, queue)) for queue in queues)
    return None


def _queue_files(settings: Settings, queue: str) -> list[Path]:
    """A queue's message files (kombu names them ``<ms>_<uuid>.<queue>.msg``)."""
    wanted = f"{queue}.msg"
    return [path for path in (Path(settings.broker_folder) / "in").glob("*.msg") if path.name.partition(".")[2] == wanted]
