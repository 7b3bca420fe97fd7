"""The score equals the sum of votes under simultaneous clicks: 20 people
voting at once and one person double-clicking, each thread on its own
database connection. The test is for PostgreSQL (row locks); SQLite
serializes writers, so it passes there too."""

import threading

import pytest
from django.db import connection
from django.db.models import Count, Sum

from programs import services
from programs.models import Program, Vote
from tests.factories import ProgramFactory, UserFactory

VOTERS = 20
DOUBLE_CLICKS = 3  # rounds of two simultaneous clicks from one person


def run_together(calls):
    """Start every call at the same moment, each in a thread with its own connection."""
    barrier = threading.Barrier(len(calls))
    errors = []

    def run(call):
        try:
            barrier.wait(timeout=30)
            call()
        except Exception as error:  # reported below, with the thread's traceback lost
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_simultaneous_votes_and_double_clicks_never_duplicate_or_drift():
    program = ProgramFactory()
    voters = UserFactory.create_batch(VOTERS)
    clicker = UserFactory()

    def vote(user, value):
        return lambda: services.vote_toggle(user=user, program=program, value=value)

    calls = [vote(user, 1 if i % 4 else -1) for i, user in enumerate(voters)]
    calls += [vote(clicker, 1), vote(clicker, 1)]
    run_together(calls)
    for _ in range(DOUBLE_CLICKS - 1):
        run_together([vote(clicker, -1), vote(clicker, -1)])

    duplicates = Vote.objects.values("user", "program").annotate(n=Count("id")).filter(n__gt=1)
    assert not duplicates.exists()
    program = Program.objects.get(pk=program.pk)
    total = Vote.objects.filter(program=program).aggregate(s=Sum("value"))["s"]
    assert program.score == total == 15 - 5
    # Each double-click toggles the same vote on and off again.
    assert not Vote.objects.filter(user=clicker).exists()
