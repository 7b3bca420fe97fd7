"""Votes stay exact under load: many people voting at the same moment, some
double-clicking (the same vote twice at once) and some changing their mind
(+1 and -1 at once), from threads of this process and from the processes of a
real site, each with its own database connection. Afterwards there is at most
one vote row per person, and the program's score is the sum of its votes.

Written for PostgreSQL, where the writers really run in parallel (row locks
decide); on SQLite writers queue up, so it passes there too, as it must."""

import contextlib
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Count, Sum

from accounts.models import ApiKey
from programs import services
from programs.models import Program, Vote
from tests.conftest import site_process
from tests.factories import ProgramFactory, UserFactory
from tests.programs.test_vote_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True)

# At most ~40 connections open at once: PostgreSQL's default limit is 100.
VOTERS = 24
DOUBLE_CLICKERS = 4  # each sends the same vote twice at once: it ends up taken back
MIND_CHANGERS = 3  # each sends +1 and -1 at once: one of them wins
SITE_PROCESSES = 3
# An access-log line of a vote the site took, as gunicorn.conf.py has it written:
# `[date] [pid] client - "POST /api/v1/programs/<id>/vote HTTP/1.1" 200`.
ANSWERED_VOTE = re.compile(
    r'^\[[^]]+\] \[(\d+)\] \S+ - "POST /api/v1/programs/\S+/vote [^"]*" 200$', re.M
)


def voter_value(i):
    return -1 if i % 3 == 0 else 1


def crowd():
    """(calls, expected): one (user, value) per click, all to be sent at once,
    and the vote each person must end with (None: either, but exactly one)."""
    voters = UserFactory.create_batch(VOTERS)
    double = UserFactory.create_batch(DOUBLE_CLICKERS)
    changers = UserFactory.create_batch(MIND_CHANGERS)
    calls = [(user, voter_value(i)) for i, user in enumerate(voters)]
    calls += [(user, 1) for user in double for _ in range(2)]
    calls += [(user, value) for user in changers for value in (1, -1)]
    expected = {user.pk: voter_value(i) for i, user in enumerate(voters)}
    expected |= {user.pk: 0 for user in double}
    expected |= {user.pk: None for user in changers}
    return calls, expected


def check_votes(program, expected):
    """Asserts the invariants; returns (vote rows, score)."""
    rows = Vote.objects.filter(program=program)
    duplicates = rows.values("user").annotate(n=Count("id")).filter(n__gt=1)
    assert not duplicates.exists(), list(duplicates)
    votes = dict(rows.values_list("user", "value"))
    for user_id, value in expected.items():
        if value is None:
            assert votes.get(user_id) in (1, -1), f"mind-changer {user_id} has {votes.get(user_id)}"
        else:
            assert votes.get(user_id, 0) == value, f"user {user_id}"
    score = Program.objects.get(pk=program.pk).score
    total = rows.aggregate(s=Sum("value"))["s"] or 0
    assert score == total
    voters_sum = sum(v for v in expected.values() if v)
    changers_sum = sum(votes[u] for u, v in expected.items() if v is None)
    assert score == voters_sum + changers_sum
    return rows.count(), score


def test_simultaneous_votes_from_threads_keep_one_row_each_and_an_exact_score(figure):
    program = ProgramFactory()
    calls, expected = crowd()

    started = time.perf_counter()
    run_together(
        [
            lambda user=user, value=value: services.vote_toggle(
                user=user, program=program, value=value
            )
            for user, value in calls
        ]
    )
    elapsed = time.perf_counter() - started

    rows, score = check_votes(program, expected)
    figure(
        f"{len(calls)} simultaneous votes from threads on {connection.vendor}",
        f"rows={rows} score={score} elapsed={elapsed:.2f}s",
    )


def post_vote(url, token, value):
    request = urllib.request.Request(
        url,
        data=json.dumps({"vote": value}).encode(),
        headers={"X-API-Key": token, "Content-Type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.worker
def test_simultaneous_votes_through_several_site_processes(tmp_path, figure):
    """The same crowd through the API of three site processes, each click sent to
    the next one in turn (so a double-click's two votes reach two processes).

    Three sites of one worker each, not one site of three workers: gunicorn's
    uvicorn workers race to accept(), and the first one awake takes every
    connection waiting, so one of three workers answered all of a simultaneous
    crowd: its writers were threads of one process, never several processes."""
    program = ProgramFactory()
    calls, expected = crowd()
    tokens = {user.pk: ApiKey.create_for(user=user, name="votes")[1] for user, _ in calls}
    logs = [tmp_path / f"site-{i}.log" for i in range(SITE_PROCESSES)]

    with contextlib.ExitStack() as sites:
        urls = [
            sites.enter_context(
                site_process(
                    log,
                    "/api/v1/health",
                    # Rate limits per process: not what is measured here.
                    CACHE_URL="locmemcache://votes",
                )
            )
            for log in logs
        ]
        statuses = Counter()
        barrier = threading.Barrier(len(calls))

        def send(i, user, value):
            barrier.wait(timeout=60)
            url = f"{urls[i % len(urls)]}/api/v1/programs/{program.pk}/vote"
            statuses[post_vote(url, tokens[user.pk], value)] += 1

        started = time.perf_counter()
        threads = [threading.Thread(target=send, args=(i, *call)) for i, call in enumerate(calls)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        elapsed = time.perf_counter() - started
        # gunicorn.conf.py: each access-log line names the process that answered.
        pids = {pid for log in logs for pid in ANSWERED_VOTE.findall(log.read_text())}

    assert statuses == {200: len(calls)}, statuses
    assert len(pids) == SITE_PROCESSES, pids
    rows, score = check_votes(program, expected)
    figure(
        f"{len(calls)} simultaneous API votes, {SITE_PROCESSES} site processes, "
        f"{connection.vendor}",
        f"rows={rows} score={score} elapsed={elapsed:.2f}s processes={len(pids)}",
    )
