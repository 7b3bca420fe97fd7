"""A real celery worker process runs what the web process enqueues after commit."""

import os

import psutil
import pytest
from celery.result import AsyncResult
from django.db import transaction

from paw_site.tasks import ping
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_task_enqueued_after_commit_runs_in_the_worker_process(celery_worker):
    task_id = "after-commit-" + os.urandom(6).hex()
    with transaction.atomic():
        user = UserFactory(username="committed-user")
        transaction.on_commit(lambda: ping.apply_async(args=[user.username], task_id=task_id))

    result = AsyncResult(task_id).get(timeout=60)

    # Prefork: the task ran in a pool child of the worker subprocess we started.
    assert psutil.Process(result["pid"]).ppid() == celery_worker.proc.pid
    assert result["user_exists"] is True


def test_task_in_a_rolled_back_transaction_is_never_sent(celery_worker):
    task_id = "rolled-back-" + os.urandom(6).hex()
    with pytest.raises(RuntimeError), transaction.atomic():
        UserFactory(username="rolled-back-user")
        transaction.on_commit(lambda: ping.apply_async(args=["x"], task_id=task_id))
        raise RuntimeError("abort")

    # A later task does run, so the worker was alive to receive the first one.
    assert ping.delay().get(timeout=60)["pid"] != os.getpid()
    assert AsyncResult(task_id).state == "PENDING"
