"""What the reliability tests read back about compile jobs: the messages in the
broker, the tasks a worker received, the files left on disk."""

import re
from collections import Counter
from pathlib import Path

from django.conf import settings

from paw_site.celery import app


def queued_messages(queue, *, broker_url=None):
    """Messages waiting in `queue` of the broker (the configured one by default)."""
    with app.connection_for_write(broker_url) as connection:
        channel = connection.default_channel
        # Declaring is idempotent and lets a never-used queue count as empty.
        return channel.queue_declare(queue=queue, durable=True, auto_delete=False).message_count


def forget_unacknowledged(*, broker_url=None):
    """Drop what a Redis broker holds as delivered but never acknowledged. A
    worker an earlier test SIGKILLed mid-compile leaves its message there, to be
    handed out again once the visibility timeout has passed: at once for a test
    that shortens it, where it would count as one more delivery."""
    with app.connection_for_write(broker_url) as connection:
        channel = connection.default_channel
        channel.client.delete(channel.unacked_key, channel.unacked_index_key)


def tasks_received(log_path, task="compiler.tasks.compile_program", *, since=0):
    """How many `task` messages the worker logging to `log_path` received
    (each delivery, redeliveries included), from byte `since` of the log on."""
    text = Path(log_path).read_bytes()[since:].decode(errors="replace")
    return len(re.findall(rf"Task {re.escape(task)}\[[0-9a-f-]+\] received", text))


def task_results(log_path, task="compiler.tasks.compile_program"):
    """What the worker's `task` runs returned, counted: e.g. {"ready": 1, "skipped": 2}."""
    text = Path(log_path).read_text(errors="replace")
    pattern = rf"Task {re.escape(task)}\[[0-9a-f-]+\] succeeded in [0-9.e-]+s: '(\w+)'"
    return Counter(re.findall(pattern, text))


def media_files(*, program_id=""):
    """Everything under MEDIA_ROOT's programs/ and tmp/ folders (only what belongs
    to `program_id` when given: its folders are named after it), relative to MEDIA_ROOT."""
    media = Path(settings.MEDIA_ROOT)
    found = []
    for folder in ("programs", "tmp"):
        for top in (media / folder).glob(f"{program_id}*"):
            found += [top, *top.rglob("*")]
    return sorted(str(path.relative_to(media)) for path in found)
