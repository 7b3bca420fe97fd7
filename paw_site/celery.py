"""The Celery app: a job queue that must not lose work.

- acks_late + reject_on_worker_lost: a message is acknowledged only when its
  task finished, so a worker killed mid-task leads to redelivery.
- prefetch 1: a worker holds no queued compile it cannot start.
- the broker's visibility timeout (settings) exceeds the longest hard limit.
"""

import os

from celery import Celery
from celery.app.backends import BACKEND_ALIASES
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paw_site.settings")
# A worker's stdout and stderr reach its log as WARNING lines, so library progress
# bars (transformers' GGUF dequantizing and weight loading, the hub client's) would
# fill the console with redraws; a compile's progress is its job's stage and percent.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# A filesystem:// broker URL (the embedded default) gets kombu's filesystem
# transport writing each message whole before renaming it into the queue folder
# (paw_site/broker.py). Through the alias, not the broker_transport setting,
# which would override the scheme of every URL, a redis:// one included.
TRANSPORT_ALIASES["filesystem"] = "paw_site.broker:Transport"
# Its file:// result store writes each result whole too (a run watches for the file).
BACKEND_ALIASES["file"] = "paw_site.broker:ResultBackend"

app = Celery("paw_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    task_default_queue="default",
    # compile_gpu: compiles with a vLLM snapshot, for GPU hosts' workers only.
    # runtime_checks: case checks, on their own worker, so a burst of cases never
    # queues in front of someone waiting for a run (runtime).
    task_queues=[
        Queue("default"),
        Queue("compile"),
        Queue("compile_gpu"),
        Queue("runtime"),
        Queue("runtime_checks"),
    ],
    task_routes={
        "compiler.tasks.*": {"queue": "compile"},
        "runtime.tasks.check_case": {"queue": "runtime_checks"},
        "runtime.*": {"queue": "runtime"},
    },
    result_expires=24 * 3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    include=["paw_site.tasks"],
    beat_schedule={
        "sweep-stale-compiles": {"task": "compiler.tasks.sweep_stale_jobs", "schedule": 60.0}
    },
)
app.autodiscover_tasks()
