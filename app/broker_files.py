"""The embedded broker's message files, each published whole and read without stopping a worker.

kombu's filesystem transport writes a message in place (open, lock, write) while its reader
takes no lock: it moves any ``<ms>_<uuid>.<queue>.msg`` file it lists and parses what it read.
A message caught between the writer's open() and write() reads as empty, and the worker
stops on the JSONDecodeError ("Unrecoverable error"; CI saw it as a probe worker that never
answered again). Here a message is written under a name the reader skips and renamed into
place (atomic within one file system), so a reader sees all of it or nothing; and a file that
still does not parse (left by an older initlab, or written by hand) is dropped with a warning
instead of stopping the worker. A run whose message is lost that way is sent again by the
worker's reconciler, which compares SQL with the messages in the broker.
"""

from __future__ import annotations

import logging
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".part"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # kombu's own name: the reader orders messages by it and picks its queue's by the suffix.
        final = os.path.join(self.data_folder_out, f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg")
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue):
        while True:  # each failed read has moved its file away, so the next look sees the rest
            try:
                return super()._get(queue)
            except ValueError as exc:  # json.JSONDecodeError
                log.warning("dropped an unreadable message on queue %s: %s", queue, exc)


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
