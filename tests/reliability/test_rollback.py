"""A compile asked for inside a transaction that rolls back never runs: the
task is sent only after commit, so a rolled-back request (or a rolled-back
savepoint inside one that commits) leaves no job, no program, no message and
no files. A real worker listens the whole time; a marker task sent afterwards
on the same queue shows everything sent before it has been received."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from compiler import services
from compiler.models import CompileJob
from compiler.tasks import compile_program
from programs.models import Program, Tag
from tests.compiler.test_compile_e2e import URGENCY
from tests.factories import UserFactory
from tests.reliability.jobs import media_files, queued_messages, tasks_received

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


class Rollback(Exception):
    """Whatever made the request fail after it asked for a compile."""


def test_the_same_compile_committed_is_sent(user, figure):
    """The control, run before the worker starts (it purges the queue when it
    does): committed, the same call puts one message on the queue, so the zero
    below is a measurement."""
    before = queued_messages("compile")
    with transaction.atomic():
        job = services.compile_submit(spec=URGENCY, owner=user).job
        assert queued_messages("compile") == before  # not before commit
    after = queued_messages("compile")
    figure("compile messages queued by one committed submit", after - before)
    assert after - before == 1
    services.compile_cancel(job=job)


def test_a_compile_submitted_in_a_rolled_back_transaction_never_runs(celery_worker, user, figure):
    log_start = celery_worker.log_path.stat().st_size
    # MEDIA_ROOT outlives each test's database: other tests' programs may be there.
    files_before = set(media_files())

    with pytest.raises(Rollback), transaction.atomic():
        services.compile_submit(spec=URGENCY, owner=user, tags=["rolled-back"])
        assert CompileJob.objects.count() == 1  # it was there, inside the transaction
        raise Rollback

    # A savepoint rolled back inside a request that goes on and commits.
    with transaction.atomic():
        UserFactory(username="committed-beside-it")
        try:
            with transaction.atomic():
                services.compile_submit(spec=URGENCY + "\nHints:\n- savepoint", owner=user)
                raise Rollback
        except Rollback:
            pass
    assert get_user_model().objects.filter(username="committed-beside-it").exists()

    # One worker, one queue, in order: once the marker is back, anything the
    # rolled-back compiles had sent would have been received before it.
    marker = compile_program.delay(str(uuid.uuid4()))
    assert marker.get(timeout=120) == "skipped"

    received = tasks_received(celery_worker.log_path, since=log_start)
    found = {
        "jobs": CompileJob.objects.count(),
        "programs": Program.objects.count(),
        "tags": Tag.objects.filter(name="rolled-back").count(),
        "compile tasks received": received,
        "messages still queued": queued_messages("compile"),
        "new files": sorted(set(media_files()) - files_before),
    }
    figure("found after two rolled-back compiles", found)
    assert found == {
        "jobs": 0,
        "programs": 0,
        "tags": 0,
        "compile tasks received": 1,  # the marker alone
        "messages still queued": 0,
        "new files": [],
    }
