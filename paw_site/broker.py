"""The embedded default's broker and result store: kombu's filesystem
transport and Celery's file result backend, each writing a file whole before
anyone can see it.

kombu's filesystem `_put` creates `<time>_<uuid>.<queue>.msg` and then writes
into it, while a worker's `_get` moves any such file away and reads it: a
worker that looks between the two reads an empty message and its consumer
dies on the JSON error. Polled once a second that was rare; polled every 10 ms
(BROKER_POLLING_INTERVAL, so a run does not wait a second for its worker) it
happened within minutes. Here a message is written under a name no queue
matches, then renamed into place (atomic in one folder).

Celery's file result backend opens the result's file and then writes into it;
a run waiting for its answer looks for that file every few milliseconds
(runtime.services), so it too is written under another name and renamed.
"""

import os
import uuid
from time import monotonic

from celery.backends import filesystem as results
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import ensure_bytes, str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"partial-{uuid.uuid4()}.tmp")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


class ResultBackend(results.FilesystemBackend):
    def set(self, key, value):
        partial = self._filename(f"partial-{uuid.uuid4()}.tmp".encode())
        with self.open(partial, "wb") as outfile:
            outfile.write(ensure_bytes(value))
        os.replace(partial, self._filename(key))

    def result_path(self, task_id):
        """Where the result of `task_id` appears once it is stored."""
        return os.fsdecode(self._filename(self.get_key_for_task(task_id)))
